"""The one loop that consumes a generation: every event, in order, to each of a list of sinks.

``hogwild run`` (a printer or JSON lines), ``hogwild eval`` (timing at the snapshot budgets) and the TUI (a
queue to the UI thread) differ only in their sinks; a ``--transcript`` is one more sink
(:class:`TranscriptSink`), the same for all three.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .events import AnswerEvent, Event
from .generation import Generation
from .transcript import TranscriptError, TranscriptWriter

Sink = Callable[[Event], None]


class TranscriptSink:
    """Write every event to a transcript as it happens.

    With ``on_error``, a write that fails is reported once through it and the run goes on without the
    transcript (``lost`` tells afterwards): the answer matters more than the file. Without, the error is raised.
    """

    def __init__(self, writer: TranscriptWriter, on_error: Callable[[TranscriptError], None] | None = None) -> None:
        self.writer: TranscriptWriter | None = writer
        self.on_error = on_error
        self.lost = False

    def __call__(self, event: Event) -> None:
        if self.writer is None:
            return
        try:
            self.writer.write(event)
        except TranscriptError as err:  # the writer has closed itself, every line before intact
            if self.on_error is None:
                raise
            self.writer, self.lost = None, True
            self.on_error(err)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def drive(generation: Generation, sinks: Sequence[Sink],
          go_on: Callable[[], bool] = lambda: True) -> AnswerEvent | None:
    """Run ``generation`` to its end, giving each event to every sink in order; return its AnswerEvent.

    ``go_on`` is asked after each event: False abandons the run there (no finisher; None is returned).
    To end a run with its answer instead, call ``generation.stop()`` (from a sink, a signal, another thread).
    """
    answer = None
    for event in generation.events():
        for sink in sinks:
            sink(event)
        if isinstance(event, AnswerEvent):
            answer = event
        if not go_on():
            return None
    return answer
