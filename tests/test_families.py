"""The model families users bring, each against the float64 reference (tests/reference.py); and the ones the
shared cache refuses, each with one line.

Every supported family (``tests/tiny_gguf.py: FAMILIES``) is a tiny random GGUF of its real llama.cpp
architecture, written with the keys and tensors its converter writes: q/k norms (qwen3), ``rope_freqs``
factors (llama3 scaling), YaRN (qwen2), fused QKV and LongRoPE short/long factors with their attention factor
(phi3, also with partial rotary as in Phi-4-mini), partial rotary with LayerNorm (stablelm). Per family:

1. stock llama.cpp (views off) matches the reference, so the reference is right about the family; and a
   reference blind to what sets the family apart (its RoPE scheme, partial rotary, q/k norms) misses by far,
   so these tiny sizes show it;
2. one sequence through block-table changes and the mode turned off (K-shifts of keys at block-local
   positions, the last one after the mode is off);
3. W = 3 lock-step workers on a changing layout with step completions moved into the history (K-shifts),
   n_ctx 1024 (LongRoPE: the short factors);
4. W = 8 with blocks of 131072 positions in a 131072-cell cache (LongRoPE: the long factors).

Bounds as in tests/test_backend.py: f32 cache <= 1e-4, f16 <= 2e-2 (max abs logit error).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from hogwild_local.engine import EngineError, check_model
from hogwild_local.engine.layout import LayoutKind
from hogwild_local.native import BackendError, Model, Token
from lockstep import block_table_changes, run_lockstep
from reference import ReferenceModel, sequential_tokens
from tiny_gguf import FAMILIES, REFUSED, TinyModel, write_refused_model, write_tiny_model
from where import HEAD_DIM, load_model, tolerance

TOLERANCE = {"f32": tolerance(1e-4), "f16": tolerance(2e-2)}


Family = tuple[str, TinyModel, Model]  # name in FAMILIES, weights, the loaded model


@pytest.fixture(scope="module", params=list(FAMILIES))
def family(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Family]:
    """A tiny random model of each family, written and loaded once per module."""
    spec = write_tiny_model(tmp_path_factory.mktemp("families") / f"{request.param}.gguf", request.param, seed=7,
                            head_dim=HEAD_DIM)
    model = load_model(spec.path)
    yield request.param, spec, model
    model.close()


def without_own_math(spec: TinyModel) -> TinyModel:
    """``spec`` as a reference blind to what sets the family apart would see it: no long-context RoPE scheme,
    RoPE on every dim, no q/k norms."""
    tensors = {k: v for k, v in spec.tensors.items() if not k.endswith(("attn_q_norm.weight", "attn_k_norm.weight"))}
    return replace(spec, family=replace(spec.family, scaling=None), n_rot=spec.head_dim, rope_attn_factor=1.0,
                   tensors=tensors)


@pytest.mark.parametrize("n_ctx", [1024, 131072])
def test_stock_llama_cpp_matches_the_reference(family: Family, n_ctx: int) -> None:
    """Views off: a 12-token prompt and 4 single-token passes match the reference (f32 cache), and miss the
    blind reference (:func:`without_own_math`) by far; the engine accepts the family."""
    name, spec, model = family
    check_model(model)
    toks = [int(t) for t in np.random.default_rng(1).integers(0, spec.n_vocab, 16)]
    refs = [ReferenceModel(spec, n_ctx), ReferenceModel(without_own_math(spec), n_ctx)]
    caches = [ref.new_cache() for ref in refs]
    got: list[np.ndarray] = []
    want: list[list[np.ndarray]] = [[], []]
    with model.context(n_ctx=n_ctx, n_seq=1, n_batch=64, cache_type="f32", n_threads=2) as ctx:
        for start, n in ((0, 12), (12, 1), (13, 1), (14, 1), (15, 1)):
            ctx.decode([Token(toks[p], p, (0,), True) for p in range(start, start + n)])
            got += [ctx.logits(i) for i in range(n)]
            batch = sequential_tokens(toks[start:start + n], start_cell=start, start_pos=start,
                                      prior={c: c for c in range(start)})
            for ref, cache, rows in zip(refs, caches, want, strict=True):
                rows += list(ref.forward(cache, batch))
    err, blind = (max(float(np.abs(g - w).max()) for g, w in zip(got, rows, strict=True)) for rows in want)
    print(f"\nmax abs error: stock {name} n_ctx={n_ctx}: {err:.3g} (blind reference: {blind:.3g})")
    assert err <= TOLERANCE["f32"]
    if spec.family.scaling or spec.family.qk_norm or spec.n_rot < spec.head_dim:
        # 0.1: far above stock's own error on the CPU (1e-6) and on CUDA (1e-2), so it holds on both
        assert blind > max(0.1, 10 * err), "what sets the family apart does not show at these sizes"


@pytest.mark.parametrize("cache_type", ["f32", "f16"])
def test_keys_follow_block_table_changes(family: Family, cache_type: str) -> None:
    """A block's start moved under its cells, then the mode turned off: both K-shifts are pure rotations
    (the second runs after the mode is off), so every token still sees every cell at its canonical position."""
    name, spec, model = family
    errors = block_table_changes(spec, model, cache_type)
    print(f"\nmax abs error: block table changes {name} {cache_type}: {max(errors):.3g}")
    assert max(errors) <= TOLERANCE[cache_type], errors


# the query-copy graph for both cache types, and the flash-attention path (key copies rotated with the family's
# RoPE) for f16 (an f32 cache never takes it)
ATTENTION = [("f32", "graph"), ("f16", "graph"), ("f16", "flash")]


@pytest.mark.parametrize("cache_type, attention", ATTENTION)
def test_lockstep_with_consolidation(family: Family, cache_type: str, attention: str) -> None:
    """W = 3 workers, every worker's logits every pass; every third pass a step moves into the history by a
    K-shift, which must turn the keys without scaling them again (YaRN, LongRoPE)."""
    name, spec, model = family
    result = run_lockstep(spec, model, cache_type, LayoutKind.COMBINED, flash_attn=attention == "flash")
    assert result.attention == {"flash" if attention == "flash" else "query-copy"}
    assert result.layout.history and result.cells_used == result.layout.live_cells() == result.mirror_cells
    print(f"\nmax abs error: lockstep W=3 {name} {cache_type} {attention}: {result.worst:.3g}")
    assert result.worst <= TOLERANCE[cache_type], result.worst


@pytest.mark.parametrize("cache_type, attention", ATTENTION)
def test_lockstep_at_full_context(family: Family, cache_type: str, attention: str) -> None:
    """The same with 8 workers, blocks of 131072 positions in a 131072-cell cache (the last step block starts
    past position 1M): the error must not depend on the context size."""
    name, spec, model = family
    result = run_lockstep(spec, model, cache_type, LayoutKind.COMBINED, n_workers=8, capacity=131072,
                          n_ctx=131072, passes=9, flash_attn=attention == "flash")
    assert result.attention == {"flash" if attention == "flash" else "query-copy"}
    assert result.layout.steps[-1].start > 8 * 131072 and len(result.layout.history) == 3
    assert result.cells_used == result.layout.live_cells() == result.mirror_cells
    print(f"\nmax abs error: lockstep W=8 n_ctx=131072 {name} {cache_type} {attention}: {result.worst:.3g}")
    assert result.worst <= TOLERANCE[cache_type], result.worst


# --------------------------------------------------------------------------------------------------
# refusals: the engine says why in one line, and the patch refuses the cache too

REFUSALS = {
    "gemma2": "gemma2: sliding-window attention is not supported yet",
    "gemma3": "gemma3: sliding-window attention is not supported yet",
    "deepseek2": "deepseek2: multi-head latent attention (MLA) is not supported "
                 "(its keys come from a compressed latent, only partly rotary)",
    "deepseek2-unsplit": "deepseek2: multi-head latent attention (MLA) is not supported "
                         "(its keys come from a compressed latent, only partly rotary)",
    "qwen2vl": "qwen2vl: M-RoPE is not supported (needs plain RoPE)",
    "mamba": "mamba: recurrent or hybrid memory cannot share a KV cache between workers",
    "jamba": "jamba: recurrent or hybrid memory cannot share a KV cache between workers",
    "smollm3": "smollm3: layers without RoPE (NoPE) are not supported (the query rotation would turn them too)",
}


def test_every_refused_model_has_a_message() -> None:
    """The loader-only models and the messages expected of them name the same architectures."""
    assert set(REFUSALS) == set(REFUSED)


@pytest.mark.parametrize("name", list(REFUSALS))
def test_refused_with_one_line(name: str, tmp_path: Path) -> None:
    """check_model refuses the architecture with its one-line reason; hogwild_enable on a context of it
    answers 'unsupported' (-2) as well, so neither side serves it wrongly."""
    with Model(write_refused_model(tmp_path / f"{name}.gguf", name)) as model:
        with pytest.raises(EngineError) as err:
            check_model(model)
        assert str(err.value) == REFUSALS[name]
        with model.context(n_ctx=256, n_seq=2, n_threads=2) as ctx, pytest.raises(BackendError, match="unsupported"):
            ctx.hogwild_enable(2)
