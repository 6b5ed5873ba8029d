"""The block/position layout engine (hogwild_local/engine/layout.py), pure Python.

Two parts:

- worked examples that print a W=2 layout as a table (block, canonical range, view range), so a reader
  can see what the method does: every worker sees the same cached cells in its own order;
- hypothesis property tests over random schedules (prompt, header fill, passes of appends by several
  workers, step completions, user notes) against an independent model of the cache:
  ``canonical position -> cell id``, a fresh cell id per appended token, each Move applied by hand.
"""

from __future__ import annotations

import copy
import itertools
import textwrap
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hogwild_local.engine.layout import MAX_WORKERS, HistoryEntry, Layout, LayoutFull, LayoutKind, Move

COMBINED, CONTIGUOUS, STEPWISE = LayoutKind.COMBINED, LayoutKind.CONTIGUOUS, LayoutKind.STEPWISE
INDEPENDENT = LayoutKind.INDEPENDENT
PRIVATE_STEPS = (STEPWISE, INDEPENDENT)  # layouts where nobody sees another worker's unfinished step
NO_MOVES = (CONTIGUOUS, INDEPENDENT)  # layouts whose steps never move into the history


def block_name(block) -> str:
    return block.kind if block.owner is None else f"{block.kind}[{block.owner}]"


def view_table(layout: Layout, worker: int) -> str:
    """The worker's view, one visible block a line, in view order."""
    rows = [f"{'block':<14} {'canonical':<12} view"]
    for span in layout.view(worker):
        b = span.block
        canonical = f"[{b.start}, {b.end})"
        rows.append(f"{block_name(b):<14} {canonical:<12} [{span.view_start}, {span.view_start + b.length})")
    return "\n".join(rows)


def table(text: str) -> str:
    return textwrap.dedent(text).strip("\n")


def fill_headers(layout: Layout) -> None:
    for block in layout.blocks[1:]:
        if block.kind != "step":
            layout.mark_filled(block)


# --------------------------------------------------------------------------------------------------
# worked examples


@pytest.fixture
def two_workers() -> Layout:
    """W=2 combined, capacity 100, headers: others 2 tokens, marker 1, own 2; prompt of 3 tokens;
    Alice (worker 0) has written 2 tokens of her current step, Bob (worker 1) 3."""
    layout = Layout(COMBINED, 2, capacity=100, header_lengths=(2, 1, 2))
    assert layout.append_prompt(3) == range(0, 3)
    fill_headers(layout)
    assert layout.append(0, 2) == range(106, 108)
    assert layout.append(1, 3) == range(206, 209)
    return layout


def test_canonical_ranges_are_fixed(two_workers):
    # common owns [0, capacity), then the headers, the markers, then one capacity-sized range per step
    assert [(block_name(b), b.start, b.start + b.capacity) for b in two_workers.blocks] == [
        ("common", 0, 100),
        ("others_header", 100, 102),
        ("own_header", 102, 104),
        ("marker[0]", 104, 105),
        ("marker[1]", 105, 106),
        ("step[0]", 106, 206),
        ("step[1]", 206, 306),
        ("finisher", 306, 306),
    ]
    assert two_workers.block_ranges() == [(b.id, b.start, b.start + b.capacity) for b in two_workers.blocks[1:]]
    assert two_workers.live_cells() == 3 + 2 + 2 + 1 + 1 + 2 + 3


def test_combined_two_worker_views(two_workers):
    # Alice: the prompt, "other workers:" header, Bob's step and its closing marker, "you:" header, her step
    assert view_table(two_workers, 0) == table(
        """
        block          canonical    view
        common         [0, 3)       [0, 3)
        others_header  [100, 102)   [3, 5)
        step[1]        [206, 209)   [5, 8)
        marker[1]      [105, 106)   [8, 9)
        own_header     [102, 104)   [9, 11)
        step[0]        [106, 108)   [11, 13)
        """
    )
    # Bob sees the same cells, in his own order: Alice's step in the middle, his own last
    assert view_table(two_workers, 1) == table(
        """
        block          canonical    view
        common         [0, 3)       [0, 3)
        others_header  [100, 102)   [3, 5)
        step[0]        [106, 108)   [5, 7)
        marker[0]      [104, 105)   [7, 8)
        own_header     [102, 104)   [8, 10)
        step[1]        [206, 209)   [10, 13)
        """
    )
    # what the backend is told: per block id, view start - canonical start (0 where unseen)
    assert two_workers.deltas(0) == [0, -97, -93, 0, -97, -95, -201, 0]
    assert two_workers.deltas(1) == [0, -97, -94, -97, 0, -101, -196, 0]
    assert two_workers.viewers(two_workers.steps[1]) == (1, 0)
    assert two_workers.viewers(two_workers.markers[1]) == (0,)


def test_finished_step_moves_into_history(two_workers):
    move = two_workers.finish_step(0)
    # Alice's 2 tokens move from [106, 108) to the end of common, [3, 5): one shift by -103
    assert move == Move(106, 108, -103)
    assert two_workers.history == [HistoryEntry(0, 3, 2)]
    assert view_table(two_workers, 0) == table(
        """
        block          canonical    view
        common         [0, 5)       [0, 5)
        others_header  [100, 102)   [5, 7)
        step[1]        [206, 209)   [7, 10)
        marker[1]      [105, 106)   [10, 11)
        own_header     [102, 104)   [11, 13)
        step[0]        [106, 106)   [13, 13)
        """
    )
    assert two_workers.finish_step(0) is None  # an empty step does not move
    two_workers.append_note(1)
    assert two_workers.finish_step(1) == Move(206, 209, 6 - 206)
    assert two_workers.history == [HistoryEntry(0, 3, 2), HistoryEntry(None, 5, 1), HistoryEntry(1, 6, 3)]


def test_cut_step_frees_the_tail(two_workers):
    layout = two_workers  # Bob's step holds 3 tokens at 206..208
    assert layout.append(1, 4) == range(209, 213)
    assert layout.cut_step(1, 5) == range(211, 213)
    assert layout.steps[1].length == 5 and layout.append(1) == range(211, 212)  # appends go on where the cut was
    assert layout.cut_step(1, 0) == range(206, 212) and layout.steps[1].length == 0
    with pytest.raises(ValueError, match="cannot keep 1 of 0 positions"):
        layout.cut_step(1, 1)


def test_stepwise_and_contiguous_views(two_workers):
    stepwise = Layout(STEPWISE, 2, capacity=100, header_lengths=(2, 1, 2))
    stepwise.append_prompt(3)
    stepwise.append(0, 2)
    stepwise.append(1, 3)
    # only finished steps are shared: nobody sees the others' current step
    assert view_table(stepwise, 1) == table(
        """
        block          canonical    view
        common         [0, 3)       [0, 3)
        step[1]        [206, 209)   [3, 6)
        """
    )
    assert stepwise.viewers(stepwise.steps[1]) == (1,)

    contiguous = Layout(CONTIGUOUS, 2, capacity=100, header_lengths=(2, 1, 2))
    contiguous.append_prompt(3)
    contiguous.append(0, 2)
    assert contiguous.finish_step(0) is None  # never moves: the whole output stays one block
    assert contiguous.history == []
    assert [block_name(s.block) for s in contiguous.view(0)] == [
        "common", "others_header", "step[1]", "marker[1]", "own_header", "step[0]"
    ]


def test_one_worker_view():
    layout = Layout(COMBINED, 1, capacity=10, header_lengths=(2, 1, 2))
    layout.append_prompt(4)
    layout.append(0, 3)
    assert view_table(layout, 0) == table(
        """
        block          canonical    view
        common         [0, 4)       [0, 4)
        step[0]        [15, 18)     [4, 7)
        """
    )


def test_layout_full_examples():
    layout = Layout(COMBINED, 2, capacity=5, header_lengths=(1, 1, 1))
    with pytest.raises(LayoutFull):
        layout.append_prompt(6)
    assert layout.common.length == 0
    layout.append_prompt(2)
    layout.append(0, 4)
    layout.append(1, 2)
    before = copy.deepcopy(layout)
    with pytest.raises(LayoutFull):
        layout.append(0, 2)  # step[0] would hold 6 > 5
    with pytest.raises(LayoutFull):
        layout.finish_step(0)  # common would hold 2 + 4 > 5
    with pytest.raises(LayoutFull):
        layout.append_note(4)
    assert layout == before
    assert layout.finish_step(1) == Move(layout.steps[1].start, layout.steps[1].start + 2, 2 - layout.steps[1].start)
    layout.append_note(1)  # common is exactly full now
    assert layout.common.length == 5


def test_bad_arguments():
    with pytest.raises(ValueError):
        Layout(COMBINED, 0, capacity=10)
    with pytest.raises(ValueError):
        Layout(COMBINED, MAX_WORKERS + 1, capacity=10)
    layout = Layout("stepwise", 2, capacity=10)
    assert layout.kind is STEPWISE
    layout.append_note(1)
    with pytest.raises(ValueError):
        layout.append_prompt(1)  # the prompt comes first


# --------------------------------------------------------------------------------------------------
# the model of the cache


@dataclass
class CacheModel:
    """What the cache should hold: canonical position -> cell id, the history and each current step."""

    layout: Layout
    prompt: int = 0
    cells: dict[int, int] = field(default_factory=dict)
    next_cell: int = 0
    history: list[tuple[int | None, list[int]]] = field(default_factory=list)  # (author, cells)
    steps: list[list[int]] = field(default_factory=list)  # cells of each current step, in append order

    def __post_init__(self) -> None:
        self.steps = [[] for _ in range(self.layout.n_workers)]

    @property
    def common_length(self) -> int:
        return self.prompt + sum(len(cells) for _, cells in self.history)

    def add(self, positions: range) -> list[int]:
        ids = []
        for p in positions:
            assert p not in self.cells, f"position {p} handed out twice"
            self.cells[p] = self.next_cell
            ids.append(self.next_cell)
            self.next_cell += 1
        return ids

    def apply(self, move: Move) -> None:
        moved = {p: c for p, c in self.cells.items() if move.p0 <= p < move.p1}
        rest = {p: c for p, c in self.cells.items() if not move.p0 <= p < move.p1}
        for p, c in moved.items():
            assert p + move.shift not in rest, f"move {move} lands on a live cell at {p + move.shift}"
            rest[p + move.shift] = c
        self.cells = rest


def check(layout: Layout, model: CacheModel) -> None:
    """Every invariant, after every operation."""
    W, kind = layout.n_workers, layout.kind
    blocks = layout.blocks
    assert [b.id for b in blocks] == list(range(layout.n_blocks))

    # 3. canonical ranges are disjoint; every live cell lies in exactly one block, in its filled part
    ranges = sorted((b.start, b.start + b.capacity) for b in blocks)
    for (_, e0), (s1, _) in itertools.pairwise(ranges):
        assert e0 <= s1, f"overlapping block ranges {ranges}"
    assert layout.block_ranges() == [(b.id, b.start, b.start + b.capacity) for b in blocks[1:]]
    # (ranges are disjoint, so "in exactly one block" == the filled parts hold every cell and nothing else)
    filled = 0
    for b in blocks:
        assert 0 <= b.length <= b.capacity
        assert all(p in model.cells for p in range(b.start, b.end)), f"hole in {block_name(b)}"
        filled += b.length
    assert filled == len(model.cells), "live cells outside every block's filled part"

    # the blocks hold what the model says they hold
    common = layout.common
    assert common.length == model.common_length
    for w, step in enumerate(layout.steps):
        assert [model.cells[p] for p in range(step.start, step.end)] == model.steps[w]

    # 7. live cells
    assert layout.live_cells() == len(model.cells) == sum(b.length for b in blocks)

    # 4. history == completion order, consecutive ranges after the prompt, cells in the order written
    assert [(e.worker, e.length) for e in layout.history] == [(a, len(c)) for a, c in model.history]
    pos = model.prompt
    for entry, (_, cells) in zip(layout.history, model.history, strict=True):
        assert entry.start == pos
        assert [model.cells[p] for p in range(entry.start, entry.start + entry.length)] == cells
        pos += entry.length
    assert pos == common.end

    # 5. contiguous: nothing ever reaches the history but notes
    if kind in NO_MOVES:
        assert all(e.worker is None for e in layout.history)

    all_workers = set(range(W))
    seen_by: dict[int, set[int]] = {b.id: set() for b in blocks}
    for w in range(W):
        visible = layout.visible_blocks(w)
        for b in visible:
            seen_by[b.id].add(w)
        spans = layout.view(w)
        deltas = layout.deltas(w)
        assert [s.block.id for s in spans] == [b.id for b in visible]
        assert all(blocks[b.id] is b for b in visible) and len({b.id for b in visible}) == len(visible)

        # 2. view order
        names = [block_name(b) for b in visible]
        if W == 1 or kind in PRIVATE_STEPS:
            assert names == ["common", f"step[{w}]"]
        else:
            others = [n for o in range(W) if o != w for n in (f"step[{o}]", f"marker[{o}]")]
            assert names == ["common", "others_header", *others, "own_header", f"step[{w}]"]
        assert visible[-1] is layout.steps[w]

        # 1. the visible cells sit at view positions 0 .. len-1, exactly once each
        assert len(deltas) == layout.n_blocks
        pos = 0
        for span in spans:
            assert span.view_start == pos
            assert deltas[span.block.id] == span.delta == span.view_start - span.block.start
            pos += span.block.length
        assert pos == sum(b.length for b in layout.visible_blocks(w))
        seen = {}
        for b in visible:
            for p in range(b.start, b.end):
                v = p + deltas[b.id]
                assert v not in seen, f"worker {w}: two cells at view position {v}"
                seen[v] = model.cells[p]
        assert sorted(seen) == list(range(sum(b.length for b in layout.visible_blocks(w))))
        visible_ids = {b.id for b in visible}
        assert all(deltas[b.id] == 0 for b in blocks if b.id not in visible_ids)

    # 6. viewers
    for b in blocks:
        viewers = layout.viewers(b)
        assert len(set(viewers)) == len(viewers) and set(viewers) <= all_workers
        if b.kind == "marker":
            assert b.owner not in viewers
        if b.kind == "step":
            assert viewers[0] == b.owner
            if kind in PRIVATE_STEPS or W == 1:
                assert viewers == (b.owner,)
            else:
                assert set(viewers) == all_workers
        assert set(viewers) == seen_by[b.id], f"{block_name(b)}: viewers {viewers}, seen by {seen_by[b.id]}"


# --------------------------------------------------------------------------------------------------
# random schedules


@dataclass(frozen=True)
class Schedule:
    kind: LayoutKind
    n_workers: int
    header_lengths: tuple[int, int, int]
    capacity: int
    prompt: int
    ops: tuple  # ("pass", ((worker, n), ...)) | ("finish", worker) | ("note", n)


@st.composite
def schedules(draw, small: bool = False) -> Schedule:
    n_workers = draw(st.integers(1, MAX_WORKERS))
    kind = draw(st.sampled_from(list(LayoutKind)))
    header_lengths = draw(st.tuples(st.integers(0, 5), st.integers(0, 5), st.integers(0, 5)))
    worker = st.integers(0, n_workers - 1)
    one_pass = st.lists(
        st.tuples(worker, st.integers(1, 4)), min_size=1, max_size=n_workers, unique_by=lambda t: t[0]
    ).map(lambda appends: ("pass", tuple(appends)))
    op = st.one_of(one_pass, worker.map(lambda w: ("finish", w)), st.integers(1, 4).map(lambda n: ("note", n)))
    ops = tuple(draw(st.lists(op, max_size=30)))
    if small:
        capacity = draw(st.integers(1, 12))
        prompt = draw(st.integers(0, capacity + 2))  # may itself overflow
    else:
        prompt = draw(st.integers(0, 8))
        written = sum(n for o in ops if o[0] == "pass" for _, n in o[1]) + sum(o[1] for o in ops if o[0] == "note")
        capacity = prompt + written + draw(st.integers(0, 2))  # enough for everything, sometimes exactly
    return Schedule(kind, n_workers, header_lengths, capacity, prompt, ops)


def snapshot(layout: Layout) -> tuple:
    return tuple((b.id, b.kind, b.start, b.capacity, b.owner, b.length) for b in layout.blocks), tuple(layout.history)


def expect_full(layout: Layout, call, should_overflow: bool):
    """Run a growing call: LayoutFull exactly when the model says the block overflows, and then no change."""
    before = snapshot(layout)
    try:
        result = call()
    except LayoutFull:
        assert should_overflow, "LayoutFull raised with room left"
        assert snapshot(layout) == before, "LayoutFull left the layout changed"
        return LayoutFull
    assert not should_overflow, "no LayoutFull although the block overflows"
    return result


def run_schedule(s: Schedule) -> int:
    """Play the schedule, checking every invariant after every call; returns how many LayoutFull came."""
    layout = Layout(s.kind, s.n_workers, capacity=s.capacity, header_lengths=s.header_lengths)
    model = CacheModel(layout)
    fulls = 0
    check(layout, model)

    got = expect_full(layout, lambda: layout.append_prompt(s.prompt), s.prompt > s.capacity)
    if got is LayoutFull:
        fulls += 1
    else:
        assert got == range(0, s.prompt)
        model.add(got)
        model.prompt = s.prompt
    check(layout, model)

    for block in layout.blocks[1:]:
        if block.kind != "step":
            model.add(layout.fill_header(block))
            layout.mark_filled(block)
            assert block.length == len(layout.fill_header(block)) == block.capacity
            check(layout, model)

    for op in s.ops:
        if op[0] == "pass":
            for w, n in op[1]:
                step = layout.steps[w]
                old_end = step.start + len(model.steps[w])
                got = expect_full(layout, lambda w=w, n=n: layout.append(w, n), len(model.steps[w]) + n > s.capacity)
                if got is LayoutFull:
                    fulls += 1
                else:
                    assert got == range(old_end, old_end + n)
                    model.steps[w] += model.add(got)
                check(layout, model)
        elif op[0] == "finish":
            w = op[1]
            step, cells = layout.steps[w], model.steps[w]
            moves = s.kind not in NO_MOVES and len(cells) > 0
            old_common = model.common_length
            got = expect_full(layout, lambda w=w: layout.finish_step(w), moves and old_common + len(cells) > s.capacity)
            if got is LayoutFull:
                fulls += 1
            elif not moves:
                assert got is None  # 5. contiguous (or an empty step): nothing moves
            else:
                assert got == Move(step.start, step.start + len(cells), old_common - step.start)
                model.apply(got)
                model.history.append((w, cells))
                model.steps[w] = []
                # the moved cells are exactly at the end of common, in the order they were written
                assert [model.cells[p] for p in range(old_common, layout.common.end)] == cells
                assert layout.common.end == old_common + len(cells)
            check(layout, model)
        else:
            n = op[1]
            old_common = model.common_length
            got = expect_full(layout, lambda n=n: layout.append_note(n), old_common + n > s.capacity)
            if got is LayoutFull:
                fulls += 1
            else:
                assert got == range(old_common, old_common + n)
                model.history.append((None, model.add(got)))
            check(layout, model)
    return fulls


PROPERTY_SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY_SETTINGS
@given(schedules())
def test_random_schedules(s):
    assert run_schedule(s) == 0  # capacity is large enough for the whole schedule


@PROPERTY_SETTINGS
@given(schedules(small=True))
def test_random_schedules_small_capacity(s):
    run_schedule(s)  # LayoutFull exactly when a block would overflow, and the layout unchanged


def test_small_capacity_does_overflow():
    # the small-capacity property is not vacuous: this schedule overflows every kind of growth
    s = Schedule(COMBINED, 2, (1, 1, 1), 4, 6, (("pass", ((0, 4), (1, 3))), ("pass", ((0, 1),)), ("note", 2),
                                               ("finish", 0), ("finish", 1), ("note", 1), ("finish", 0)))
    # prompt 6 > 4; step[0] 4 + 1 > 4; after the note (common 2) neither step fits in common; the last note fits,
    # and step[0] still does not
    assert run_schedule(s) == 5


# --------------------------------------------------------------------------------------------------
# viewers() against the views: who holds a block's cells in its cache sequence should be exactly who sees it


@pytest.mark.parametrize("kind, n_workers",
                         [(STEPWISE, 2), (COMBINED, 1), (CONTIGUOUS, 1), (COMBINED, 3), ("independent", 3)])
def test_viewers_match_views(kind, n_workers):
    layout = Layout(kind, n_workers, capacity=10, header_lengths=(2, 1, 2))
    layout.append_prompt(8)
    for block in layout.blocks[1:]:
        if block.kind != "step" and layout.viewers(block):  # fill what has viewers, as test_backend does
            layout.mark_filled(block)
    layout.append(0, 4)  # worker 0's view positions 8 .. 11
    for b in layout.blocks:
        seen_by = {w for w in range(n_workers) if any(v is b for v in layout.visible_blocks(w))}
        assert set(layout.viewers(b)) == seen_by, f"{block_name(b)}: viewers {layout.viewers(b)}, seen by {seen_by}"


def test_snapshot_is_an_equal_copy_the_engine_cannot_change():
    """The TUI reads a snapshot on the UI thread while the engine goes on: same blocks, views and history at
    the time it was taken, unchanged by anything the original does afterwards."""
    layout = Layout(LayoutKind.COMBINED, 3, capacity=64, header_lengths=(2, 1, 2), finisher_capacity=4)
    layout.append_prompt(5)
    for w in range(3):
        layout.append(w, 3 + w)
    layout.finish_step(1)
    copy = layout.snapshot()
    before = snapshot(copy)
    assert before == snapshot(layout)
    assert [copy.deltas(w) for w in range(3)] == [layout.deltas(w) for w in range(3)]
    assert copy.steps[2] is copy.blocks[copy.steps[2].id] and copy.common is copy.blocks[0]

    layout.append(0, 4)
    layout.finish_step(0)
    layout.cut_step(2, 1)
    layout.append_note(2)
    assert snapshot(copy) == before
    assert snapshot(layout) != before
