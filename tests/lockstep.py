"""W lock-step workers on a real layout, every worker's logits every pass against the numpy reference; and one
sequence through block-table changes.

Shared by tests/test_backend.py, tests/test_families.py and scripts/precision_table.py. The layout changes
every pass (every worker appends a token, sometimes a forced header of three), and every third pass a worker's
finished step moves into the history (a stock ``seq_add``, one K-shift). The reference mirrors the cache cell by
cell and sees every cell at its exact view position, in float64, whatever the size of the canonical positions.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

from hogwild_local.engine import enable_views, sync_views
from hogwild_local.engine.layout import Layout, LayoutKind
from hogwild_local.native import Model, Token, clear_log, recent_log
from reference import ReferenceModel, RefToken
from tiny_gguf import TinyModel


def attention_paths() -> set[str]:
    """The attention paths the patch logged at its graph builds ("flash", "query-copy"), read from llama.cpp's
    log, which keeps 64 lines: clear it before what is to be read, and read it after each decode or event."""
    marker = "hogwild attention: "
    return {line.split(marker)[1].split(" (")[0] for line in recent_log() if marker in line}


class ReferenceRun:
    """Mirror of the cache for the reference: cell -> (canonical position, viewers)."""

    def __init__(self, spec: TinyModel, layout: Layout, n_ctx: int):
        self.ref = ReferenceModel(spec, n_ctx)
        self.cache = self.ref.new_cache()
        self.layout = layout
        self.cells: dict[int, tuple[int, tuple[int, ...]]] = {}

    def view_pos(self, worker: int, pos: int) -> int:
        """Where ``worker`` sees the cell at canonical ``pos`` now."""
        deltas = self.layout.deltas(worker)
        for block in self.layout.blocks:
            if block.start <= pos < block.start + block.capacity:
                return pos + deltas[block.id]
        raise AssertionError(pos)

    def forward(self, tokens: list[Token]) -> np.ndarray:
        """The reference logits of one batch (every token, whether the batch asks for its logits or not)."""
        start = len(self.cells)
        for i, t in enumerate(tokens):
            self.cells[start + i] = (t.pos, t.seq_ids)
        ref_tokens = []
        for i, t in enumerate(tokens):
            s = t.seq_ids[0]
            own = self.view_pos(s, t.pos)
            visible = {}
            for cell, (pos, viewers) in self.cells.items():
                if s in viewers and self.view_pos(s, pos) <= own:
                    visible[cell] = self.view_pos(s, pos)
            ref_tokens.append(RefToken(t.token, start + i, own, visible))
        return self.ref.forward(self.cache, ref_tokens)

    def move(self, p0: int, p1: int, shift: int, share_with: tuple[int, ...] | None = None) -> None:
        """Cells at canonical [p0, p1) move by ``shift`` (and are shared with ``share_with``)."""
        for cell, (pos, viewers) in self.cells.items():
            if p0 <= pos < p1:
                self.cells[cell] = (pos + shift, share_with or viewers)


@dataclass
class LockstepResult:
    """What a lock-step run measured, and the layout it ended with."""

    worst: float  # max abs logit error over every worker, every pass
    layout: Layout
    prompt_len: int
    cells_used: int  # what the cache says it holds at the end
    mirror_cells: int  # what the reference holds
    attention: set[str]  # the patch's attention paths, as it logged them at graph builds: "flash", "query-copy"


def run_lockstep(spec: TinyModel, model: Model, cache_type: str, kind: LayoutKind, *, n_workers: int = 3,
                 capacity: int = 96, n_ctx: int = 1024, passes: int = 14, seed: int = 1,
                 flash_attn: bool = False) -> LockstepResult:
    """Run ``passes`` lock-step passes of ``n_workers`` workers on a layout of ``capacity`` positions per block,
    in a cache of ``n_ctx`` cells, and compare every logit with the reference. With ``flash_attn`` the Hogwild
    passes take the patch's flash-attention path (key copies after the used cells) where the cache has room for
    it, else its query-copy graph (the fused kernel on the CPU); without, the query-copy graph."""
    rng = random.Random(seed)
    layout = Layout(kind, n_workers, capacity=capacity, header_lengths=(2, 1, 2))
    mirror = ReferenceRun(spec, layout, n_ctx)
    worst = 0.0
    attention: set[str] = set()
    with model.context(n_ctx=n_ctx, n_seq=n_workers, n_batch=64, cache_type=cache_type, n_threads=2,
                       flash_attn=flash_attn) as ctx:
        enable_views(ctx, layout)

        def run(tokens: list[Token]) -> None:
            nonlocal worst
            sync_views(ctx, layout)
            clear_log()
            ctx.decode(tokens)
            attention.update(attention_paths())
            got = [ctx.logits(i) for i, t in enumerate(tokens) if t.logits]
            want = [row for row, t in zip(mirror.forward(tokens), tokens, strict=True) if t.logits]
            for g, e in zip(got, want, strict=True):
                worst = max(worst, float(np.abs(g - e).max()))

        prompt = [rng.randrange(spec.n_vocab) for _ in range(10)]
        layout.append_prompt(len(prompt))
        run([Token(t, i, tuple(range(n_workers)), i == len(prompt) - 1) for i, t in enumerate(prompt)])
        for block in layout.blocks[1:]:
            if block.kind != "step" and block.capacity and layout.viewers(block):
                layout.mark_filled(block)
                viewers = layout.viewers(block)
                run([Token(rng.randrange(spec.n_vocab), p, viewers, True) for p in layout.fill_header(block)])

        for step in range(passes):
            tokens = []
            for w in range(n_workers):
                n = 3 if (step + w) % 5 == 0 else 1  # sometimes a forced header: several tokens of one worker
                viewers = layout.viewers(layout.steps[w])
                positions = layout.append(w, n)
                tokens += [Token(rng.randrange(spec.n_vocab), p, viewers, True) for p in positions]
            run(tokens)
            # a worker finishes a step now and then: its cells move to the end of the history
            if step % 3 == 2:
                w = (step // 3) % n_workers
                move = layout.finish_step(w)
                if move:
                    if kind is LayoutKind.STEPWISE:
                        for o in range(n_workers):
                            if o != w:
                                ctx.seq_cp(w, o, move.p0, move.p1)
                    ctx.seq_add(w, move.p0, move.p1, move.shift)
                    mirror.move(move.p0, move.p1, move.shift, tuple(range(n_workers)))
        return LockstepResult(worst, layout, len(prompt), ctx.cells_used(), len(mirror.cells), attention)


def block_table_changes(spec: TinyModel, model: Model, cache_type: str) -> list[float]:
    """One sequence: 6 prompt tokens in block 0, 5 tokens in a block of base 300 (every offset 0); after the
    third, the block's start moves under its cells, after the fourth the mode is turned off (both re-rotate
    the keys whose base changed, by K-shift). The max abs logit error of every token against the reference,
    which sees every cell at its canonical position throughout."""
    prompt, tail, far = [5, 7, 1, 8, 2, 8], [13, 21, 34, 55, 8], 300
    positions = [*range(len(prompt)), *range(far, far + len(tail))]
    ref = ReferenceModel(spec, 1024)
    expected = ref.forward(ref.new_cache(), [RefToken(t, c, positions[c], {j: positions[j] for j in range(c + 1)})
                                             for c, t in enumerate(prompt + tail)])
    got: list[np.ndarray] = []
    with model.context(n_ctx=1024, n_seq=1, n_batch=64, cache_type=cache_type, n_threads=2) as ctx:

        def run(tokens: list[Token]) -> None:
            ctx.decode(tokens)
            got.extend(ctx.logits(i) for i in range(len(tokens)))

        ctx.hogwild_enable(2)
        ctx.hogwild_set_block(1, far, far + 100)
        run([Token(t, i, (0,), True) for i, t in enumerate(prompt)])
        run([Token(t, far + i, (0,), True) for i, t in enumerate(tail[:3])])
        ctx.hogwild_set_block(1, far - 10, far + 100)  # the base of the cells at far.. moves
        run([Token(tail[3], far + 3, (0,), True)])
        ctx.hogwild_enable(0)  # stock again: every key back at its canonical position
        run([Token(tail[4], far + 4, (0,), True)])
    assert len(got) == len(expected)
    return [float(np.abs(g - e).max()) for g, e in zip(got, expected, strict=True)]
