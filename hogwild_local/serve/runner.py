"""One model, one generation at a time: the requests' runs on one engine thread, a bounded queue before it, and
each run's events handed to its request's event loop as messages.

The cache and the model's compute buffers are sized for one run, and two runs at once would only halve each
other's speed on the same cores, so requests wait their turn; past ``queue_size`` waiting, a request is refused
at once (the caller answers 503). A request whose client has gone cancels its job: a waiting job never runs, a
running one is abandoned after the event in hand (within one pass; no finisher runs for nobody).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import sys
import threading
import traceback
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ..engine import Generation, RunConfig
from ..engine.driver import TranscriptSink, drive
from ..engine.events import Event
from ..engine.transcript import TranscriptWriter
from ..errors import HogwildError
from ..native import Model


class QueueFull(Exception):
    """Every place in the queue is taken."""


@dataclass(frozen=True)
class Finished:
    """A job's last message: None, or the error that ended it (a HogwildError's one line; anything else is a
    bug, its traceback printed by the server)."""

    error: Exception | None = None


class Job:
    """One request's run: its messages (engine events, then :class:`Finished`) and its cancel switch."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.messages: asyncio.Queue[Event | Finished] = asyncio.Queue()
        self.cancelled = threading.Event()
        self._loop = loop

    def put(self, message: Event | Finished) -> None:
        """Hand a message to the request (called on the engine thread)."""
        with contextlib.suppress(RuntimeError):  # the loop has closed: the server is shutting down
            self._loop.call_soon_threadsafe(self.messages.put_nowait, message)

    def cancel(self) -> None:
        self.cancelled.set()


class Runner:
    """Runs the requests' generations on ``model``, one at a time, at most ``queue_size`` waiting."""

    def __init__(self, model: Model, queue_size: int, transcripts: Path | None = None) -> None:
        self.model, self.queue_size, self.transcripts = model, queue_size, transcripts
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hogwild-generation")
        self._admitted = 0  # running and waiting jobs (changed on the event loop's thread only)

    @property
    def waiting(self) -> int:
        return max(0, self._admitted - 1)

    def submit(self, problem: str, history: Sequence[tuple[str, str]], config: RunConfig) -> Job:
        """Queue a run; raises :class:`QueueFull` when ``queue_size`` jobs wait already. Call on the event loop."""
        if self._admitted > self.queue_size:
            raise QueueFull
        loop = asyncio.get_running_loop()
        job = Job(loop)
        self._admitted += 1
        future = loop.run_in_executor(self._executor, self._run, job, problem, tuple(history), config)
        future.add_done_callback(lambda _: self._release())
        return job

    def _release(self) -> None:
        self._admitted -= 1

    def _run(self, job: Job, problem: str, history: tuple[tuple[str, str], ...], config: RunConfig) -> None:
        """The job on the engine thread: its generation driven to the end (or until cancelled), every event to it."""
        error: Exception | None = None
        record: TranscriptSink | None = None
        try:
            if job.cancelled.is_set():
                return
            if self.transcripts is not None:
                path = self.transcripts / f"{secrets.token_hex(6)}.jsonl"
                header = {"problem": problem, "history": [list(m) for m in history]}
                record = TranscriptSink(TranscriptWriter(path, header), on_error=_say)
            with Generation(self.model, problem, config, history) as gen:
                drive(gen, [job.put, record] if record else [job.put], go_on=lambda: not job.cancelled.is_set())
        except HogwildError as err:
            error = err
        except Exception as err:  # a bug: the request gets a 500, the server's log the traceback
            traceback.print_exc()
            error = err
        finally:
            if record is not None:
                record.close()
            job.put(Finished(error))

    def close(self) -> None:
        """Stop: jobs still waiting never run, the one in flight ends first (its request has gone with the
        server)."""
        self._executor.shutdown(wait=True, cancel_futures=True)


def _say(err: Exception) -> None:
    print(f"Error: {err}", file=sys.stderr)
