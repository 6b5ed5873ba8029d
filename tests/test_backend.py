"""The patched llama.cpp against an independent float64 numpy reference (tests/reference.py).

Every case runs on tiny random GGUF models of llama shape (normal RoPE) and qwen2 shape (NeoX RoPE, q/k/v
biases), both with grouped-query attention, and with f32 and f16 KV caches (the lock-step runs also bf16).
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from hogwild_local.engine.layout import LayoutKind
from hogwild_local.native import BackendError, Context, Model, Token, recent_log
from hogwild_local.native.install import LLAMA_CPP_PYTHON_VERSION
from lockstep import block_table_changes, run_lockstep
from reference import ReferenceModel, RefToken, sequential_tokens
from tiny_gguf import write_tiny_model
from where import HEAD_DIM, RPC, load_model, tolerance

TOLERANCE = {"f32": tolerance(1e-4), "f16": tolerance(2e-2), "bf16": tolerance(6e-2)}


@pytest.fixture(scope="module", params=["llama", "qwen2"])
def tiny(request, tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / f"tiny-{request.param}.gguf"
    spec = write_tiny_model(path, request.param, seed=7, head_dim=HEAD_DIM)
    model = load_model(spec.path)
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
    for a, b in zip(stock, zero, strict=True):
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
    err = max(float(np.abs(got - want).max()) for got, want in zip(view, expected, strict=True))
    print(f"\nmax abs error: shifted block {spec.arch} {cache_type}: {err:.3g}")
    assert err <= TOLERANCE[cache_type]
    # the K-shifted stock cache and the reference agree on the next token too
    n = len(prompt) + len(tail)
    nxt = ref.forward(cache, [RefToken(55, n, n, {c: c for c in range(n + 1)})])
    assert np.abs(shifted[0] - nxt[0]).max() <= TOLERANCE[cache_type]


@pytest.mark.parametrize("cache_type", ["f32", "f16"])
def test_keys_follow_block_table_changes(tiny, cache_type):
    """Keys are stored at block-local positions. With every offset 0 a block of non-zero base still needs the
    Hogwild graph; moving a block's start, and turning the mode off, re-rotate the keys of the cells whose
    base changed (a K-shift), so every token keeps seeing every cell at its canonical position."""
    spec, model = tiny
    errors = block_table_changes(spec, model, cache_type)
    print(f"\nmax abs error: block table changes {spec.arch} {cache_type}: {max(errors):.3g}")
    assert max(errors) <= TOLERANCE[cache_type], errors


# --------------------------------------------------------------------------------------------------
# 3 + 4. W lock-step workers on a real layout that changes every pass, with step completions


# the patch's attention paths for a test's ``attention`` and cache type (what it logs at graph builds); an f32
# cache never takes flash attention (llama.cpp's casts it to f16), and without room for key copies flash
# attention is taken only while no other block holds a cell (there is nothing to copy)
ATTENTION_PATHS = {("graph", "f32"): {"query-copy"}, ("graph", "f16"): {"query-copy"},
                   ("flash", "f32"): {"query-copy"}, ("flash", "f16"): {"flash"},
                   ("no-room", "f32"): {"query-copy"}, ("no-room", "f16"): {"flash", "query-copy"},
                   ("graph", "bf16"): {"query-copy"}, ("flash", "bf16"): {"flash"},
                   ("no-room", "bf16"): {"flash", "query-copy"}}


@pytest.mark.parametrize("attention", ["graph", "flash", "no-room"])
@pytest.mark.parametrize("kind", [LayoutKind.COMBINED, LayoutKind.STEPWISE])
@pytest.mark.parametrize("cache_type", ["f32", "f16", "bf16"])
def test_lockstep_workers_match_reference(tiny, cache_type, kind, attention, monkeypatch):
    """``graph``: flash attention off, Hogwild passes through the query-copy graph; ``flash``: flash attention
    on, through the key copies and one stock flash attention (f16; an f32 cache keeps the query-copy path);
    ``no-room``: flash attention on in a cache with no free cells for the key copies, so the query-copy path
    again (the fused kernel on the CPU, the stock-op graph with flash attention's V layout elsewhere)."""
    monkeypatch.setenv("LLAMA_KV_CACHE_DEBUG", "3")  # llama.cpp then logs the cell map before placing a batch
    spec, model = tiny
    if RPC and cache_type == "bf16" and attention != "graph":  # wrong logits there, stock too (check_flash_attn)
        with pytest.raises(BackendError, match="^a bf16 KV cache with flash attention gives wrong logits on RPC"):
            run_lockstep(spec, model, cache_type, kind, flash_attn=True)
        return
    result = run_lockstep(spec, model, cache_type, kind, flash_attn=attention != "graph",
                          n_ctx=256 if attention == "no-room" else 1024)
    assert result.attention == ATTENTION_PATHS[attention, cache_type]
    assert result.cells_used == result.layout.live_cells() == result.mirror_cells
    # the compaction keeps the history (block 0: canonical positions below the capacity) below the other blocks
    cells = last_cell_map()
    capacity = result.layout.capacity
    common = [i for i, pos in enumerate(cells) if pos is not None and pos < capacity]
    others = [i for i, pos in enumerate(cells) if pos is not None and pos >= capacity]
    assert len(common) > result.prompt_len and others and max(common) < min(others), cells
    print(f"\nmax abs error: lockstep {spec.arch} {cache_type} {kind.value} {attention}: {result.worst:.3g}")
    assert result.worst <= TOLERANCE[cache_type], result.worst


@pytest.mark.parametrize("attention", ["graph", "flash"])
@pytest.mark.parametrize("cache_type", ["f32", "f16"])
def test_lockstep_precision_at_full_context(tiny, cache_type, attention):
    """The same at a real size: 8 workers, blocks of 131072 positions in a cache of 131072 cells, so the
    last step block starts near position 1.2M. The error must not grow with the context size."""
    spec, model = tiny
    result = run_lockstep(spec, model, cache_type, LayoutKind.COMBINED, n_workers=8, capacity=131072,
                          n_ctx=131072, passes=9, flash_attn=attention == "flash")
    assert result.attention == ATTENTION_PATHS[attention, cache_type]
    assert result.layout.steps[-1].start > 8 * 131072
    assert result.cells_used == result.layout.live_cells() == result.mirror_cells
    assert len(result.layout.history) == 3  # three steps joined the history (K-shifts from ~1M positions)
    print(f"\nmax abs error: lockstep W=8 n_ctx=131072 {spec.arch} {cache_type} {attention}: {result.worst:.3g}")
    assert result.worst <= TOLERANCE[cache_type], result.worst


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
    with (load_model(spec.path) as model,
          model.context(n_ctx=256, n_seq=2, cache_type="q8_0", flash_attn=True, n_threads=2) as ctx):
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
        "from hogwild_local.native.library import library_info\n"
        "print(library_info()['error'])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == (
        "this llama-cpp-python was built without the Hogwild patch "
        "(no llama_memory_hogwild_enable); run: hogwild build-backend"
    )
    assert llama_cpp.__version__ == LLAMA_CPP_PYTHON_VERSION
