"""Whether a hint fits the run now: the check the TUI makes before it hands a hint to the engine.

The engine checks again before it writes the note (and ends the run if it does not fit), so this check
errs on the safe side: it works on the latest layout snapshot the UI has (``runner.LAYOUT_EVERY_S`` old at
most), keeps room for what the passes in flight may still write, and counts hints already queued.
"""

from __future__ import annotations

from ..engine.layout import Layout

# per worker: what the passes since the UI's layout snapshot may have written, plus a step header and the
# self-check question, so a hint checked against that snapshot still fits when it is written
PASS_MARGIN_TOKENS = 32


def free_room(layout: Layout, n_ctx: int) -> int:
    """Tokens a hint may take now: it must fit the common block, and the cache must keep the finisher's cells
    (the engine checks that room before every pass, not before writing a hint)."""
    in_cache = n_ctx - layout.live_cells() - layout.finisher.capacity - PASS_MARGIN_TOKENS * layout.n_workers
    return min(layout.common.capacity - layout.common.length, in_cache)


def refusal(layout: Layout | None, n_ctx: int, queued: int, tokens: int, chars: int) -> str | None:
    """Why a hint of ``tokens`` tokens (``chars`` characters) cannot join the history now, with ``queued``
    tokens of hints already on their way (one line), or None if it fits."""
    if layout is None:
        return "the run is still starting: try again in a moment"
    room = free_room(layout, n_ctx) - queued
    if tokens <= room:
        return None
    if room <= 0:
        return "no hint fits: the context is full (a larger --ctx leaves room for hints)"
    return (f"the hint does not fit: it takes {tokens} tokens and {room} fit in the free context now"
            f" (about {room * chars // tokens} characters)")
