"""The shared cache of an engine run, rebuilt from its trace (``Generation.trace``).

Each cell keeps its token, canonical position and sequences as the engine's decode, seq_add, seq_cp and
seq_rm calls change them. For every decoded token the replay says which cells its worker sees and at which
view position (the cell's position plus the worker's delta for the cell's block). The numpy reference
check in tests/test_engine.py starts from this, and so does scripts/recompute_gap.py, which measures how
far the shared cache is from stock llama.cpp recomputing the same tokens in view order.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from reference import RefToken


class TraceReplay:
    """Replays one run's trace; ``tokens`` and ``cells`` hold the cache as far as the replay has got."""

    def __init__(self, block_ranges: list[tuple[int, int, int]]):
        self.block_ranges = block_ranges  # (block, first position, end position), as Layout.block_ranges()
        self.cells: dict[int, tuple[int, set[int]]] = {}  # cell -> (canonical position, sequences)
        self.tokens: dict[int, int] = {}  # cell -> token id

    def run(self, trace: list[tuple]) -> Iterator[tuple[list, dict[int, np.ndarray], list[RefToken]]]:
        """Yield (batch, logits by batch index, what each batch token sees) for every decode of the trace."""
        for op, *args in trace:
            if op == "decode":
                batch, deltas, logits = args
                yield batch, logits, self._decode(batch, deltas)
            else:
                self._apply(op, *args)

    def _block_of(self, pos: int) -> int:
        return next((b for b, p0, p1 in self.block_ranges if p0 <= pos < p1), 0)

    def _decode(self, batch: list, deltas: dict[int, list[int]]) -> list[RefToken]:
        start = len(self.cells)
        for i, t in enumerate(batch):
            self.cells[start + i] = (t.pos, set(t.seq_ids))
            self.tokens[start + i] = t.token
        seen = []
        for i, t in enumerate(batch):
            seq = t.seq_ids[0]
            row = deltas.get(seq)  # no offsets sent yet: all zero
            view = lambda p, row=row: p + (row[self._block_of(p)] if row else 0)  # noqa: E731
            own = view(t.pos)
            visible = {c: view(p) for c, (p, seqs) in self.cells.items() if seq in seqs and view(p) <= own}
            seen.append(RefToken(t.token, start + i, own, visible))
        return seen

    def _apply(self, op: str, *args: int) -> None:
        if op == "seq_add":
            seq, p0, p1, shift = args
            for c, (p, seqs) in self.cells.items():
                if seq in seqs and p0 <= p < p1:
                    self.cells[c] = (p + shift, seqs)
        elif op == "seq_cp":
            src, dst, p0, p1 = args
            for p, seqs in self.cells.values():
                if src in seqs and p0 <= p < p1:
                    seqs.add(dst)
        elif op == "seq_rm":
            seq, p0, p1 = args
            for p, seqs in self.cells.values():
                if p0 <= p < p1:
                    seqs.clear() if seq < 0 else seqs.discard(seq)
