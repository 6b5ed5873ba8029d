"""The part of the TUI that runs off the UI thread: load the model, run one generation, report in order.

Everything the run produces goes into one queue, in order: lifecycle records (:class:`Loading`,
:class:`Started`, :class:`Failed`, :class:`Notice`, :class:`Finished`), copies of the layout
(:class:`LayoutChanged`) and the engine's events. The app drains the
queue on a timer, so a fast model never floods the UI with one message per token.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ..engine import Generation, RunConfig
from ..engine.driver import TranscriptSink, drive
from ..engine.events import Event
from ..engine.layout import Layout
from ..engine.transcript import TranscriptWriter
from ..errors import HogwildError
from ..models import default_model, resolve_model
from ..native import Model


@dataclass(frozen=True)
class Loading:
    """The model is being resolved (maybe downloaded) and loaded."""

    model: str


@dataclass(frozen=True)
class Started:
    """The model is loaded and the generation exists: its controls can be used from now on (its layout comes
    as :class:`LayoutChanged` copies)."""

    generation: Generation
    prompt: str  # the full prompt text (chat template applied), the start of the common block


@dataclass(frozen=True)
class Failed:
    """A user-facing error (model, engine or backend): one line."""

    message: str


@dataclass(frozen=True)
class Notice:
    """Something the user should know that does not end the run (one line)."""

    message: str


@dataclass(frozen=True)
class LayoutChanged:
    """A copy of the run's layout, taken on the engine thread between two events (the engine's own changes
    while it runs, so the UI thread never reads that one)."""

    layout: Layout


@dataclass(frozen=True)
class Finished:
    """The run is over (after an answer, a failure, or a cancel during loading)."""


Record = Loading | Started | Failed | Notice | LayoutChanged | Finished | Event

LAYOUT_EVERY_S = 0.1  # at most this often after a pass, a new LayoutChanged (it copies every block: not every pass)


class ModelCache:
    """The last loaded model, kept so that the next run on the same file starts at once.

    ``placement``: where the layers go, :class:`Model`'s keyword arguments (``n_gpu_layers``, ``main_gpu``,
    ``tensor_split``, ``rpc``), as ``hogwild run`` passes them.
    """

    def __init__(self, placement: dict | None = None) -> None:
        self.options = dict(placement or {})
        self.path: Path | None = None
        self.model: Model | None = None

    def get(self, spec: str | None) -> Model:
        """The model for ``spec`` (a manifest name, hf: spec or path; None for the default)."""
        path = resolve_model(spec, progress=False)
        if self.model is None or path != self.path:
            self.close()
            self.model, self.path = Model(path, **self.options), path
        return self.model

    def close(self) -> None:
        """Free the weights."""
        if self.model is not None:
            self.model.close()
            self.model, self.path = None, None


class LayoutSink:
    """Puts a :class:`LayoutChanged` into the inbox at the start, after a pass at most every ``LAYOUT_EVERY_S``
    (and after the pass that ends where a pause holds the run, so the paused screen shows it), when a note
    joined the history, and at the end."""

    def __init__(self, inbox: queue.SimpleQueue, generation: Generation) -> None:
        self.inbox, self.generation = inbox, generation
        self._last = float("-inf")

    def __call__(self, event: Event) -> None:
        if event.type == "stats":  # after a pass
            due = time.monotonic() - self._last >= LAYOUT_EVERY_S or self.generation.paused
        else:
            due = event.type in ("start", "answer") or (event.type == "step" and event.worker == "User")
        if due:
            self._last = time.monotonic()
            self.inbox.put(LayoutChanged(self.generation.layout.snapshot()))


def run_generation(inbox: queue.SimpleQueue, models: ModelCache, model_spec: str | None, problem: str,
                   config: RunConfig, cancel: threading.Event, abandon: threading.Event,
                   writer: TranscriptWriter | None = None) -> None:
    """Load the model and run one generation, putting every record into ``inbox``; ends with Finished.

    ``cancel`` (set by the UI on stop or quit) skips the run if the model is still loading, and
    otherwise stops the generation after its current pass; the finisher still writes an answer.
    ``abandon`` (set when the app must leave now: SIGTERM) does the same without the finisher: the
    generation is not resumed after the event in hand. Any error while loading or running ends the run
    as :class:`Failed` (one line); the app stays up.
    ``writer`` (``--transcript``) gets every event as it happens, even after the UI has quit; it is closed here
    (a write error is reported once as a :class:`Notice` and the run goes on without it).
    """
    record = TranscriptSink(writer, on_error=lambda err: inbox.put(Notice(str(err)))) if writer else None
    try:
        inbox.put(Loading(model_spec or default_model().name))
        model = models.get(model_spec)
        if cancel.is_set() or abandon.is_set():
            return
        # closed when the run ends: the KV cache is freed now; the layout stays readable for the view-as screen
        with Generation(model, problem, config) as generation:
            inbox.put(Started(generation, generation.prompt_text()))

            def go_on() -> bool:
                if cancel.is_set():
                    generation.stop()
                return not abandon.is_set()

            sinks = [inbox.put, LayoutSink(inbox, generation), *([record] if record else [])]
            drive(generation, sinks, go_on)
    except Exception as err:  # e.g. LayoutFull: an engine error ends this run, never the app
        inbox.put(Failed(one_line(err)))
    finally:
        if record is not None:
            record.close()
        inbox.put(Finished())


def one_line(err: Exception) -> str:
    """The error as one line: our own errors are written for the user; any other also gets its type."""
    text = str(err) if isinstance(err, HogwildError) else f"{type(err).__name__}: {err}"
    return text.strip().split("\n", 1)[0]
