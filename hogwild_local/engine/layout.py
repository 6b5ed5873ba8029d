"""Where every cached token lives, and where each worker sees it (pure Python, no model needed).

The KV cache holds each token once, at a *canonical* position inside a *block*. Each worker (sequence)
sees the blocks in its own order, so a block has one view offset per worker: the backend is told
``deltas[worker][block] = view_start - canonical_start`` before every pass.

Blocks (the paper's "combined" layout):

- ``common``: the prompt, then the history of finished steps in completion order;
- ``others_header``: text introducing the other workers' unfinished steps;
- ``marker[w]``: text closing worker w's unfinished step, one copy per worker because a cell has one
  position per viewer;
- ``own_header``: text introducing the viewer's own unfinished step;
- ``step[w]``: the step worker w is writing now.

Worker s sees: common, others_header, (step[o], marker[o]) for every other o ascending, own_header,
step[s] last, at contiguous positions 0 .. len(view)-1. ``stepwise`` hides the others' unfinished steps
(view: common, step[s]); ``contiguous`` never moves steps into the history (each worker's whole output is
one block); ``independent`` (a baseline) hides everything but the prompt. With one worker the view is
simply common, step[0].

Canonical ranges are fixed: common owns [0, capacity), the header blocks follow, then each step block
owns its own ``capacity`` positions, so a block never has to move while it grows. A finished step moves
to the end of common with one position shift (the backend re-rotates its keys once).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from enum import Enum

WORKER_NAMES = ("Alice", "Bob", "Carol", "Dave", "Eve", "Frank", "Grace", "Heidi")
MAX_WORKERS = len(WORKER_NAMES)


class LayoutKind(str, Enum):
    """How workers see each other's work."""

    COMBINED = "combined"  # history + everyone's current step (the paper's main method)
    CONTIGUOUS = "contiguous"  # no history: each worker's whole output is one block
    STEPWISE = "stepwise"  # only finished steps are shared
    INDEPENDENT = "independent"  # baseline: nobody sees anyone (one block per worker, never shared)


# the layouts a user may choose (independent is the method of the same name, not a layout of hogwild)
USER_LAYOUTS = tuple(k.value for k in LayoutKind if k is not LayoutKind.INDEPENDENT)


class LayoutFull(Exception):
    """A block ran out of canonical positions: the context is full."""


@dataclass
class Block:
    """A run of cells at consecutive canonical positions [start, start + length)."""

    id: int
    kind: str  # common | others_header | own_header | marker | step
    start: int
    capacity: int
    owner: int | None = None  # the worker of a marker or step block
    length: int = 0

    @property
    def end(self) -> int:
        return self.start + self.length


@dataclass(frozen=True)
class ViewSpan:
    """One block as a worker sees it: canonical [start, start+length) at view [view_start, view_start+length)."""

    block: Block
    view_start: int

    @property
    def delta(self) -> int:
        return self.view_start - self.block.start


@dataclass(frozen=True)
class Move:
    """Move canonical [p0, p1) by ``shift`` positions (one K-shift in the backend)."""

    p0: int
    p1: int
    shift: int


@dataclass(frozen=True)
class HistoryEntry:
    """A finished step in the common block: its author (None for a user note) and canonical range."""

    worker: int | None
    start: int
    length: int


@dataclass
class Layout:
    """Blocks, canonical ranges and per-worker views for ``n_workers`` workers."""

    kind: LayoutKind
    n_workers: int
    capacity: int  # positions per growing block: the context size is a safe value
    header_lengths: tuple[int, int, int] = (0, 0, 0)  # others_header, marker, own_header (tokens)
    finisher_capacity: int = 0  # positions for the final-answer prompt, seen by its own sequence
    blocks: list[Block] = field(init=False)
    history: list[HistoryEntry] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        if not 1 <= self.n_workers <= MAX_WORKERS:
            raise ValueError(f"workers must be 1..{MAX_WORKERS}, got {self.n_workers}")
        self.kind = LayoutKind(self.kind)
        others_len, marker_len, own_len = self.header_lengths
        self.blocks = [Block(0, "common", 0, self.capacity)]
        pos = self.capacity

        def add(kind: str, length: int, owner: int | None = None) -> Block:
            nonlocal pos
            block = Block(len(self.blocks), kind, pos, length, owner)
            self.blocks.append(block)
            pos += length
            return block

        self.others_header = add("others_header", others_len)
        self.own_header = add("own_header", own_len)
        self.markers = [add("marker", marker_len, w) for w in range(self.n_workers)]
        self.steps = [add("step", self.capacity, w) for w in range(self.n_workers)]
        self.finisher = add("finisher", self.finisher_capacity)

    @property
    def common(self) -> Block:
        return self.blocks[0]

    @property
    def n_blocks(self) -> int:
        return len(self.blocks)

    # --- what each worker sees -------------------------------------------------------------------

    def visible_blocks(self, worker: int) -> list[Block]:
        """The blocks worker sees, in its view order (own step last)."""
        own = self.steps[worker]
        if self.n_workers == 1 or self.kind in (LayoutKind.STEPWISE, LayoutKind.INDEPENDENT):
            return [self.common, own]
        others: list[Block] = []
        for o in range(self.n_workers):
            if o != worker:
                others += [self.steps[o], self.markers[o]]
        return [self.common, self.others_header, *others, self.own_header, own]

    def view(self, worker: int) -> list[ViewSpan]:
        """The worker's view: each visible block with its starting view position."""
        spans, pos = [], 0
        for block in self.visible_blocks(worker):
            spans.append(ViewSpan(block, pos))
            pos += block.length
        return spans

    def deltas(self, worker: int) -> list[int]:
        """Per block: view position minus canonical position (0 for blocks the worker cannot see)."""
        return self._deltas(self.view(worker))

    def _deltas(self, spans: list[ViewSpan]) -> list[int]:
        out = [0] * self.n_blocks
        for span in spans:
            out[span.block.id] = span.delta
        return out

    def finisher_view(self, workers: list[int] | None = None) -> list[ViewSpan]:
        """What the final-answer sequence sees: common, the given workers' current steps in order, the finisher."""
        spans, pos = [], 0
        chosen = range(self.n_workers) if workers is None else workers
        for block in [self.common, *[self.steps[w] for w in chosen], self.finisher]:
            spans.append(ViewSpan(block, pos))
            pos += block.length
        return spans

    def finisher_deltas(self, workers: list[int] | None = None) -> list[int]:
        """Offsets for the final-answer sequence (see finisher_view)."""
        return self._deltas(self.finisher_view(workers))

    def reset_finisher(self) -> range:
        """Empty the finisher block; returns its canonical range for removing the old cells."""
        used = range(self.finisher.start, self.finisher.end)
        self.finisher.length = 0
        return used

    def viewers(self, block: Block) -> tuple[int, ...]:
        """The workers whose cache sequence holds this block's cells (owner first for steps); () if nobody sees it."""
        shares_steps = self.n_workers > 1 and self.kind not in (LayoutKind.STEPWISE, LayoutKind.INDEPENDENT)
        if block.kind == "step":
            if not shares_steps:
                return (block.owner,)
            return (block.owner, *[w for w in range(self.n_workers) if w != block.owner])
        if block.kind == "common":
            return tuple(range(self.n_workers))
        if block.kind == "finisher":
            return ()
        if not shares_steps:
            return ()  # headers and markers only introduce other workers' unfinished steps
        if block.kind == "marker":
            return tuple(w for w in range(self.n_workers) if w != block.owner)
        return tuple(range(self.n_workers))

    # --- growth ------------------------------------------------------------------------------------

    def fill_header(self, block: Block) -> range:
        """Canonical positions of a header or marker block's text (written once, at start-up)."""
        return range(block.start, block.start + block.capacity)

    def mark_filled(self, block: Block) -> None:
        """The header text is in the cache."""
        block.length = block.capacity

    def append(self, worker: int, n: int = 1) -> range:
        """Reserve the next ``n`` canonical positions of the worker's step block."""
        return self._grow(self.steps[worker], n)

    def cut_step(self, worker: int, keep: int) -> range:
        """Shorten the worker's step block to its first ``keep`` positions; returns the canonical range to free."""
        step = self.steps[worker]
        if not 0 <= keep <= step.length:
            raise ValueError(f"cannot keep {keep} of {step.length} positions")
        cut = range(step.start + keep, step.end)
        step.length = keep
        return cut

    def append_finisher(self, n: int) -> range:
        """Reserve the next ``n`` positions of the final-answer prompt."""
        return self._grow(self.finisher, n)

    def append_prompt(self, n: int) -> range:
        """Reserve ``n`` positions at the start of the common block for the prompt."""
        if self.common.length or self.history:
            raise ValueError("the prompt must be written first")
        return self._grow(self.common, n)

    def append_note(self, n: int) -> range:
        """Reserve ``n`` positions at the end of the history for a note from the user, and record it."""
        positions = self._grow(self.common, n)
        self.history.append(HistoryEntry(None, positions.start, n))
        return positions

    def _grow(self, block: Block, n: int) -> range:
        if block.length + n > block.capacity:
            raise LayoutFull(f"{block.kind} block is full ({block.capacity} positions)")
        positions = range(block.end, block.end + n)
        block.length += n
        return positions

    def finish_step(self, worker: int) -> Move | None:
        """Move the worker's finished step to the end of the history; None if nothing moves."""
        step = self.steps[worker]
        if self.kind in (LayoutKind.CONTIGUOUS, LayoutKind.INDEPENDENT) or step.length == 0:
            return None
        if self.common.length + step.length > self.common.capacity:
            raise LayoutFull("the history is full")
        move = Move(step.start, step.end, self.common.end - step.start)
        self.history.append(HistoryEntry(worker, self.common.end, step.length))
        self.common.length += step.length
        step.length = 0
        return move

    def live_cells(self) -> int:
        """Tokens in the cache according to the layout."""
        return sum(b.length for b in self.blocks)

    def snapshot(self) -> Layout:
        """A copy to hand to another thread: the engine's own keeps changing while it runs.

        New blocks (their lengths change), the history's entries shared (they are frozen): a few microseconds
        where a deep copy of a long run's history takes tens of milliseconds.
        """
        other = copy.copy(self)
        other.blocks = blocks = [copy.copy(b) for b in self.blocks]
        other.others_header, other.own_header = blocks[self.others_header.id], blocks[self.own_header.id]
        other.markers = [blocks[b.id] for b in self.markers]
        other.steps = [blocks[b.id] for b in self.steps]
        other.finisher = blocks[self.finisher.id]
        other.history = list(self.history)
        return other

    def block_ranges(self) -> list[tuple[int, int, int]]:
        """(block id, p0, p1) of every block but common, as the backend's set_block wants them."""
        return [(b.id, b.start, b.start + b.capacity) for b in self.blocks[1:]]
