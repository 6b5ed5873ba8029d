"""The one bridge from a :class:`~hogwild_local.engine.layout.Layout` to the cache: the blocks, and where each
sequence sees them (the benchmark calls it too, with no record)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from .layout import Layout

if TYPE_CHECKING:
    from ..native.context import Context


def enable_views(ctx: Context, layout: Layout) -> None:
    """Turn on Hogwild views in the cache with the layout's blocks (every offset 0 until views are synced)."""
    ctx.hogwild_enable(layout.n_blocks)
    for blk, p0, p1 in layout.block_ranges():
        ctx.hogwild_set_block(blk, p0, p1)


def set_deltas(ctx: Context, seq: int, deltas: Sequence[int], record: dict[int, list[int]] | None = None) -> None:
    """Tell the cache where sequence ``seq`` sees every block; ``record`` (seq -> deltas) keeps what was sent."""
    ctx.hogwild_set_deltas(seq, deltas)
    if record is not None:
        record[seq] = deltas


def sync_views(ctx: Context, layout: Layout, record: dict[int, list[int]] | None = None) -> None:
    """Tell the cache where every worker sees every block now."""
    for w in range(layout.n_workers):
        set_deltas(ctx, w, layout.deltas(w), record)
