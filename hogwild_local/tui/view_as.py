"""The "view as worker" screen: the blocks one worker attends to, in its own token order.

For each span of ``layout.view(worker)`` it shows the block's name, its canonical range in the cache,
where the worker sees it (view range), and the block's text. The layout is the app's latest copy from
the engine thread, the texts come from the events the UI has received: both are read again at each refresh
(``get_view``) and are at most a moment behind the engine. While a new run has neither yet, the screen keeps
what it showed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Label, Static

from ..engine.layout import WORKER_NAMES, Layout
from .blocks import BlockRow, BlockTexts
from .theme import PROBLEM_COLOR, color_of

REFRESH_S = 0.5


class ViewAsScreen(Screen):
    """Worker ``worker``'s view; left/right cycle through the workers."""

    DEFAULT_CSS = """
    ViewAsScreen #view-title { height: 1; width: 1fr; background: $boost; text-style: bold; padding: 0 1; }
    ViewAsScreen #blocks { padding: 0 1; }
    ViewAsScreen #blocks > Static { margin-bottom: 1; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("left", "cycle(-1)", "Previous worker", priority=True),
        Binding("right", "cycle(1)", "Next worker", priority=True),
        Binding("escape,v", "app.pop_screen", "Back"),
    ]

    def __init__(self, get_view: Callable[[], tuple[Layout, BlockTexts] | None], worker: int = 0) -> None:
        super().__init__()
        self.get_view, self.worker = get_view, worker
        self.n_workers = 1
        self.rows: list[BlockRow] = []

    def compose(self) -> ComposeResult:
        yield Label(id="view-title")
        yield VerticalScroll(id="blocks")
        yield Footer()

    async def on_mount(self) -> None:
        await self.show_view()
        self.set_interval(REFRESH_S, self.show_view)

    async def action_cycle(self, step: int) -> None:
        """Show the previous (-1) or next (+1) worker's view, from its end (the worker's own step)."""
        self.worker = (self.worker + step) % self.n_workers
        await self.show_view()
        blocks = self.query_one("#blocks", VerticalScroll)
        blocks.call_after_refresh(blocks.scroll_end, animate=False)

    async def show_view(self) -> None:
        """Read the worker's view again and show it (updating in place keeps the scroll position)."""
        view = self.get_view()
        if view is None:
            return
        layout, texts = view
        self.n_workers, self.worker = layout.n_workers, self.worker % layout.n_workers
        self.rows = texts.rows(layout, self.worker)
        name = WORKER_NAMES[self.worker]
        total = sum(len(row.view) for row in self.rows)
        self.query_one("#view-title", Label).update(Text.assemble(
            "View as ", (name, color_of(name)),
            f": {total} tokens in {len(self.rows)} blocks, top to bottom as {name} attends to them"))
        blocks = self.query_one("#blocks", VerticalScroll)
        statics = list(blocks.query_children(Static))
        if len(statics) != len(self.rows):
            await blocks.remove_children()
            statics = [Static() for _ in self.rows]
            await blocks.mount_all(statics)
            blocks.call_after_refresh(blocks.scroll_end, animate=False)  # the own step, where the worker writes
        for static, row in zip(statics, self.rows, strict=True):
            static.update(_render(row))


def _render(row: BlockRow) -> Text:
    """A block: a title line (name, canonical and view ranges, length) and its text."""
    color = color_of(row.owner) if row.owner else PROBLEM_COLOR
    title = Text.assemble(
        (row.name, f"bold {color}"),
        (f"  canonical {_span(row.canonical)} → view {_span(row.view)}  ({len(row.view)} tokens)", "dim"),
    )
    body_style = "" if row.kind in ("common", "step") else "italic dim"  # fixed header texts are dim
    return Text.assemble(title, "\n", (row.text, body_style))


def _span(r: range) -> str:
    return f"[{r.start}, {r.stop})"
