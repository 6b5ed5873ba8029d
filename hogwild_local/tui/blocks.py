"""The text of every cache block, rebuilt from a run's events, for the "view as worker" screen.

The engine stores tokens, not text, so the TUI keeps its own copy: the common block is the prompt
followed by the history (finished steps and user notes, in completion order), the header and marker
blocks hold fixed texts from ``hogwild_local.engine.prompts``, and each step block holds what its worker is
writing now. Layouts that never move steps into the history (contiguous, independent) keep each
worker's whole output in its step block, and only user notes join the common block.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..engine import prompts
from ..engine.events import AnswerEvent, CutEvent, Event, StepEvent, TokenEvent
from ..engine.layout import WORKER_NAMES, Block, Layout, LayoutKind


@dataclass(frozen=True)
class BlockRow:
    """One block of a worker's view: its name, kind, owner, canonical and view ranges (tokens), and its text."""

    name: str
    kind: str  # common | others_header | own_header | marker | step
    owner: str | None
    canonical: range
    view: range
    text: str


@dataclass
class BlockTexts:
    """Text per block, kept up to date by :meth:`add` with every event of one run."""

    prompt: str
    layout_kind: LayoutKind
    history: list[tuple[str, str]] = field(default_factory=list)  # (author, text) of the common block
    steps: dict[str, str] = field(default_factory=dict)  # worker name -> text of its step block
    step_starts: dict[str, int] = field(default_factory=dict)  # worker name -> where its current step begins
    finisher: str = ""

    @property
    def moves_steps(self) -> bool:
        """Do finished steps move into the common block (combined, stepwise) or stay put?"""
        return self.layout_kind in (LayoutKind.COMBINED, LayoutKind.STEPWISE)

    def add(self, event: Event) -> None:
        """Account for one event of the run."""
        if isinstance(event, TokenEvent):
            if event.forced:  # a new step opens, in an emptied block if steps move into the history
                if self.moves_steps:
                    self.steps[event.worker] = ""
                self.step_starts[event.worker] = len(self.steps.get(event.worker, ""))
            self.steps[event.worker] = self.steps.get(event.worker, "") + event.text
        elif isinstance(event, CutEvent):
            start = self.step_starts.get(event.worker, 0)
            self.steps[event.worker] = self.steps.get(event.worker, "")[:start] + event.text
        elif isinstance(event, StepEvent):
            if event.worker == "User" or self.moves_steps:
                self.history.append((event.worker, event.text))
                if event.worker != "User":
                    self.steps[event.worker] = ""
        elif isinstance(event, AnswerEvent):
            self.finisher = event.finisher_prompt + event.finisher_text

    def text(self, block: Block) -> str:
        """The text stored in ``block``."""
        if block.kind == "common":
            return self.prompt + "".join(text for _, text in self.history)
        if block.kind == "others_header":
            return prompts.OTHERS_HEADER
        if block.kind == "own_header":
            return prompts.OWN_HEADER
        if block.kind == "marker":
            return prompts.MARKER
        if block.kind == "step":
            return self.steps.get(WORKER_NAMES[block.owner], "")
        return self.finisher

    def rows(self, layout: Layout, worker: int) -> list[BlockRow]:
        """The blocks ``worker`` attends to, in its order (own step last), with their text."""
        rows = []
        for span in layout.view(worker):
            block = span.block
            owner = WORKER_NAMES[block.owner] if block.owner is not None else None
            rows.append(BlockRow(
                name=block_name(block, worker),
                kind=block.kind,
                owner=owner,
                canonical=range(block.start, block.start + block.length),
                view=range(span.view_start, span.view_start + block.length),
                text=self.text(block),
            ))
        return rows


def block_name(block: Block, viewer: int) -> str:
    """A short human name for a block as seen by ``viewer``."""
    if block.kind == "common":
        return "prompt + history"
    if block.kind == "others_header":
        return "header: the others' steps"
    if block.kind == "own_header":
        return "header: own step"
    owner = WORKER_NAMES[block.owner] if block.owner is not None else "?"
    if block.kind == "marker":
        return f"marker after {owner}'s step"
    if block.kind == "step":
        return f"{owner}'s step (own)" if block.owner == viewer else f"{owner}'s step"
    return block.kind
