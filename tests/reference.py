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

The rest is a standard pre-norm transformer: a norm (RMSNorm, or LayerNorm with bias for stablelm),
optional q/k biases and a per-head RMSNorm of q and k before RoPE (qwen3), attention output projection,
residual, norm, SwiGLU FFN ``down(silu(gate x) * up x)``, residual; final norm and output projection.
Fused weights (phi3's ``attn_qkv = [q; k; v]`` and ``ffn_up = [gate; up]``) are split back.

RoPE flavour follows llama.cpp's ``llama_model_rope_type``: ``llama`` uses NORMAL rope (rotates adjacent
pairs ``(2i, 2i+1)``), the others here NEOX rope (rotates pairs ``(i, i + n_rot/2)``). Only the first
``n_rot`` dims of a head turn (partial rotary); pair ``i`` turns by ``pos * theta ** (-2i/n_rot)``, changed by
the model's long-context scheme (:class:`Rope`), written from the published formulas (YaRN paper and
Hugging Face ``modeling_rope_utils``), not from llama.cpp's code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from tiny_gguf import TinyModel

ROPE_STYLE = {"llama": "normal", "qwen2": "neox", "qwen3": "neox", "phi3": "neox", "stablelm": "neox"}


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


@dataclass(frozen=True)
class Rope:
    """One model's RoPE: pair ``i`` of the first ``n_rot`` dims turns by ``pos * inv_freq[i]`` and both of its
    values are scaled by ``mscale`` (so a score of two rotated vectors carries ``mscale**2``)."""

    style: str
    n_rot: int
    inv_freq: np.ndarray
    mscale: float

    @classmethod
    def of(cls, model: TinyModel, n_ctx: int | None) -> Rope:
        """The RoPE of ``model`` in a context of ``n_ctx`` cells (LongRoPE picks its factors by it).

        * llama3: every frequency divided by its ``rope_freqs`` factor;
        * LongRoPE: divided by the long factors when ``n_ctx`` exceeds the original context, else the short
          ones (llama.cpp's static choice), magnitude ``rope.scaling.attn_factor``;
        * YaRN: with s the factor, pairs spinning fewer than ``beta_slow`` times over the original context
          are interpolated (/s), those spinning more than ``beta_fast`` times kept, a linear ramp between;
          magnitude ``0.1 ln s + 1``.
        """
        d, theta, s = model.n_rot, model.rope_theta, model.family.scaling
        i = np.arange(d // 2, dtype=np.float64)
        inv_freq = theta ** (-2.0 * i / d)
        mscale = 1.0
        if s is None:
            pass
        elif s.kind == "llama3":
            inv_freq = inv_freq / model.tensors["rope_freqs.weight"]
        elif s.kind == "longrope":
            if n_ctx is None:
                raise ValueError("LongRoPE picks its factors by the context size: pass n_ctx")
            which = "long" if n_ctx > s.orig_ctx else "short"
            inv_freq = inv_freq / model.tensors[f"rope_factors_{which}.weight"]
            mscale = model.rope_attn_factor
        elif s.kind == "yarn":
            def dim_of(n_turns: float) -> float:  # the pair index that turns n_turns times over orig_ctx
                return d * math.log(s.orig_ctx / (n_turns * 2 * math.pi)) / (2 * math.log(theta))

            low, high = max(math.floor(dim_of(s.beta_fast)), 0), min(math.ceil(dim_of(s.beta_slow)), d - 1)
            keep = 1.0 - np.clip((i - low) / max(high - low, 0.001), 0.0, 1.0)
            inv_freq = inv_freq / s.factor * (1.0 - keep) + inv_freq * keep
            mscale = 0.1 * math.log(s.factor) + 1.0
        else:
            raise ValueError(f"unknown rope scaling {s.kind!r}")
        return cls(ROPE_STYLE[model.arch], d, inv_freq, mscale)

    def __call__(self, x: np.ndarray, pos: np.ndarray | int) -> np.ndarray:
        """Rotate the last axis of ``x`` (``[..., head_dim]``) at integer ``pos`` (broadcast against
        ``x.shape[:-1]``); the dims past ``n_rot`` pass unchanged."""
        d, half = self.n_rot, self.n_rot // 2
        angle = np.asarray(pos, dtype=np.float64)[..., None] * self.inv_freq
        cos, sin = np.cos(angle) * self.mscale, np.sin(angle) * self.mscale
        rot = x[..., :d]
        if self.style == "normal":
            a, b = rot[..., 0::2], rot[..., 1::2]
        elif self.style == "neox":
            a, b = rot[..., :half], rot[..., half:]
        else:
            raise ValueError(f"unknown rope style {self.style!r}")
        out = np.array(np.broadcast_to(x, np.broadcast_shapes(x.shape, angle.shape[:-1] + (x.shape[-1],))),
                       dtype=np.float64)
        ra, rb = a * cos - b * sin, a * sin + b * cos
        if self.style == "normal":
            out[..., 0:d:2], out[..., 1:d:2] = ra, rb
        else:
            out[..., :half], out[..., half:d] = ra, rb
        return out


def _rms_norm(x: np.ndarray, weight: np.ndarray, eps: float) -> np.ndarray:
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * weight


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    c = x - x.mean(axis=-1, keepdims=True)
    return c / np.sqrt(np.mean(c * c, axis=-1, keepdims=True) + eps) * weight + bias


def _silu(x: np.ndarray) -> np.ndarray:
    return x / (1.0 + np.exp(-x))


class ReferenceModel:
    """Float64 forward pass of a :class:`TinyModel` over an explicit-view-position KV cache.

    ``n_ctx`` is the context size llama.cpp runs the model with; only LongRoPE models need it.
    """

    def __init__(self, model: TinyModel, n_ctx: int | None = None) -> None:
        if model.arch not in ROPE_STYLE:
            raise ValueError(f"unsupported arch {model.arch!r}")
        self.model = model
        self.rope = Rope.of(model, n_ctx)
        self.head_dim = model.head_dim
        self.w = {name: t.astype(np.float64) for name, t in model.tensors.items()}

    def new_cache(self) -> RefCache:
        """Return an empty cache with one cell map per layer."""
        return RefCache(layers=[{} for _ in range(self.model.n_layer)])

    def _norm(self, x: np.ndarray, name: str) -> np.ndarray:
        """The family's norm of ``x`` with the weights ``<name>.weight`` (and ``<name>.bias``)."""
        if self.model.family.norm == "layer":
            return _layer_norm(x, self.w[name + ".weight"], self.w[name + ".bias"], self.model.norm_eps)
        return _rms_norm(x, self.w[name + ".weight"], self.model.norm_eps)

    def _qkv(self, p: str, h: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Q, K and V of the normed inputs ``h`` of layer prefix ``p``, from fused or separate weights."""
        m, w = self.model, self.w
        n_q, n_kv = m.n_head * self.head_dim, m.n_head_kv * self.head_dim
        if p + "attn_qkv.weight" in w:
            qkv = h @ w[p + "attn_qkv.weight"].T
            if p + "attn_qkv.bias" in w:
                qkv = qkv + w[p + "attn_qkv.bias"]
            return qkv[:, :n_q], qkv[:, n_q:n_q + n_kv], qkv[:, n_q + n_kv:]
        out = []
        for x in "qkv":
            y = h @ w[p + f"attn_{x}.weight"].T
            out.append(y + w[p + f"attn_{x}.bias"] if p + f"attn_{x}.bias" in w else y)
        return out[0], out[1], out[2]

    def _ffn(self, p: str, h: np.ndarray) -> np.ndarray:
        """SwiGLU of layer prefix ``p``: separate gate and up, or phi3's ``ffn_up = [gate; up]``."""
        w = self.w
        if p + "ffn_gate.weight" in w:
            gate, up = h @ w[p + "ffn_gate.weight"].T, h @ w[p + "ffn_up.weight"].T
        else:
            gate, up = np.split(h @ w[p + "ffn_up.weight"].T, 2, axis=-1)
        return (_silu(gate) * up) @ w[p + "ffn_down.weight"].T

    def forward(self, cache: RefCache, tokens: list[RefToken]) -> np.ndarray:
        """Run ``tokens`` through the model, filling ``cache``; return ``[len(tokens), n_vocab]`` logits."""
        m, w, hd, rope = self.model, self.w, self.head_dim, self.rope
        cells = [t.cell for t in tokens]
        if len(set(cells)) != len(cells) or any(c in cache.layers[0] for c in cells):
            raise ValueError("token cells must be unique and not yet in the cache")
        group = m.n_head // m.n_head_kv
        kv_of_head = np.arange(m.n_head) // group
        n = len(tokens)

        x = w["token_embd.weight"][[t.token for t in tokens]]
        for il in range(m.n_layer):
            p = f"blk.{il}."
            q, k, v = self._qkv(p, self._norm(x, p + "attn_norm"))
            q = q.reshape(n, m.n_head, hd)
            k = k.reshape(n, m.n_head_kv, hd)
            v = v.reshape(n, m.n_head_kv, hd)
            if p + "attn_q_norm.weight" in w:
                q = _rms_norm(q, w[p + "attn_q_norm.weight"], m.norm_eps)
                k = _rms_norm(k, w[p + "attn_k_norm.weight"], m.norm_eps)

            layer_cache = cache.layers[il]
            for i, t in enumerate(tokens):
                layer_cache[t.cell] = (k[i], v[i])

            attn = np.empty((n, m.n_head, hd))
            for i, t in enumerate(tokens):
                vis = list(t.visible.items())
                ks = np.stack([layer_cache[c][0] for c, _ in vis])  # [n_vis, n_head_kv, hd]
                vs = np.stack([layer_cache[c][1] for c, _ in vis])
                view = np.array([pv for _, pv in vis])[:, None]  # [n_vis, 1]
                kr = rope(ks, view)[:, kv_of_head]  # [n_vis, n_head, hd]
                qr = rope(q[i], t.pos)  # [n_head, hd]
                scores = np.einsum("hd,chd->hc", qr, kr) / np.sqrt(hd)
                scores -= scores.max(axis=1, keepdims=True)
                prob = np.exp(scores)
                prob /= prob.sum(axis=1, keepdims=True)
                attn[i] = np.einsum("hc,chd->hd", prob, vs[:, kv_of_head])
            x = x + attn.reshape(n, m.n_head * hd) @ w[p + "attn_output.weight"].T
            x = x + self._ffn(p, self._norm(x, p + "ffn_norm"))

        return self._norm(x, "output_norm") @ w["output.weight"].T


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
