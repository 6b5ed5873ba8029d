"""Independent float64 reference forward pass with explicit per-query view positions.

This is the test oracle for Hogwild! inference: several workers share one KV
cache, and each query sees every cached token at its own *view* position.  The
reference stores keys un-roped and applies RoPE at attention time, so any
assignment of positions to (query, cached cell) pairs can be expressed.  It is
written from the math only (no llama.cpp code) and runs entirely in float64.

Semantics of :meth:`ReferenceModel.forward`, per layer:

1. compute the un-roped K and V of *all* tokens in the call and store them in
   the cache under their ``cell`` keys;
2. every token's query (roped at ``tok.pos``) attends to the cells in
   ``tok.visible``, each key roped at its view position ``visible[cell]``, with
   one softmax over all visible cells and scale ``1/sqrt(head_dim)``.  Query
   head ``h`` reads KV head ``h // (n_head // n_head_kv)`` (GQA).

The rest is a standard pre-norm transformer: RMSNorm, attention output
projection, residual, RMSNorm, SwiGLU FFN ``down(silu(gate x) * up x)``,
residual; final RMSNorm and output projection.

RoPE flavour follows llama.cpp's ``llama_model_rope_type``: ``llama`` uses
NORMAL rope (rotates adjacent pairs ``(2i, 2i+1)``), ``qwen2`` uses NEOX rope
(rotates pairs ``(i, i + d/2)``); in both, pair ``i`` turns by angle
``pos * theta_base ** (-2i/d)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from tiny_gguf import TinyModel

ROPE_STYLE = {"llama": "normal", "qwen2": "neox"}


@dataclass
class RefToken:
    """One token of a reference forward call.

    ``cell`` is the (new, unique) key its K/V are stored under; ``pos`` is the
    RoPE position of its query; ``visible`` maps every cell it attends to
    (normally including its own) to that cell's view position.
    """

    token: int
    cell: int
    pos: int
    visible: dict[int, int]


@dataclass
class RefCache:
    """Un-roped KV cache: ``layers[il][cell] = (k, v)``, each ``[n_head_kv, head_dim]`` float64."""

    layers: list[dict[int, tuple[np.ndarray, np.ndarray]]] = field(default_factory=list)


def rope(x: np.ndarray, pos: np.ndarray | int, base: float, style: str) -> np.ndarray:
    """Rotate the last axis of ``x`` (``[..., d]``) by RoPE at integer ``pos``.

    ``pos`` broadcasts against ``x.shape[:-1]``.  ``style`` is ``"normal"``
    (pairs ``(2i, 2i+1)``) or ``"neox"`` (pairs ``(i, i + d/2)``).
    """
    d = x.shape[-1]
    half = d // 2
    inv_freq = base ** (-2.0 * np.arange(half, dtype=np.float64) / d)
    angle = np.asarray(pos, dtype=np.float64)[..., None] * inv_freq
    cos, sin = np.cos(angle), np.sin(angle)
    if style == "normal":
        a, b = x[..., 0::2], x[..., 1::2]
    elif style == "neox":
        a, b = x[..., :half], x[..., half:]
    else:
        raise ValueError(f"unknown rope style {style!r}")
    ra = a * cos - b * sin
    rb = a * sin + b * cos
    out = np.empty(ra.shape[:-1] + (d,), dtype=np.float64)
    if style == "normal":
        out[..., 0::2], out[..., 1::2] = ra, rb
    else:
        out[..., :half], out[..., half:] = ra, rb
    return out


def _rms_norm(x: np.ndarray, weight: np.ndarray, eps: float) -> np.ndarray:
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * weight


def _silu(x: np.ndarray) -> np.ndarray:
    return x / (1.0 + np.exp(-x))


class ReferenceModel:
    """Float64 forward pass of a :class:`TinyModel` over an explicit-view-position KV cache."""

    def __init__(self, model: TinyModel) -> None:
        if model.arch not in ROPE_STYLE:
            raise ValueError(f"unsupported arch {model.arch!r}")
        self.model = model
        self.style = ROPE_STYLE[model.arch]
        self.head_dim = model.n_embd // model.n_head
        self.w = {name: t.astype(np.float64) for name, t in model.tensors.items()}

    def new_cache(self) -> RefCache:
        """Return an empty cache with one cell map per layer."""
        return RefCache(layers=[{} for _ in range(self.model.n_layer)])

    def forward(self, cache: RefCache, tokens: list[RefToken]) -> np.ndarray:
        """Run ``tokens`` through the model, filling ``cache``; return ``[len(tokens), n_vocab]`` logits."""
        m, w, hd = self.model, self.w, self.head_dim
        cells = [t.cell for t in tokens]
        if len(set(cells)) != len(cells) or any(c in cache.layers[0] for c in cells):
            raise ValueError("token cells must be unique and not yet in the cache")
        group = m.n_head // m.n_head_kv
        kv_of_head = np.arange(m.n_head) // group
        n = len(tokens)

        x = w["token_embd.weight"][[t.token for t in tokens]]
        for il in range(m.n_layer):
            p = f"blk.{il}."
            h = _rms_norm(x, w[p + "attn_norm.weight"], m.rms_eps)
            q = h @ w[p + "attn_q.weight"].T
            k = h @ w[p + "attn_k.weight"].T
            v = h @ w[p + "attn_v.weight"].T
            if p + "attn_q.bias" in w:
                q = q + w[p + "attn_q.bias"]
                k = k + w[p + "attn_k.bias"]
                v = v + w[p + "attn_v.bias"]
            q = q.reshape(n, m.n_head, hd)
            k = k.reshape(n, m.n_head_kv, hd)
            v = v.reshape(n, m.n_head_kv, hd)

            layer_cache = cache.layers[il]
            for i, t in enumerate(tokens):
                layer_cache[t.cell] = (k[i], v[i])

            attn = np.empty((n, m.n_head, hd))
            for i, t in enumerate(tokens):
                vis = list(t.visible.items())
                ks = np.stack([layer_cache[c][0] for c, _ in vis])  # [n_vis, n_head_kv, hd]
                vs = np.stack([layer_cache[c][1] for c, _ in vis])
                view = np.array([pv for _, pv in vis])[:, None]  # [n_vis, 1]
                kr = rope(ks, view, m.rope_theta, self.style)[:, kv_of_head]  # [n_vis, n_head, hd]
                qr = rope(q[i], t.pos, m.rope_theta, self.style)  # [n_head, hd]
                scores = np.einsum("hd,chd->hc", qr, kr) / np.sqrt(hd)
                scores -= scores.max(axis=1, keepdims=True)
                prob = np.exp(scores)
                prob /= prob.sum(axis=1, keepdims=True)
                attn[i] = np.einsum("hc,chd->hd", prob, vs[:, kv_of_head])
            x = x + attn.reshape(n, m.n_embd) @ w[p + "attn_output.weight"].T

            h = _rms_norm(x, w[p + "ffn_norm.weight"], m.rms_eps)
            gate = h @ w[p + "ffn_gate.weight"].T
            up = h @ w[p + "ffn_up.weight"].T
            x = x + (_silu(gate) * up) @ w[p + "ffn_down.weight"].T

        x = _rms_norm(x, w["output_norm.weight"], m.rms_eps)
        return x @ w["output.weight"].T


def sequential_tokens(
    tokens: list[int],
    start_cell: int = 0,
    start_pos: int = 0,
    prior: dict[int, int] | None = None,
) -> list[RefToken]:
    """Plain causal layout for one sequence.

    Token ``i`` goes to cell ``start_cell + i`` with query position
    ``start_pos + i`` and sees the ``prior`` cells (cell -> view position of
    already-cached tokens) plus cells ``start_cell .. start_cell + i`` at
    their own positions.
    """
    out = []
    visible = dict(prior or {})
    for i, tok in enumerate(tokens):
        visible[start_cell + i] = start_pos + i
        out.append(RefToken(token=tok, cell=start_cell + i, pos=start_pos + i, visible=dict(visible)))
    return out
