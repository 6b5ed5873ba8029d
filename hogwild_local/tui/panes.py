"""The panes of the main screen: one per worker (its current step, live), and the shared history."""

from __future__ import annotations

from rich.text import Text
from textual.containers import Container, VerticalScroll
from textual.widget import Widget
from textual.widgets import Static

from ..engine.prompts import AUTHOR_HEADER
from .theme import PROBLEM_COLOR, color_of

HISTORY_TITLE = "History"
MIN_PANE_WIDTH = 26  # columns; fewer worker panes per row below this


class WorkerPane(Widget):
    """One worker's current step, streaming; the title shows the worker and its step counter.

    The pane shows the tail of the step that fits (the newest text is where the worker writes). Text
    arrives with :meth:`add` (cheap, once per token) and reaches the screen with :meth:`flush` (once per
    UI tick) as a repaint of this pane alone: its size never depends on its text, so no layout is needed.
    """

    DEFAULT_CSS = """
    WorkerPane {
        border: round $primary;
        border-title-style: bold;
        padding: 0 1;
        height: 1fr;
        min-height: 3;
    }
    """

    def __init__(self, worker: str) -> None:
        super().__init__(id=f"pane-{worker.lower()}")
        self.worker = worker
        self.text = ""
        self.step = 0
        self._dirty = False
        color = color_of(worker)
        self.styles.border = ("round", color)
        self.styles.border_title_color = color
        self.border_title = worker

    def add(self, text: str, forced: bool) -> None:
        """Text the worker wrote; forced text opens a new step (the engine's step header)."""
        if forced:
            self.step += 1
            self.text = text
            self.border_title = f"{self.worker} [{self.step}]"
        else:
            self.text += text
        self._dirty = True

    def cut(self, text: str) -> None:
        """The engine cut the current step: show what stays of it (nothing: the step was dropped, and the
        worker writes it again under the same number)."""
        self.text = text
        if not text:
            self.step -= 1
        self._dirty = True

    def set_rate(self, tokens_per_s: float) -> None:
        """Show the worker's generation speed under the pane."""
        self.border_subtitle = f"{tokens_per_s:.1f} tok/s"

    def flush(self) -> None:
        """Repaint if text was added since the last flush."""
        if self._dirty:
            self.refresh()
            self._dirty = False

    def render(self) -> Text:
        """The last lines of the step that fit, wrapped to the pane's width."""
        width, height = self.content_size.width, self.content_size.height
        if width <= 0 or height <= 0:
            return Text()
        tail = strip_author(self.text)[-width * height * 2:]  # enough characters to fill the pane
        lines = Text(tail).wrap(self.app.console, width)
        return Text("\n").join(lines[-height:])


class WorkerGrid(Container):
    """The worker panes in a grid: side by side when there is room, stacked when the terminal is narrow."""

    DEFAULT_CSS = """
    WorkerGrid {
        layout: grid;
        grid-size: 2;
        height: 1fr;
    }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.panes: dict[str, WorkerPane] = {}

    async def set_workers(self, workers: list[str]) -> None:
        """Replace the panes with one empty pane per worker."""
        await self.remove_children()
        self.panes = {name: WorkerPane(name) for name in workers}
        await self.mount_all(self.panes.values())
        self._fit()

    def on_resize(self) -> None:
        self._fit()

    def _fit(self) -> None:
        """As many columns as fit at MIN_PANE_WIDTH, then as few as fill the rows that takes (4 -> 2x2)."""
        width = self.size.width or self.app.size.width
        n = len(self.panes) or 1
        columns = max(1, min(n, width // MIN_PANE_WIDTH))
        rows = -(-n // columns)
        self.styles.grid_size_columns = -(-n // rows)

    def add(self, worker: str, text: str, forced: bool) -> None:
        """Text a worker wrote (see :meth:`WorkerPane.add`); a worker without a pane is ignored."""
        if worker in self.panes:
            self.panes[worker].add(text, forced)

    def cut(self, worker: str, text: str) -> None:
        """The engine cut a worker's step to ``text`` (see :meth:`WorkerPane.cut`)."""
        if worker in self.panes:
            self.panes[worker].cut(text)

    def set_rates(self, rates: dict[str, float]) -> None:
        """Each worker's tokens/s under its pane."""
        for worker, rate in rates.items():
            if worker in self.panes:
                self.panes[worker].set_rate(rate)

    def flush(self) -> None:
        """Render what every pane received since the last tick."""
        for pane in self.panes.values():
            pane.flush()


class HistoryPane(VerticalScroll):
    """The shared history: the problem, then finished steps and user notes in completion order."""

    DEFAULT_CSS = """
    HistoryPane {
        border: round $secondary;
        border-title-color: $text-muted;
        padding: 0 1;
        height: 1fr;
        min-height: 3;
        scrollbar-size-vertical: 1;
    }
    HistoryPane > Static { margin-bottom: 1; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.entries: list[tuple[str, str]] = []  # (author, text) as shown
        self.border_title = HISTORY_TITLE

    async def clear(self, problem: str) -> None:
        """Start over with a new run: only the problem is shown."""
        await self.remove_children()
        self.entries = []
        self.border_title = HISTORY_TITLE  # the last run's step count must not carry over
        await self.mount(Static(Text.assemble(("Problem ", f"bold {PROBLEM_COLOR}"), problem)))

    def add_step(self, author: str, step: int, text: str) -> None:
        """A finished step (or a user note, author "User"), prefixed with its author in the author's colour."""
        body = strip_author(text).strip()
        label = author if author == "User" else f"{author} [{step}]"
        self.entries.append((author, body))
        follow = at_end(self)
        self.mount(Static(Text.assemble((label + " ", f"bold {color_of(author)}"), body)))
        if follow:
            self.call_after_refresh(self.scroll_end, animate=False)
        self.border_title = f"{HISTORY_TITLE} ({len(self.entries)})"


def strip_author(text: str) -> str:
    """Text without its leading "**Name [k]:** " header (the pane title or history prefix shows the author)."""
    return AUTHOR_HEADER.sub("", text, count=1)


def at_end(scroll: VerticalScroll) -> bool:
    """Is the view at the bottom? Then new text keeps it there; a reader who scrolled up is left alone."""
    return scroll.scroll_y >= scroll.max_scroll_y - 1
