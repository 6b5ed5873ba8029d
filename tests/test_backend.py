"""The patched llama.cpp against an independent float64 numpy reference (tests/reference.py).

Every case runs on tiny random GGUF models of llama shape (normal RoPE) and qwen2 shape (NeoX RoPE, q/k/v
biases), both with grouped-query attention, and with f32 and f16 KV caches.
"""

from __future__ import annotations

import random
import subprocess
import sys

import numpy as np
import pytest

from hogwild_local.backend import BackendError, Context, Model, Token, recent_log
from hogwild_local.engine import enable_views, sync_views
from hogwild_local.layout import Layout, LayoutKind
from reference import ReferenceModel, RefToken, sequential_tokens
from tiny_gguf import write_tiny_model
from where import GPU_LAYERS, tolerance

TOLERANCE = {"f32": tolerance(1e-4), "f16": tolerance(2e-2)}


@pytest.fixture(scope="module", params=["llama", "qwen2"])
def tiny(request, tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / f"tiny-{request.param}.gguf"
    spec = write_tiny_model(path, request.param, seed=7)
    model = Model(spec.path, n_gpu_layers=GPU_LAYERS)
    yield spec, model
    model.close()


def open_context(model: Model, cache_type: str, n_seq: int = 3) -> Context:
    return model.context(n_ctx=1024, n_seq=n_seq, n_batch=64, cache_type=cache_type, n_threads=2)


def last_cell_map() -> list[int | None]:
    """The position of every cell (None: empty) in the last map llama.cpp logged (LLAMA_KV_CACHE_DEBUG=3)."""
    maps = [m for m in recent_log() if m.startswith("\n") and "*" in m and m.strip()[:1] in "0123456789."]
    assert maps, "no cell map in the log: was LLAMA_KV_CACHE_DEBUG=3 set before the context was made?"
    return [None if cell == "." else int(cell) for cell in maps[-1].split() if cell != "*"]


def decode_logits(ctx: Context, tokens: list[Token]) -> list[np.ndarray]:
    ctx.decode(tokens)
    return [ctx.logits(i) for i, t in enumerate(tokens) if t.logits]


# --------------------------------------------------------------------------------------------------
# 1. mode off / all offsets zero: bit-identical to stock


@pytest.mark.parametrize("cache_type", ["f32", "f16"])
def test_zero_offsets_bit_identical_to_stock(tiny, cache_type):
    _, model = tiny
    prompt = [3, 9, 4, 1, 5, 9, 2, 6]
    step = [Token(11, 8, (0,), True), Token(12, 8, (1,), True)]

    def run(enable: bool) -> list[np.ndarray]:
        with open_context(model, cache_type, n_seq=2) as ctx:
            if enable:
                ctx.hogwild_enable(4)
                ctx.hogwild_set_block(1, 500, 600)
                ctx.hogwild_set_deltas(0, [0, 0, 0, 0])
            out = decode_logits(ctx, [Token(t, i, (0, 1), i == 7) for i, t in enumerate(prompt)])
            return out + decode_logits(ctx, step)

    stock, zero = run(False), run(True)
    for a, b in zip(stock, zero):
        assert np.array_equal(a, b)


# --------------------------------------------------------------------------------------------------
# 2. one sequence, one shifted block == stock K-shift == numpy


@pytest.mark.parametrize("cache_type", ["f32", "f16"])
def test_shifted_block_matches_kshift_and_reference(tiny, cache_type):
    spec, model = tiny
    prompt = [5, 7, 1, 8, 2, 8]
    tail = [13, 21, 34]
    far = 300  # canonical start of block 1
    # Hogwild: the tail lives at canonical far.., seen right after the prompt
    with open_context(model, cache_type, n_seq=1) as ctx:
        ctx.hogwild_enable(2)
        ctx.hogwild_set_block(1, far, far + 100)
        ctx.decode([Token(t, i, (0,)) for i, t in enumerate(prompt)])
        ctx.hogwild_set_deltas(0, [0, len(prompt) - far])
        view = decode_logits(ctx, [Token(t, far + i, (0,), True) for i, t in enumerate(tail)])
        assert ctx.hogwild_get_block(far + 1) == 1 and ctx.hogwild_get_block(3) == 0
    # stock: write prompt + tail just below and at far, then K-shift both to 0.. (seq_add)
    with open_context(model, cache_type, n_seq=1) as ctx:
        base = far - len(prompt)
        ctx.decode([Token(t, base + i, (0,)) for i, t in enumerate(prompt + tail)])
        ctx.seq_add(0, base, far + len(tail), -base)
        shifted = decode_logits(ctx, [Token(55, len(prompt) + len(tail), (0,), True)])
    ref = ReferenceModel(spec)
    cache = ref.new_cache()
    ref.forward(cache, sequential_tokens(prompt))
    expected = ref.forward(cache, sequential_tokens(tail, start_cell=len(prompt), start_pos=len(prompt),
                                                     prior={c: c for c in range(len(prompt))}))
    err = max(float(np.abs(got - want).max()) for got, want in zip(view, expected))
    print(f"\nmax abs error: shifted block {spec.arch} {cache_type}: {err:.3g}")
    assert err <= TOLERANCE[cache_type]
    # the K-shifted stock cache and the reference agree on the next token too
    n = len(prompt) + len(tail)
    nxt = ref.forward(cache, [RefToken(55, n, n, {c: c for c in range(n + 1)})])
    assert np.abs(shifted[0] - nxt[0]).max() <= TOLERANCE[cache_type]


# --------------------------------------------------------------------------------------------------
# 3 + 4. W lock-step workers on a real layout that changes every pass, with step completions


class ReferenceRun:
    """Mirror of the cache for the reference: cell -> (canonical position, viewers)."""

    def __init__(self, spec, layout: Layout):
        self.ref = ReferenceModel(spec)
        self.cache = self.ref.new_cache()
        self.layout = layout
        self.cells: dict[int, tuple[int, tuple[int, ...]]] = {}

    def view_pos(self, worker: int, pos: int) -> int:
        deltas = self.layout.deltas(worker)
        for block in self.layout.blocks:
            if block.start <= pos < block.start + block.capacity:
                return pos + deltas[block.id]
        raise AssertionError(pos)

    def forward(self, tokens: list[Token]) -> np.ndarray:
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
        for cell, (pos, viewers) in self.cells.items():
            if p0 <= pos < p1:
                self.cells[cell] = (pos + shift, share_with or viewers)


@pytest.mark.parametrize("kind", [LayoutKind.COMBINED, LayoutKind.STEPWISE])
@pytest.mark.parametrize("cache_type", ["f32", "f16"])
def test_lockstep_workers_match_reference(tiny, cache_type, kind, monkeypatch):
    monkeypatch.setenv("LLAMA_KV_CACHE_DEBUG", "3")  # llama.cpp then logs the cell map before placing a batch
    spec, model = tiny
    n_workers = 3
    rng = random.Random(1)
    layout = Layout(kind, n_workers, capacity=96, header_lengths=(2, 1, 2))
    mirror = ReferenceRun(spec, layout)
    worst = 0.0
    with open_context(model, cache_type, n_seq=n_workers) as ctx:
        enable_views(ctx, layout)

        def run(tokens: list[Token]) -> None:
            nonlocal worst
            sync_views(ctx, layout)
            got = decode_logits(ctx, tokens)
            want = [row for row, t in zip(mirror.forward(tokens), tokens) if t.logits]
            for g, e in zip(got, want):
                worst = max(worst, float(np.abs(g - e).max()))

        prompt = [rng.randrange(spec.n_vocab) for _ in range(10)]
        layout.append_prompt(len(prompt))
        run([Token(t, i, tuple(range(n_workers)), i == len(prompt) - 1) for i, t in enumerate(prompt)])
        for block in layout.blocks[1:]:
            if block.kind != "step" and block.capacity and layout.viewers(block):
                layout.mark_filled(block)
                viewers = layout.viewers(block)
                run([Token(rng.randrange(spec.n_vocab), p, viewers, True) for p in layout.fill_header(block)])

        for step in range(14):
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
        assert ctx.cells_used() == layout.live_cells() == len(mirror.cells)
        # the compaction keeps the history (block 0: canonical positions below the capacity) below the other blocks
        cells = last_cell_map()
        common = [i for i, pos in enumerate(cells) if pos is not None and pos < layout.capacity]
        others = [i for i, pos in enumerate(cells) if pos is not None and pos >= layout.capacity]
        assert len(common) > len(prompt) and others and max(common) < min(others), cells
    print(f"\nmax abs error: lockstep {spec.arch} {cache_type} {kind.value}: {worst:.3g}")
    assert worst <= TOLERANCE[cache_type], worst


# --------------------------------------------------------------------------------------------------
# 5. determinism and error codes


def test_deterministic(tiny):
    _, model = tiny

    def run() -> np.ndarray:
        with open_context(model, "f32", n_seq=2) as ctx:
            ctx.hogwild_enable(2)
            ctx.hogwild_set_block(1, 100, 200)
            ctx.decode([Token(t, i, (0, 1)) for i, t in enumerate([1, 2, 3, 4])])
            ctx.hogwild_set_deltas(0, [0, -96])
            ctx.hogwild_set_deltas(1, [0, -96])
            return np.stack(decode_logits(ctx, [Token(7, 100, (0, 1), True), Token(8, 101, (0, 1), True)]))

    assert np.array_equal(run(), run())


def test_error_codes(tiny):
    _, model = tiny
    with open_context(model, "f32", n_seq=2) as ctx:
        with pytest.raises(BackendError, match="set_block: invalid argument"):
            ctx.hogwild_set_block(1, 0, 10)  # mode off
        with pytest.raises(BackendError, match="enable: invalid argument"):
            ctx.hogwild_enable(-1)
        ctx.hogwild_enable(3)
        ctx.hogwild_set_block(1, 100, 200)
        with pytest.raises(BackendError, match="invalid argument"):
            ctx.hogwild_set_block(2, 150, 250)  # overlaps block 1
        with pytest.raises(BackendError, match="invalid argument"):
            ctx.hogwild_set_block(3, 300, 400)  # no such block
        with pytest.raises(BackendError, match="invalid argument"):
            ctx.hogwild_set_block(2, 50, 40)  # p1 < p0
        with pytest.raises(BackendError, match="invalid argument"):
            ctx.hogwild_set_deltas(0, [0, 1])  # wrong block count
        with pytest.raises(BackendError, match="invalid argument"):
            ctx.hogwild_set_deltas(5, [0, 1, 2])  # no such sequence
        assert ctx.hogwild_get_block(150) == 1 and ctx.hogwild_get_block(99) == 0
        # positions must be contiguous per (sequence, block): the error names them
        ctx.decode([Token(1, 0, (0, 1)), Token(2, 1, (0, 1))])
        with pytest.raises(BackendError, match="sequence 0, block 1: expected position 100, got 102"):
            ctx.decode([Token(3, 102, (0,))])
        ctx.decode([Token(3, 100, (0,))])  # the block starts at its start
        ctx.hogwild_enable(0)
        with pytest.raises(BackendError, match="invalid argument"):
            ctx.hogwild_set_deltas(0, [0])


def test_quantized_v_cache_is_unsupported(tmp_path):
    spec = write_tiny_model(tmp_path / "wide.gguf", "llama", n_embd=256, n_head=4, n_head_kv=2)  # head dim 64
    with Model(spec.path, n_gpu_layers=GPU_LAYERS) as model, model.context(n_ctx=256, n_seq=2, cache_type="q8_0", flash_attn=True, n_threads=2) as ctx:
        with pytest.raises(BackendError, match="unsupported"):
            ctx.hogwild_enable(2)


def test_unpatched_library_is_detected(tmp_path):
    """A stock libllama (no Hogwild symbols) gives the one-line error with the fix, not a crash."""
    import llama_cpp

    stock = tmp_path / "lib"
    stock.mkdir()
    code = (
        "import ctypes, llama_cpp.llama_cpp as L\n"
        "class Fake: pass\n"
        "f = Fake()\n"
        "for n in ('llama_backend_init','llama_log_set','llama_supports_gpu_offload'):\n"
        "    setattr(f, n, getattr(L._lib, n))\n"
        "L._lib = f\n"
        "from hogwild_local.backend import library_info\n"
        "print(library_info()['error'])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == (
        "this llama-cpp-python was built without the Hogwild patch "
        "(no llama_memory_hogwild_enable); run: hogwild build-backend"
    )
    assert llama_cpp.__version__ == "0.3.36"
