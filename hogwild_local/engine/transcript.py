"""Transcripts: every event of a run appended as JSON Lines while it happens, and a Markdown rendering.

Each line goes to the file as soon as it is complete, so a crash or a SIGKILL loses at most the pass in
flight (a native abort, such as an RPC server that dies mid-run, nothing: the writer closes first). Token
events are merged per pass and worker to keep files small; the rendering rebuilds each worker's text from them.
Several runs may append to one file one after another: every record carries its run's id (``run``), and the
rendering gives each run its own section. A writer holds an exclusive advisory lock on the file for its life,
so two runs never write one file at the same time.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

from ..errors import HogwildError
from ..native.library import at_native_abort
from .events import Event, to_dict


class TranscriptError(OSError, HogwildError):
    """A transcript cannot be opened or written: one line that names the file and says why.

    An ``OSError`` so that code which already handles file errors handles this one too.
    """


class TranscriptWriter:
    """Append one run's events to a JSONL file as they come (tokens of one pass and worker merged into one line).

    The header record (``header``'s fields plus the run id, the writer's pid and the start time) is written
    at once, so a path that cannot be written fails here, before any work is done. Raises
    :class:`TranscriptError` when the file cannot be opened or written, or while another writer holds it.
    """

    def __init__(self, path: str | Path, header: dict | None = None) -> None:
        self.path = Path(path)
        self.run = secrets.token_hex(4)  # tells this run's lines from those of other runs in the same file
        self._tokens: dict[str, dict] = {}
        self._fd: int | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o666)
        except OSError as err:
            raise TranscriptError(f"cannot write the transcript {self.path}: {err.strerror or err}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise TranscriptError(f"{self.path} is being written by another run{_holder(self.path)}; "
                                  "choose another --transcript file") from None
        except OSError as err:
            os.close(fd)
            raise TranscriptError(f"cannot lock the transcript {self.path}: {err.strerror or err}") from None
        self._fd = fd
        # a native abort (an RPC server gone mid-run) ends the process without a finally: write what is held
        self._forget_abort = at_native_abort(self.close)
        self._write({"type": "header", **(header or {}), "run": self.run, "pid": os.getpid(),
                     "started": datetime.now().astimezone().isoformat(timespec="seconds")},
                    opening=True, prefix=_unterminated(fd))

    def write(self, event: Event) -> None:
        """Record one event.

        Raises :class:`TranscriptError` at the first write that fails (disk full, file too large); the
        writer is closed then, with every line before intact, and ignores the events that follow.
        """
        if self._fd is None:
            return
        data = {"run": self.run, **to_dict(event)}
        if data["type"] == "token":
            key = data["worker"]
            held = self._tokens.get(key)
            if held and held["pass"] == data["pass"] and held["forced"] == data["forced"]:
                held["text"] += data["text"]
                return
            self._tokens[key] = data
            if held:
                self._write(held)
            return
        if data["type"] in ("stats", "step", "cut", "answer"):
            self._flush_tokens()
        self._write(data)

    def _flush_tokens(self) -> None:
        held, self._tokens = list(self._tokens.values()), {}
        for data in held:
            self._write(data)

    def _write(self, data: dict, *, opening: bool = False, prefix: bytes = b"") -> None:
        """Append one whole line; if the system refuses part of it, cut the part written and close."""
        if self._fd is None:  # an earlier line of this flush failed
            return
        line = prefix + (json.dumps(data, ensure_ascii=False) + "\n").encode()
        done = 0
        try:
            while done < len(line):
                done += os.write(self._fd, line[done:])
        except OSError as err:
            if done:
                # a half line would glue itself to the next run's header; a pipe or device cannot be cut
                with contextlib.suppress(OSError):
                    os.ftruncate(self._fd, os.fstat(self._fd).st_size - done)
            self._release()
            where = "" if opening else " (it ends here; the lines before are kept)"
            raise TranscriptError(f"cannot write the transcript {self.path}: {err.strerror or err}{where}") from None

    def _release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # also releases the lock
            self._fd = None
            self._forget_abort()

    def close(self) -> None:
        """Write what is held and close the file (releasing the lock).

        Never raises: it runs in ``finally`` blocks, where an error would hide the one that ended the run. A
        write that fails here loses only the tokens of a pass that never completed.
        """
        with contextlib.suppress(TranscriptError):
            self._flush_tokens()
        self._release()

    def __enter__(self) -> TranscriptWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_events(path: str | Path, header: dict, events: Iterable[Event]) -> None:
    """Append a run's events to ``path`` after the run, as a writer during it would have (its own run id,
    the file locked while written). Raises :class:`TranscriptError` as the writer does."""
    with TranscriptWriter(path, header) as writer:
        for event in events:
            writer.write(event)


def _unterminated(fd: int) -> bytes:
    """A newline if the file ends inside a line (a crash mid-write, an older writer), so the header stays whole."""
    size = os.fstat(fd).st_size
    return b"\n" if size and os.pread(fd, 1, size - 1) != b"\n" else b""


def _holder(path: Path) -> str:
    """The pid of the writer that holds ``path``, as " (pid N)": it wrote the last header, just after taking
    the lock."""
    headers = [rec for rec in read_events(path) if rec.get("type") == "header" and "pid" in rec]
    return f" (pid {headers[-1]['pid']})" if headers else ""


def read_events(path: str | Path) -> list[dict]:
    """All records of a JSON Lines file written as a run goes (a transcript, eval results); a truncated last
    line, from a crash, is skipped."""
    records = []
    for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


class NotATranscript(ValueError, HogwildError):
    """The file holds no run: it was not written by `hogwild run --transcript` (or the TUI)."""


def split_runs(records: list[dict]) -> list[list[dict]]:
    """The records of each run, in the order the runs began.

    Records carry their run's id; those without one (written before run ids existed) belong to the run that
    their last header began, or a start if no header came first.
    """
    runs: dict[object, list[dict]] = {}
    legacy: tuple[str, int] | None = None
    legacy_started = False
    for rec in records:
        key = rec.get("run")
        if key is None:
            kind = rec.get("type")
            if legacy is None or kind == "header" or (kind == "start" and legacy_started):
                legacy, legacy_started = ("legacy", len(runs)), False
            legacy_started = legacy_started or kind == "start"
            key = legacy
        runs.setdefault(key, []).append(rec)
    return list(runs.values())


def render_markdown(path: str | Path) -> str:
    """A readable Markdown account of a transcript, one section per run: setup, the shared history, unfinished
    steps, the answer, or a note that the run did not finish."""
    runs = [run for run in split_runs(read_events(path))
            if any(rec.get("type") in ("header", "start") for rec in run)]
    if not runs:
        raise NotATranscript(f"{path}: not a hogwild transcript (no run starts in it)")
    out: list[str] = []
    for number, run in enumerate(runs, 1):
        out += _render_run(run, f" {number} of {len(runs)}" if len(runs) > 1 else "")
    return "\n".join(out)


def _render_run(records: list[dict], numbering: str) -> list[str]:
    """The Markdown lines of one run's section."""
    out: list[str] = []
    current: dict[str, str] = {}  # each worker's step in flight
    header = next((rec for rec in records if rec.get("type") == "header"), {})
    problem = header.get("problem", "")
    out.append(f"# Hogwild! run{numbering}" + (f": {problem[:80]}" if problem else "") + "\n")
    if "run" in header:
        out.append(f"*Run `{header['run']}`, started {header.get('started', '?')} by pid {header.get('pid', '?')}.*\n")
    if problem:
        out.append(f"**Problem.** {problem}\n")
    budget, last_pass, ended = None, 0, False
    for rec in records:
        kind = rec.get("type")
        if kind == "start":
            cfg, model = rec["config"], rec["model"]
            budget = cfg["budget"]
            out.append(
                f"- model: `{Path(model['path']).name}` ({model['architecture']})\n"
                f"- method: {cfg['method']}, workers: {cfg['workers']}, layout: {cfg['layout']}, "
                f"budget: {cfg['budget']} passes, seed: {cfg['sampling']['seed']}\n"
            )
            out.append("## Shared history (in completion order)\n")
        elif kind == "token":
            current[rec["worker"]] = current.get(rec["worker"], "") + rec["text"]
        elif kind == "stats":
            last_pass = rec["pass"]
        elif kind == "step":
            out.append(rec["text"].strip() + "\n")
            current.pop(rec["worker"], None)
        elif kind == "cut":
            current[rec["worker"]] = rec["text"]
            if rec["reason"] == "repeat":
                out.append(f"*({rec['worker']}'s step repeated a finished one word for word and was dropped.)*\n")
        elif kind == "answer":
            ended = True
            out += _unfinished(current, "## Unfinished steps at the end\n")
            out.append(
                f"## Answer\n\n**{rec['answer']}** (stopped by: {rec['reason']}; {rec['passes']} passes, "
                f"{rec['tokens_generated']} tokens, {rec['elapsed_s']:.1f} s)\n"
            )
    if not ended:
        out += _unfinished(current, "## Steps in flight when the transcript ends\n")
        where = "before generation began" if budget is None else f"after pass {last_pass} of {budget}"
        out.append(f"## This run did not finish\n\nThe transcript ends {where}, with no answer: the run was "
                   "killed or failed (or is still being written).\n")
    return out


def _unfinished(current: dict[str, str], title: str) -> list[str]:
    """A section with every step still in flight, each marked, or nothing if there is none."""
    steps = [text.strip() for text in current.values() if text.strip()]
    return [title, *(f"{text} *(unfinished)*\n" for text in steps)] if steps else []
