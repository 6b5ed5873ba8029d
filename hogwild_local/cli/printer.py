"""Terminal output of `hogwild run`: worker text a line at a time, labelled in the TUI's colours; the thinking note."""

from __future__ import annotations

import json
import sys

import click

from ..engine.events import END_REASONS, Event, to_dict
from ..engine.thinking import SIGN_TEXT, Sign
from ..tui.theme import color_of


class Printer:
    """Streams worker text to the terminal a line at a time, each line labelled with its worker in colour."""

    def __init__(self, colour: bool) -> None:
        self.colour = colour
        self.buffers: dict[str, str] = {}

    def label(self, name: str) -> str:
        """``name`` right-aligned with a bar after it, in the worker's colour when colour is on."""
        text = f"{name:>6} | "
        return click.style(text, fg=_rgb(color_of(name)), bold=True) if self.colour else text

    def token(self, worker: str, text: str) -> None:
        """Add ``text`` to the worker's line; print every line it completes."""
        buffer = self.buffers.get(worker, "") + text
        *lines, rest = buffer.split("\n")
        for line in lines:
            if line.strip():
                click.echo(self.label(worker) + line)
        self.buffers[worker] = rest

    def cut(self, worker: str, text: str) -> None:
        """The engine cut the worker's step to ``text``: forget the cut part of the line not shown yet
        ("" = the whole step was dropped as a repeat: say so)."""
        kept_line = text.rstrip("\n").rsplit("\n", 1)[-1]
        buffer = self.buffers.get(worker, "")
        self.buffers[worker] = kept_line if kept_line and buffer.startswith(kept_line) else ""
        if not text:
            note = "(the step above repeated an earlier one word for word: dropped)"
            click.echo(self.label(worker) + (click.style(note, dim=True) if self.colour else note))

    def flush(self, worker: str | None = None) -> None:
        """Print the unfinished line of ``worker`` (of every worker when None)."""
        for name in [worker] if worker else list(self.buffers):
            if self.buffers.get(name, "").strip():
                click.echo(self.label(name) + self.buffers[name])
            self.buffers[name] = ""


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    """"#4aa8ff" -> (74, 168, 255): the TUI's colours, in 24-bit colour on the terminal as well."""
    return tuple(int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))


class TextSink:
    """The run as text (a sink for ``engine.driver.drive``): workers' lines on stdout, notes on stderr, the answer
    (prose and code as the finisher writes them)."""

    def __init__(self, printer: Printer, n_ctx: int) -> None:
        self.printer, self.n_ctx = printer, n_ctx
        self.speed = 0.0  # the last stats event's tokens/s, said with the answer
        self.answered = ""  # the final answer's text printed so far

    def answer_text(self, text: str) -> None:
        """Print more of the final answer (after its heading, the first time)."""
        if not self.answered:
            self.printer.flush()
            click.echo("\n\nFinal answer: ", nl=False)
        click.echo(click.style(text, bold=True) if self.printer.colour else text, nl=False)
        sys.stdout.flush()
        self.answered += text

    def __call__(self, event: Event) -> None:
        printer = self.printer
        if event.type == "start":
            if event.cells_total != self.n_ctx:
                click.echo(f"(the cache holds {event.cells_total} cells: llama.cpp rounds --ctx {self.n_ctx} up)",
                           err=True)
            note = thinking_note(event.thinking)
            if note:
                click.echo(note, err=True)
        elif event.type == "token":
            printer.token(event.worker, event.text)
            sys.stdout.flush()
        elif event.type == "step":
            printer.flush(event.worker)
        elif event.type == "cut":
            printer.cut(event.worker, event.text)
        elif event.type == "stats":
            self.speed = event.tokens_per_s
        elif event.type == "answer_text":
            self.answer_text(event.text)
        elif event.type == "answer":
            printer.flush()
            answer = "no answer" if event.answer is None else event.answer
            self.answer_text(answer.removeprefix(self.answered) if answer.startswith(self.answered) else answer)
            click.echo()
            click.echo(f"({END_REASONS.get(event.reason, event.reason)}; {event.passes} passes, "
                       f"{event.tokens_generated} tokens, {self.speed:.1f} tok/s)", err=True)


def json_sink(event: Event) -> None:
    """The run as JSON lines (``--json``): one object per event, flushed as it happens, also into a pipe."""
    click.echo(json.dumps(to_dict(event), ensure_ascii=False))
    sys.stdout.flush()


def thinking_note(start: dict) -> str | None:
    """One line on the thinking block the prompt ends with (a start event's ``thinking``), None if there is none."""
    if start.get("block") == "open":
        why = "; ".join(SIGN_TEXT[Sign(sign)] for sign in start.get("signs", ())) or "asked for with --think on"
        return f"(thinking: the prompt opens a thinking block for the workers: {why}; --think off skips it)"
    if start.get("block") == "closed":
        return ("(thinking off: the prompt ends with an empty thinking block, so the model answers without "
                "thinking; --think auto lets it think)")
    return None
