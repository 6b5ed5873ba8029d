"""Tiny random-weight GGUF models for testing.

The files written here load in stock llama.cpp and carry no tokenizer (``tokenizer.ggml.model =
"no_vocab"``), so callers feed raw token ids.  The same weights are returned as float32 numpy arrays so that
an independent reference implementation can run the identical model.

A :class:`Family` names one llama.cpp architecture and the options of it that change the attention math
(q/k norms, fused projections, head size, partial rotary, long-context RoPE scaling); :data:`FAMILIES` holds
the ones the tests prove, each written with the GGUF keys and tensors its converter writes.

Layout conventions (checked against llama.cpp's tensor loader):

* Every matrix is stored in numpy as ``[out_features, in_features]`` and the
  layer computes ``y = W @ x``.  gguf-py writes the numpy shape reversed as the
  ggml ``ne`` array, so llama.cpp sees ``ne = {in, out}``, which is exactly what
  it expects (e.g. ``attn_q`` is ``{n_embd, n_head*head_dim}``).
* ``token_embd`` is ``[n_vocab, n_embd]`` (row ``t`` is token ``t``'s
  embedding) and ``output`` is ``[n_vocab, n_embd]`` (logits = ``output @ h``).
* Q/K head ``h`` occupies rows ``h*head_dim:(h+1)*head_dim`` of ``attn_q`` /
  ``attn_k``; no HF-style row permutation is applied, the rope flavour is
  decided by the architecture alone (llama: NORMAL, the others here: NEOX).
* Fused projections (phi3) stack the separate ones: ``attn_qkv`` is ``[q; k; v]`` and ``ffn_up`` is
  ``[gate; up]`` (llama.cpp's ``swiglu`` gates with the first half).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import gguf
import numpy as np

RMS_EPS = 1e-5  # the eps of every norm written here (RMSNorm and LayerNorm alike)


@dataclass(frozen=True)
class RopeScaling:
    """A long-context RoPE scheme, as a GGUF declares it.

    * ``yarn`` (Qwen2.5, QwQ): ``rope.scaling.type = yarn``, ``factor`` s, ``original_context_length``; angles
      mix interpolated (/s) and extrapolated frequencies by a ramp between ``beta_fast`` and ``beta_slow``
      rotations over the original context, and q and k are each scaled by 0.1 ln s + 1.
    * ``llama3`` (Llama 3.1/3.2): a ``rope_freqs`` tensor of per-pair frequency divisors, computed from
      ``factor``, ``low_freq_factor``, ``high_freq_factor`` and ``orig_ctx`` as the converter does.
    * ``longrope`` (Phi-3.5, Phi-4-mini): ``rope_factors_short`` / ``rope_factors_long`` tensors (divisors;
      llama.cpp takes the long ones when the context exceeds ``original_context_length``) and
      ``rope.scaling.attn_factor`` = sqrt(1 + ln(n_ctx_train / orig) / ln(orig)) on q and k.
    """

    kind: str
    orig_ctx: int
    factor: float = 1.0  # yarn, llama3
    beta_fast: float = 32.0  # yarn
    beta_slow: float = 1.0
    low_freq_factor: float = 1.0  # llama3
    high_freq_factor: float = 4.0


@dataclass(frozen=True)
class Family:
    """One llama.cpp architecture, with the options of it that change how attention is computed.

    ``norm``: "rms" (RMSNorm) or "layer" (LayerNorm with bias); ``qk_norm``: a per-head RMSNorm of q and k
    before RoPE (qwen3); ``fused``: one ``attn_qkv`` and a ``[gate; up]`` ``ffn_up`` (phi3); ``head_dim``:
    the ``attention.key_length`` when it is not n_embd / n_head (0: not); ``rope_dims``: the rotary dims
    (``rope.dimension_count``) when fewer than the head's (0: all).
    """

    arch: str
    norm: str = "rms"
    qkv_bias: bool = False
    qk_norm: bool = False
    fused: bool = False
    head_dim: int = 0
    rope_dims: int = 0
    rope_theta: float = 10000.0
    scaling: RopeScaling | None = None
    n_ctx_train: int = 65536
    n_embd: int = 64


# The tiny shapes keep the real mechanisms and put their effects where short tests see them: llama3's
# smoothed band and YaRN's ramp fall on the middle pairs of a 16-dim head (llama3's orig_ctx is scaled
# down from 8192 to 256 for that), LongRoPE's divisors are random, one set per context size.
FAMILIES: dict[str, Family] = {
    "llama": Family("llama"),
    "qwen2": Family("qwen2", qkv_bias=True),
    "qwen3": Family("qwen3", qk_norm=True, head_dim=32),
    "llama-rope-freqs": Family("llama", scaling=RopeScaling("llama3", 256, factor=8.0), n_ctx_train=131072),
    "qwen2-yarn": Family("qwen2", qkv_bias=True, scaling=RopeScaling("yarn", 32768, factor=4.0),
                         n_ctx_train=131072),
    "phi3": Family("phi3", fused=True, scaling=RopeScaling("longrope", 4096), n_ctx_train=131072),
    "phi3-partial": Family("phi3", fused=True, rope_dims=12, scaling=RopeScaling("longrope", 4096),
                           n_ctx_train=131072),
    "stablelm": Family("stablelm", norm="layer", qkv_bias=True, rope_dims=8, n_embd=128),
}


@dataclass
class TinyModel:
    """Hyper-parameters and float32 weights of a tiny GGUF model written to ``path``."""

    path: Path
    arch: str  # general.architecture
    n_vocab: int
    n_embd: int
    n_head: int
    n_head_kv: int
    n_layer: int
    n_ff: int
    rope_theta: float
    norm_eps: float
    tensors: dict[str, np.ndarray] = field(repr=False)
    family: Family = field(default_factory=lambda: FAMILIES["llama"])
    head_dim: int = 0  # per-head dimension of Q, K and V
    n_rot: int = 0  # rotary dims of each head (the first n_rot)
    n_ctx_train: int = 65536
    rope_attn_factor: float = 1.0  # rope.scaling.attn_factor as written (LongRoPE)


def llama3_rope_freqs(head_dim: int, theta: float, s: RopeScaling) -> np.ndarray:
    """The ``rope_freqs`` divisors llama.cpp's converter computes for ``rope_type = llama3``."""
    freqs = 1.0 / theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    low_wavelen, high_wavelen = s.orig_ctx / s.low_freq_factor, s.orig_ctx / s.high_freq_factor
    out = []
    for freq in freqs:
        wavelen = 2 * math.pi / freq
        if wavelen < high_wavelen:
            out.append(1.0)
        elif wavelen > low_wavelen:
            out.append(s.factor)
        else:
            smooth = (s.orig_ctx / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor)
            out.append(1 / ((1 - smooth) / s.factor + smooth))
    return np.array(out, dtype=np.float32)


def _random_tensors(
    rng: np.random.Generator,
    fam: Family,
    n_vocab: int,
    n_embd: int,
    n_head: int,
    n_head_kv: int,
    n_layer: int,
    n_ff: int,
    head_dim: int,
    n_rot: int,
) -> dict[str, np.ndarray]:
    """Draw weights whose activations stay O(1) through the network.

    Projections into attention scores and logits use std ``1/sqrt(fan_in)`` so
    the scaled scores and the logits have roughly unit spread (attention is
    neither uniform nor one-hot, so view positions matter); projections that
    write back into the residual stream are scaled down by 0.5. The draws of the
    plain llama and qwen2 families come first and in a fixed order, so their weights
    do not change when a family grows an option.
    """
    n_embd_q = n_head * head_dim
    n_embd_kv = n_head_kv * head_dim

    def matrix(n_out: int, n_in: int, gain: float = 1.0) -> np.ndarray:
        return (rng.standard_normal((n_out, n_in)) * gain / np.sqrt(n_in)).astype(np.float32)

    def norm(n: int) -> np.ndarray:
        return (1.0 + 0.1 * rng.standard_normal(n)).astype(np.float32)

    def bias(n: int, scale: float = 0.5) -> np.ndarray:
        return (scale * rng.standard_normal(n)).astype(np.float32)

    tensors: dict[str, np.ndarray] = {
        "token_embd.weight": rng.standard_normal((n_vocab, n_embd)).astype(np.float32),
        "output_norm.weight": norm(n_embd),
        "output.weight": matrix(n_vocab, n_embd, 2.0),
    }
    for i in range(n_layer):
        p = f"blk.{i}."
        tensors[p + "attn_norm.weight"] = norm(n_embd)
        if fam.norm == "layer":
            tensors[p + "attn_norm.bias"] = bias(n_embd, 0.1)
        q, k, v = matrix(n_embd_q, n_embd, 1.5), matrix(n_embd_kv, n_embd, 1.5), matrix(n_embd_kv, n_embd)
        qkv_b = (bias(n_embd_q), bias(n_embd_kv), bias(n_embd_kv)) if fam.qkv_bias else None
        if fam.fused:
            tensors[p + "attn_qkv.weight"] = np.concatenate([q, k, v])
            if qkv_b:
                tensors[p + "attn_qkv.bias"] = np.concatenate(qkv_b)
        else:
            tensors |= {p + "attn_q.weight": q, p + "attn_k.weight": k, p + "attn_v.weight": v}
            if qkv_b:
                tensors |= {p + "attn_q.bias": qkv_b[0], p + "attn_k.bias": qkv_b[1], p + "attn_v.bias": qkv_b[2]}
        if fam.qk_norm:
            tensors[p + "attn_q_norm.weight"] = norm(head_dim)
            tensors[p + "attn_k_norm.weight"] = norm(head_dim)
        tensors[p + "attn_output.weight"] = matrix(n_embd, n_embd_q, 0.5)
        tensors[p + "ffn_norm.weight"] = norm(n_embd)
        if fam.norm == "layer":
            tensors[p + "ffn_norm.bias"] = bias(n_embd, 0.1)
        gate, up = matrix(n_ff, n_embd), matrix(n_ff, n_embd)
        if fam.fused:
            tensors[p + "ffn_up.weight"] = np.concatenate([gate, up])
        else:
            tensors |= {p + "ffn_gate.weight": gate, p + "ffn_up.weight": up}
        tensors[p + "ffn_down.weight"] = matrix(n_embd, n_ff, 0.5)
    if fam.norm == "layer":
        tensors["output_norm.bias"] = bias(n_embd, 0.1)
    kind = fam.scaling.kind if fam.scaling else None
    if kind == "llama3":
        tensors["rope_freqs.weight"] = llama3_rope_freqs(head_dim, fam.rope_theta, fam.scaling)
    elif kind == "longrope":  # divisors growing with the pair index, as trained ones do
        tensors["rope_factors_short.weight"] = np.sort(1.0 + 0.5 * rng.random(n_rot // 2)).astype(np.float32)
        tensors["rope_factors_long.weight"] = np.sort(1.0 + 15.0 * rng.random(n_rot // 2)).astype(np.float32)
    return tensors


def write_tiny_model(
    path: str | Path,
    arch: str = "llama",
    *,
    seed: int = 0,
    n_vocab: int = 64,
    n_embd: int | None = None,
    n_head: int = 4,
    n_head_kv: int = 2,
    n_layer: int = 2,
    n_ff: int = 128,
    head_dim: int = 0,
    rope_theta: float | None = None,
    n_ctx_train: int | None = None,
    tokenizer_from: str | Path | None = None,
    chat_template: str | None = None,
) -> TinyModel:
    """Write a random f32 GGUF model of family ``arch`` (a key of :data:`FAMILIES`) to ``path``.

    The model uses GQA (``n_head_kv`` may be smaller than ``n_head``), a separate
    (untied) output matrix, and no vocabulary, unless ``tokenizer_from`` names a GGUF whose tokenizer
    (vocabulary, merges, special tokens, chat template) is copied; n_vocab then follows that tokenizer.
    ``chat_template`` replaces the copied tokenizer's template. ``n_embd``, ``rope_theta`` and ``n_ctx_train``
    default to the family's. ``head_dim`` (0: the family's) widens every head to that size, with n_embd
    ``n_head * head_dim``: GPU flash-attention kernels exist only for real models' head sizes (64, 128, ...).
    Returns the written weights.
    """
    if arch not in FAMILIES:
        raise ValueError(f"unsupported arch {arch!r}")
    fam = FAMILIES[arch]
    if head_dim:
        fam = replace(fam, head_dim=0)
        n_embd = n_head * head_dim
    n_embd = n_embd or fam.n_embd
    rope_theta = fam.rope_theta if rope_theta is None else rope_theta
    fam = replace(fam, rope_theta=rope_theta)
    n_ctx_train = n_ctx_train or fam.n_ctx_train
    tokenizer = _read_tokenizer(tokenizer_from) if tokenizer_from else None
    if tokenizer:
        n_vocab = len(tokenizer["tokenizer.ggml.tokens"][0])
        if chat_template is not None:
            tokenizer["tokenizer.chat_template"] = (chat_template, gguf.GGUFValueType.STRING, None)
    if n_embd % n_head or n_head % n_head_kv:
        raise ValueError("n_embd must divide by n_head and n_head by n_head_kv")
    head_dim = fam.head_dim or n_embd // n_head
    n_rot = fam.rope_dims or head_dim
    path = Path(path)
    rng = np.random.default_rng(seed)
    tensors = _random_tensors(rng, fam, n_vocab, n_embd, n_head, n_head_kv, n_layer, n_ff, head_dim, n_rot)

    writer = gguf.GGUFWriter(str(path), fam.arch)
    writer.add_name(f"tiny-{arch}")
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_context_length(n_ctx_train)
    writer.add_embedding_length(n_embd)
    writer.add_block_count(n_layer)
    writer.add_feed_forward_length(n_ff)
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_head_kv)
    if fam.norm == "layer":
        writer.add_layer_norm_eps(RMS_EPS)
    else:
        writer.add_layer_norm_rms_eps(RMS_EPS)
    if head_dim != n_embd // n_head:
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)
    writer.add_rope_freq_base(rope_theta)
    writer.add_rope_dimension_count(n_rot)
    attn_factor = 1.0
    if fam.scaling and fam.scaling.kind == "yarn":
        writer.add_rope_scaling_type(gguf.RopeScalingType.YARN)
        writer.add_rope_scaling_factor(fam.scaling.factor)
        writer.add_rope_scaling_orig_ctx_len(fam.scaling.orig_ctx)
    elif fam.scaling and fam.scaling.kind == "longrope":
        orig = fam.scaling.orig_ctx
        attn_factor = math.sqrt(1 + math.log(n_ctx_train / orig) / math.log(orig))
        writer.add_rope_scaling_orig_ctx_len(orig)
        writer.add_rope_scaling_attn_factors(attn_factor)
    # With no tokenizer, llama.cpp takes the vocabulary size from
    # "<arch>.vocab_size"; without it n_vocab would be 0 and loading fails.
    writer.add_vocab_size(n_vocab)
    if tokenizer:
        for key, (value, vtype, sub_type) in tokenizer.items():
            writer.add_key_value(key, value, vtype, sub_type)
    else:
        writer.add_tokenizer_model("no_vocab")
    _write_tensors(writer, tensors)
    return TinyModel(
        path=path,
        arch=fam.arch,
        n_vocab=n_vocab,
        n_embd=n_embd,
        n_head=n_head,
        n_head_kv=n_head_kv,
        n_layer=n_layer,
        n_ff=n_ff,
        rope_theta=float(rope_theta),
        norm_eps=RMS_EPS,
        tensors=tensors,
        family=fam,
        head_dim=head_dim,
        n_rot=n_rot,
        n_ctx_train=n_ctx_train,
        rope_attn_factor=attn_factor,
    )


def _read_tokenizer(path: str | Path) -> dict[str, tuple[object, gguf.GGUFValueType, gguf.GGUFValueType | None]]:
    """The tokenizer.* key/values of a GGUF file, ready for GGUFWriter.add_key_value."""
    reader = gguf.GGUFReader(str(path))
    out = {}
    for key, fld in reader.fields.items():
        if not key.startswith("tokenizer."):
            continue
        vtype = fld.types[0]
        sub_type = fld.types[1] if vtype == gguf.GGUFValueType.ARRAY else None
        out[key] = (fld.contents(), vtype, sub_type)
    return out


def write_vocab_only(source: str | Path, path: str | Path) -> Path:
    """Copy just the tokenizer of GGUF ``source`` to ``path`` (a few MB, no weights), for tokenizer_from
    on a machine that has no copy of the model (the GPU run of scripts/gpu_check.sh)."""
    writer = gguf.GGUFWriter(str(path), "llama")
    for key, (value, vtype, sub_type) in _read_tokenizer(source).items():
        writer.add_key_value(key, value, vtype, sub_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.close()
    return Path(path)


# The shapes of the loader-only models below: small, and valid for every loader they meet.
_E, _H, _KV, _HD, _FF, _V = 32, 4, 2, 8, 64, 64


def _attn(p: str, *, q_dim: int = _H * _HD, kv_dim: int = _KV * _HD, qk_norm: bool = False,
          post_norm: bool = False) -> dict[str, tuple[int, ...]]:
    """Numpy shapes of a layer's attention tensors (prefix ``p``), llama naming."""
    shapes = {p + "attn_norm.weight": (_E,), p + "attn_q.weight": (q_dim, _E), p + "attn_k.weight": (kv_dim, _E),
              p + "attn_v.weight": (kv_dim, _E), p + "attn_output.weight": (_E, q_dim)}
    if qk_norm:
        shapes |= {p + "attn_q_norm.weight": (_HD,), p + "attn_k_norm.weight": (_HD,)}
    if post_norm:
        shapes[p + "post_attention_norm.weight"] = (_E,)
    return shapes


def _ffn(p: str, *, post_norm: bool = False) -> dict[str, tuple[int, ...]]:
    """Numpy shapes of a layer's SwiGLU FFN tensors (prefix ``p``)."""
    shapes = {p + "ffn_norm.weight": (_E,), p + "ffn_gate.weight": (_FF, _E), p + "ffn_up.weight": (_FF, _E),
              p + "ffn_down.weight": (_E, _FF)}
    if post_norm:
        shapes[p + "post_ffw_norm.weight"] = (_E,)
    return shapes


_D_INNER, _D_STATE, _D_CONV, _DT_RANK = 2 * _E, 4, 4, 2  # mamba needs an inner size of twice the embedding
_SSM_KEYS = {"ssm.conv_kernel": _D_CONV, "ssm.inner_size": _D_INNER, "ssm.state_size": _D_STATE,
             "ssm.time_step_rank": _DT_RANK}


def _mamba(p: str, *, norms: bool = False) -> dict[str, tuple[int, ...]]:
    """Numpy shapes of a mamba layer (prefix ``p``); ``norms``: jamba's dt/B/C norms."""
    shapes = {p + "attn_norm.weight": (_E,), p + "ssm_in.weight": (2 * _D_INNER, _E),
              p + "ssm_conv1d.weight": (_D_INNER, _D_CONV), p + "ssm_conv1d.bias": (_D_INNER,),
              p + "ssm_x.weight": (_DT_RANK + 2 * _D_STATE, _D_INNER), p + "ssm_dt.weight": (_D_INNER, _DT_RANK),
              p + "ssm_dt.bias": (_D_INNER,), p + "ssm_a": (_D_INNER, _D_STATE), p + "ssm_d": (_D_INNER,),
              p + "ssm_out.weight": (_E, _D_INNER)}
    if norms:
        shapes |= {p + "ssm_dt_norm.weight": (_DT_RANK,), p + "ssm_b_norm.weight": (_D_STATE,),
                   p + "ssm_c_norm.weight": (_D_STATE,)}
    return shapes


def _layers(*per_layer: dict[str, tuple[int, ...]], output: bool = True) -> dict[str, tuple[int, ...]]:
    """The whole model's shapes: embeddings, the given layers, the output norm (and an untied output)."""
    shapes: dict[str, tuple[int, ...]] = {"token_embd.weight": (_V, _E), "output_norm.weight": (_E,)}
    if output:
        shapes["output.weight"] = (_V, _E)
    for layer in per_layer:
        shapes |= layer
    return shapes


def _mla_layer(p: str, *, split: bool = True) -> dict[str, tuple[int, ...]]:
    """DeepSeek-V2's attention (q and kv through low-rank latents) and a dense FFN. ``split``: attn_k_b and
    attn_v_b, which make llama.cpp cache the latent (MLA); else the older files' attn_kv_b, which make it cache
    decompressed keys whose rotary dims come last."""
    q_rank, kv_rank, rope, nope, v = 16, 16, 8, 8, 8
    kv_b = ({p + "attn_k_b.weight": (_H, kv_rank, nope), p + "attn_v_b.weight": (_H, v, kv_rank)} if split
            else {p + "attn_kv_b.weight": (_H * (nope + v), kv_rank)})
    return {p + "attn_norm.weight": (_E,), p + "attn_q_a_norm.weight": (q_rank,),
            p + "attn_kv_a_norm.weight": (kv_rank,), p + "attn_q_a.weight": (q_rank, _E),
            p + "attn_q_b.weight": (_H * (nope + rope), q_rank), p + "attn_kv_a_mqa.weight": (kv_rank + rope, _E),
            p + "attn_output.weight": (_E, _H * v)} | kv_b | _ffn(p)


_DEEPSEEK2 = {"leading_dense_block_count": 2, "attention.q_lora_rank": 16, "attention.kv_lora_rank": 16,
              "rope.dimension_count": 8, "attention.head_count_kv": 1, "expert_feed_forward_length": _FF,
              "expert_shared_count": 0}


# Architectures the shared cache cannot serve, as loader-only models: name -> (architecture, GGUF keys past the
# common ones, numpy shapes of every tensor). Each loads in llama.cpp; none is ever decoded.
REFUSED: dict[str, tuple[str, dict[str, object], dict[str, tuple[int, ...]]]] = {
    # sliding-window attention: Gemma 2 (every other layer), Gemma 3 (5 of 6 layers, q/k norms)
    "gemma2": ("gemma2", {"attention.sliding_window": 16},
               _layers(*(_attn(f"blk.{i}.", post_norm=True) | _ffn(f"blk.{i}.", post_norm=True) for i in range(2)),
                       output=False)),
    "gemma3": ("gemma3", {"attention.sliding_window": 16},
               _layers(*(_attn(f"blk.{i}.", qk_norm=True, post_norm=True) | _ffn(f"blk.{i}.", post_norm=True)
                         for i in range(2)), output=False)),
    # multi-head latent attention: DeepSeek-V2/V3 (dense layers only, to stay small), in today's files and older ones
    "deepseek2": ("deepseek2", _DEEPSEEK2 | {"attention.key_length": 24, "attention.value_length": 16,
                                             "attention.key_length_mla": 16, "attention.value_length_mla": 8},
                  _layers(*(_mla_layer(f"blk.{i}.") for i in range(2)))),
    "deepseek2-unsplit": ("deepseek2", _DEEPSEEK2 | {"attention.key_length": 16, "attention.value_length": 8,
                                                     "attention.head_count_kv": _H},
                          _layers(*(_mla_layer(f"blk.{i}.", split=False) for i in range(2)))),
    # M-RoPE: Qwen2-VL (positions of 4 sections)
    "qwen2vl": ("qwen2vl", {"rope.dimension_sections": [2, 1, 1, 0]},
                _layers(*(_attn(f"blk.{i}.") | _ffn(f"blk.{i}.") for i in range(2)))),
    # recurrent memory: Mamba; hybrid memory: Jamba (a mamba layer, then an attention layer)
    "mamba": ("mamba", _SSM_KEYS | {"attention.head_count": 0, "feed_forward_length": 0},
              _layers(_mamba("blk.0."), _mamba("blk.1."))),
    "jamba": ("jamba", _SSM_KEYS | {"attention.head_count_kv": [0, _KV]},
              _layers(_mamba("blk.0.", norms=True) | _ffn("blk.0."), _attn("blk.1.") | _ffn("blk.1."))),
    # layers without RoPE, decided by the graph: SmolLM3 (every 4th layer)
    "smollm3": ("smollm3", {}, _layers(*(_attn(f"blk.{i}.") | _ffn(f"blk.{i}.") for i in range(4)))),
}


def write_refused_model(path: str | Path, name: str) -> Path:
    """Write the loader-only model ``name`` (a key of :data:`REFUSED`) to ``path``: random f32 tensors
    (norms 1, mamba's A negative) under the architecture's names, and its hyper-parameters."""
    arch, extra, shapes = REFUSED[name]
    n_layer = 1 + max(int(name.split(".")[1]) for name in shapes if name.startswith("blk."))
    keys: dict[str, object] = {"context_length": 4096, "embedding_length": _E, "block_count": n_layer,
                               "feed_forward_length": _FF, "attention.head_count": _H, "attention.head_count_kv": _KV,
                               "attention.layer_norm_rms_epsilon": RMS_EPS, "vocab_size": _V} | extra
    rng = np.random.default_rng(0)
    tensors = {}
    for tensor, shape in shapes.items():
        if tensor.endswith("norm.weight"):
            tensors[tensor] = np.ones(shape, np.float32)
        else:
            t = (0.1 * rng.standard_normal(shape)).astype(np.float32)
            tensors[tensor] = -np.abs(t) if tensor.endswith("ssm_a") else t
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_name(f"tiny-{name}")
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    for key, value in keys.items():
        full_key = f"{arch}.{key}"
        if isinstance(value, list):
            writer.add_array(full_key, value)
        elif isinstance(value, float):
            writer.add_float32(full_key, value)
        else:
            writer.add_uint32(full_key, int(value))
    writer.add_tokenizer_model("no_vocab")
    _write_tensors(writer, tensors)
    return Path(path)


def write_tiny_mamba(path: str | Path) -> Path:
    """Write a random f32 GGUF of llama.cpp's ``mamba`` architecture (recurrent memory, no RoPE) to ``path``:
    only for refusals (it loads in llama.cpp, and a shared KV cache cannot serve it)."""
    return write_refused_model(path, "mamba")


def _write_tensors(writer: gguf.GGUFWriter, tensors: dict[str, np.ndarray]) -> None:
    """Add ``tensors`` and write the whole file (header, metadata, data)."""
    for name, array in tensors.items():
        writer.add_tensor(name, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
