"""Prove the float64 reference (tests/reference.py) against stock llama.cpp.

Every llama.cpp-facing test runs a tiny random GGUF model through llama.cpp
(CPU, unified KV cache, flash attention off) and through the reference with
the view positions that stock llama.cpp implies, and compares logits.  The
cases cover plain causal decoding, K-shift via ``llama_memory_seq_add`` and
several sequences sharing prompt cells in a unified cache, for both rope
flavours (llama: NORMAL, qwen2: NEOX) and both f32 and f16 K/V caches.

A few reference-only tests check internal consistency (RoPE relativity,
incremental vs one-shot forward) without llama.cpp.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hogwild_local.native import Context, Model, Token
from reference import ReferenceModel, RefToken, sequential_tokens
from tiny_gguf import TinyModel, write_tiny_model

ARCHES = ["llama", "qwen2"]
KV_TYPES = {"f32": ("f32", 1e-4), "f16": ("f16", 2e-2)}


class LlamaRunner:
    """Stock llama.cpp (Hogwild mode never turned on) through the project's binding."""

    def __init__(self, path: Path, *, kv_type: str, n_seq_max: int = 1) -> None:
        self.model = Model(path)
        self.ctx: Context = self.model.context(n_ctx=256, n_seq=n_seq_max, n_batch=256, cache_type=kv_type, n_threads=2)

    def decode(self, items: list[Token]) -> dict[int, np.ndarray]:
        """One batch; the logits of the tokens that asked for them, by batch index."""
        self.ctx.decode(items)
        return {i: self.ctx.logits(i) for i, t in enumerate(items) if t.logits}

    def __enter__(self) -> LlamaRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.ctx.close()
        self.model.close()


@pytest.fixture(scope="module", params=ARCHES)
def tiny(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> TinyModel:
    """A tiny random model of each architecture, written once per module."""
    arch = request.param
    return write_tiny_model(tmp_path_factory.mktemp("gguf") / f"tiny-{arch}.gguf", arch, seed=1)


@pytest.fixture(params=list(KV_TYPES))
def kv(request: pytest.FixtureRequest) -> tuple[str, int, float]:
    """(name, ggml K/V cache type, max abs logit tolerance)."""
    return (request.param, *KV_TYPES[request.param])


def random_tokens(model: TinyModel, n: int, seed: int) -> list[int]:
    """``n`` random token ids valid for ``model``."""
    return [int(t) for t in np.random.default_rng(seed).integers(0, model.n_vocab, n)]


def max_err(llama_logits: dict[int, np.ndarray], ref_logits: np.ndarray, idx: list[int]) -> float:
    """Max abs difference between llama.cpp logits at batch indices ``idx`` and reference rows."""
    got = np.stack([llama_logits[i] for i in idx])
    return float(np.abs(got - ref_logits).max())


def test_model_file_is_small(tiny: TinyModel) -> None:
    """The generated GGUF stays a few hundred KB."""
    assert Path(tiny.path).stat().st_size < 500_000


def test_prefill_then_decode(tiny: TinyModel, kv: tuple[str, str, float]) -> None:
    """Prefill 20 tokens, then decode 5 one at a time; all logits match the reference."""
    kv_name, kv_type, tol = kv
    toks = random_tokens(tiny, 25, seed=2)
    ref = ReferenceModel(tiny)
    cache = ref.new_cache()
    seen: dict[int, int] = {}
    errs = []
    with LlamaRunner(tiny.path, kv_type=kv_type) as lr:
        got = lr.decode([Token(t, i, (0,), True) for i, t in enumerate(toks[:20])])
        want = ref.forward(cache, sequential_tokens(toks[:20]))
        errs.append(max_err(got, want, list(range(20))))
        seen.update({i: i for i in range(20)})
        for p in range(20, 25):
            got = lr.decode([Token(toks[p], p, (0,), True)])
            want = ref.forward(cache, sequential_tokens([toks[p]], start_cell=p, start_pos=p, prior=seen))
            errs.append(max_err(got, want, [0]))
            seen[p] = p
    print(f"{tiny.arch} kv={kv_name}: prefill err {errs[0]:.3g}, decode err {max(errs[1:]):.3g}")
    assert max(errs) <= tol


def test_seq_add_kshift(tiny: TinyModel, kv: tuple[str, str, float]) -> None:
    """After seq_add moves cells 5..9 to positions 12..16, a query at 17 sees them there."""
    kv_name, kv_type, tol = kv
    toks = random_tokens(tiny, 11, seed=3)
    ref = ReferenceModel(tiny)
    with LlamaRunner(tiny.path, kv_type=kv_type) as lr:
        lr.decode([Token(t, i, (0,), i == 9) for i, t in enumerate(toks[:10])])
        lr.ctx.seq_add(0, 5, 10, 7)
        got = lr.decode([Token(toks[10], 17, (0,), True)])

    def reference_logits(shift: int) -> np.ndarray:
        cache = ref.new_cache()
        ref.forward(cache, sequential_tokens(toks[:10]))
        view = {c: c if c < 5 else c + shift for c in range(10)}
        query = RefToken(token=toks[10], cell=10, pos=17, visible={**view, 10: 17})
        return ref.forward(cache, [query])

    err = max_err(got, reference_logits(7), [0])
    unshifted = max_err(got, reference_logits(0), [0])
    print(f"{tiny.arch} kv={kv_name}: kshift err {err:.3g} (vs ignoring the shift: {unshifted:.3g})")
    assert err <= tol
    assert unshifted > 10 * tol, "test is not sensitive to the view positions"


def test_shared_prompt_two_sequences(tiny: TinyModel, kv: tuple[str, str, float]) -> None:
    """Two sequences share 12 prompt cells (multi seq_id), then decode their own tokens together.

    Step 1 batches 2 tokens of seq 0 and 3 tokens of seq 1 (overlapping
    positions 12..14 in one unified cache); step 2 batches one more token each.
    """
    kv_name, kv_type, tol = kv
    prompt = random_tokens(tiny, 12, seed=4)
    own = {0: random_tokens(tiny, 3, seed=5), 1: random_tokens(tiny, 4, seed=6)}
    step1 = {0: 2, 1: 3}
    ref = ReferenceModel(tiny)
    cache = ref.new_cache()
    errs = []
    with LlamaRunner(tiny.path, kv_type=kv_type, n_seq_max=2) as lr:
        got = lr.decode([Token(t, i, (0, 1), True) for i, t in enumerate(prompt)])
        want = ref.forward(cache, sequential_tokens(prompt))
        errs.append(max_err(got, want, list(range(12))))

        shared = {c: c for c in range(12)}
        views = {s: dict(shared) for s in (0, 1)}  # cell -> view position, per sequence
        next_cell = 12
        for counts in (step1, {0: 1, 1: 1}):
            items, ref_toks = [], []
            for s in (0, 1):
                done = len(views[s]) - 12
                ref_toks += sequential_tokens(
                    own[s][done : done + counts[s]], start_cell=next_cell, start_pos=12 + done, prior=views[s]
                )
                for j in range(counts[s]):
                    items.append(Token(own[s][done + j], 12 + done + j, (s,), True))
                    views[s][next_cell + j] = 12 + done + j
                next_cell += counts[s]
            got = lr.decode(items)
            want = ref.forward(cache, ref_toks)
            errs.append(max_err(got, want, list(range(len(items)))))
    print(f"{tiny.arch} kv={kv_name}: shared-prompt errs {[f'{e:.3g}' for e in errs]}")
    assert max(errs) <= tol


def test_reference_rope_is_relative(tiny: TinyModel) -> None:
    """Adding one constant to every query and view position leaves reference logits unchanged."""
    toks = random_tokens(tiny, 8, seed=7)
    ref = ReferenceModel(tiny)
    base = ref.forward(ref.new_cache(), sequential_tokens(toks))
    shifted = ref.forward(ref.new_cache(), sequential_tokens(toks, start_pos=1000))
    assert np.abs(base - shifted).max() < 1e-9


def test_reference_incremental_matches_one_shot(tiny: TinyModel) -> None:
    """Feeding tokens one call at a time equals one causal call (K/V are cached un-roped)."""
    toks = random_tokens(tiny, 6, seed=8)
    ref = ReferenceModel(tiny)
    one_shot = ref.forward(ref.new_cache(), sequential_tokens(toks))
    cache = ref.new_cache()
    rows = [
        ref.forward(cache, sequential_tokens([t], start_cell=i, start_pos=i, prior={c: c for c in range(i)}))[0]
        for i, t in enumerate(toks)
    ]
    assert np.abs(one_shot - np.stack(rows)).max() < 1e-12
