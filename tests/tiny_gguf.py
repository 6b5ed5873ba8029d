"""Tiny random-weight GGUF models for testing.

The files written here load in stock llama.cpp (architectures ``llama`` and
``qwen2``) and carry no tokenizer (``tokenizer.ggml.model = "no_vocab"``), so
callers feed raw token ids.  The same weights are returned as float32 numpy
arrays so that an independent reference implementation can run the identical
model.

Layout conventions (checked against llama.cpp's tensor loader):

* Every matrix is stored in numpy as ``[out_features, in_features]`` and the
  layer computes ``y = W @ x``.  gguf-py writes the numpy shape reversed as the
  ggml ``ne`` array, so llama.cpp sees ``ne = {in, out}``, which is exactly what
  it expects (e.g. ``attn_q`` is ``{n_embd, n_head*head_dim}``).
* ``token_embd`` is ``[n_vocab, n_embd]`` (row ``t`` is token ``t``'s
  embedding) and ``output`` is ``[n_vocab, n_embd]`` (logits = ``output @ h``).
* Q/K head ``h`` occupies rows ``h*head_dim:(h+1)*head_dim`` of ``attn_q`` /
  ``attn_k``; no HF-style row permutation is applied, the rope flavour is
  decided by the architecture alone (llama: NORMAL, qwen2: NEOX).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import gguf
import numpy as np

RMS_EPS = 1e-5


@dataclass
class TinyModel:
    """Hyper-parameters and float32 weights of a tiny GGUF model written to ``path``."""

    path: Path
    arch: str
    n_vocab: int
    n_embd: int
    n_head: int
    n_head_kv: int
    n_layer: int
    n_ff: int
    rope_theta: float
    rms_eps: float
    tensors: dict[str, np.ndarray] = field(repr=False)

    @property
    def head_dim(self) -> int:
        """Per-head dimension of Q, K and V."""
        return self.n_embd // self.n_head


def _random_tensors(
    rng: np.random.Generator,
    arch: str,
    n_vocab: int,
    n_embd: int,
    n_head: int,
    n_head_kv: int,
    n_layer: int,
    n_ff: int,
) -> dict[str, np.ndarray]:
    """Draw weights whose activations stay O(1) through the network.

    Projections into attention scores and logits use std ``1/sqrt(fan_in)`` so
    the scaled scores and the logits have roughly unit spread (attention is
    neither uniform nor one-hot, so view positions matter); projections that
    write back into the residual stream are scaled down by 0.5.
    """
    head_dim = n_embd // n_head
    n_embd_kv = n_head_kv * head_dim

    def matrix(n_out: int, n_in: int, gain: float = 1.0) -> np.ndarray:
        return (rng.standard_normal((n_out, n_in)) * gain / np.sqrt(n_in)).astype(np.float32)

    def norm(n: int) -> np.ndarray:
        return (1.0 + 0.1 * rng.standard_normal(n)).astype(np.float32)

    def bias(n: int) -> np.ndarray:
        return (0.5 * rng.standard_normal(n)).astype(np.float32)

    tensors: dict[str, np.ndarray] = {
        "token_embd.weight": rng.standard_normal((n_vocab, n_embd)).astype(np.float32),
        "output_norm.weight": norm(n_embd),
        "output.weight": matrix(n_vocab, n_embd, 2.0),
    }
    for i in range(n_layer):
        p = f"blk.{i}."
        tensors[p + "attn_norm.weight"] = norm(n_embd)
        tensors[p + "attn_q.weight"] = matrix(n_embd, n_embd, 1.5)
        tensors[p + "attn_k.weight"] = matrix(n_embd_kv, n_embd, 1.5)
        tensors[p + "attn_v.weight"] = matrix(n_embd_kv, n_embd)
        if arch == "qwen2":
            tensors[p + "attn_q.bias"] = bias(n_embd)
            tensors[p + "attn_k.bias"] = bias(n_embd_kv)
            tensors[p + "attn_v.bias"] = bias(n_embd_kv)
        tensors[p + "attn_output.weight"] = matrix(n_embd, n_embd, 0.5)
        tensors[p + "ffn_norm.weight"] = norm(n_embd)
        tensors[p + "ffn_gate.weight"] = matrix(n_ff, n_embd)
        tensors[p + "ffn_up.weight"] = matrix(n_ff, n_embd)
        tensors[p + "ffn_down.weight"] = matrix(n_embd, n_ff, 0.5)
    return tensors


def write_tiny_model(
    path: str | Path,
    arch: str = "llama",
    *,
    seed: int = 0,
    n_vocab: int = 64,
    n_embd: int = 64,
    n_head: int = 4,
    n_head_kv: int = 2,
    n_layer: int = 2,
    n_ff: int = 128,
    rope_theta: float = 10000.0,
    n_ctx_train: int = 65536,
    tokenizer_from: str | Path | None = None,
    chat_template: str | None = None,
) -> TinyModel:
    """Write a random f32 GGUF model of architecture ``arch`` ("llama" or "qwen2") to ``path``.

    The model uses GQA (``n_head_kv`` may be smaller than ``n_head``), a separate
    (untied) output matrix, and no vocabulary, unless ``tokenizer_from`` names a GGUF whose tokenizer
    (vocabulary, merges, special tokens, chat template) is copied; n_vocab then follows that tokenizer.
    ``chat_template`` replaces the copied tokenizer's template. Returns the written weights.
    """
    tokenizer = _read_tokenizer(tokenizer_from) if tokenizer_from else None
    if tokenizer:
        n_vocab = len(tokenizer["tokenizer.ggml.tokens"][0])
        if chat_template is not None:
            tokenizer["tokenizer.chat_template"] = (chat_template, gguf.GGUFValueType.STRING, None)
    if arch not in ("llama", "qwen2"):
        raise ValueError(f"unsupported arch {arch!r}")
    if n_embd % n_head or n_head % n_head_kv:
        raise ValueError("n_embd must divide by n_head and n_head by n_head_kv")
    path = Path(path)
    rng = np.random.default_rng(seed)
    tensors = _random_tensors(rng, arch, n_vocab, n_embd, n_head, n_head_kv, n_layer, n_ff)

    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_name(f"tiny-{arch}")
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_context_length(n_ctx_train)
    writer.add_embedding_length(n_embd)
    writer.add_block_count(n_layer)
    writer.add_feed_forward_length(n_ff)
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_head_kv)
    writer.add_layer_norm_rms_eps(RMS_EPS)
    writer.add_rope_freq_base(rope_theta)
    writer.add_rope_dimension_count(n_embd // n_head)
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
        arch=arch,
        n_vocab=n_vocab,
        n_embd=n_embd,
        n_head=n_head,
        n_head_kv=n_head_kv,
        n_layer=n_layer,
        n_ff=n_ff,
        rope_theta=float(rope_theta),
        rms_eps=RMS_EPS,
        tensors=tensors,
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


def write_tiny_mamba(path: str | Path, *, n_vocab: int = 64, n_embd: int = 32, n_layer: int = 2) -> Path:
    """Write a random f32 GGUF of llama.cpp's ``mamba`` architecture (recurrent memory, no RoPE) to ``path``.

    Only for refusals: it loads in llama.cpp, and a shared KV cache cannot serve it. Shapes follow
    llama.cpp's mamba loader (an inner size of twice the embedding, as it requires).
    """
    d_inner, d_state, d_conv, dt_rank = 2 * n_embd, 4, 4, 2
    rng = np.random.default_rng(0)

    def tensor(*shape: int) -> np.ndarray:  # numpy shape = ggml ne reversed
        return (rng.standard_normal(shape) * 0.1).astype(np.float32)

    tensors = {"token_embd.weight": tensor(n_vocab, n_embd), "output_norm.weight": np.ones(n_embd, np.float32),
               "output.weight": tensor(n_vocab, n_embd)}
    for i in range(n_layer):
        p = f"blk.{i}."
        tensors |= {
            p + "attn_norm.weight": np.ones(n_embd, np.float32), p + "ssm_in.weight": tensor(2 * d_inner, n_embd),
            p + "ssm_conv1d.weight": tensor(d_inner, d_conv), p + "ssm_conv1d.bias": tensor(d_inner),
            p + "ssm_x.weight": tensor(dt_rank + 2 * d_state, d_inner), p + "ssm_dt.weight": tensor(d_inner, dt_rank),
            p + "ssm_dt.bias": tensor(d_inner), p + "ssm_a": -np.abs(tensor(d_inner, d_state)),
            p + "ssm_d": tensor(d_inner), p + "ssm_out.weight": tensor(n_embd, d_inner),
        }
    writer = gguf.GGUFWriter(str(path), "mamba")
    writer.add_name("tiny-mamba")
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_context_length(4096)
    writer.add_embedding_length(n_embd)
    writer.add_block_count(n_layer)
    writer.add_feed_forward_length(0)
    writer.add_head_count(0)
    writer.add_layer_norm_rms_eps(RMS_EPS)
    writer.add_ssm_conv_kernel(d_conv)
    writer.add_ssm_inner_size(d_inner)
    writer.add_ssm_state_size(d_state)
    writer.add_ssm_time_step_rank(dt_rank)
    writer.add_vocab_size(n_vocab)
    writer.add_tokenizer_model("no_vocab")
    _write_tensors(writer, tensors)
    return Path(path)


def _write_tensors(writer: gguf.GGUFWriter, tensors: dict[str, np.ndarray]) -> None:
    """Add ``tensors`` and write the whole file (header, metadata, data)."""
    for name, array in tensors.items():
        writer.add_tensor(name, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
