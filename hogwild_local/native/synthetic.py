"""Random-weight GGUF models with the tensor names, shapes and hyper-parameters of real model families.

Speed does not depend on weight values, so the benchmark times these where no real weights can travel
(the GPU machine), and the backend's self-test (native/selftest.py) decodes a tiny one in each weight type the
CPU kernels dispatch on. Written with the ``gguf`` package in f16, quantized by ``llama-quantize`` or
libllama's own quantizer. The cached copies the benchmark uses are made by ``measure.synthetic.synthetic_model``.
"""

from __future__ import annotations

import math
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import BackendError
from .model import quantize_file
from .proc import last_line

Log = Callable[[str], None]


@dataclass(frozen=True)
class Shape:
    """Hyper-parameters of a real model family, for a random-weight GGUF of the same size and speed."""

    arch: str
    n_vocab: int
    n_embd: int
    n_layer: int
    n_head: int
    n_head_kv: int
    n_ff: int
    rope_theta: float
    rms_eps: float
    n_ctx_train: int
    tied_output: bool  # no output.weight: the token embedding doubles as the output matrix
    qkv_bias: bool


SHAPES = {
    # two layers of 256 wide: every matrix is a whole number of Q4_K super-blocks and of AMX tiles
    "tiny": Shape("llama", 1024, 256, 2, 4, 2, 512, 10000.0, 1e-5, 4096, False, False),
    # HuggingFaceTB/SmolLM2-135M(-Instruct)
    "smollm2-135m": Shape("llama", 49152, 576, 30, 9, 3, 1536, 100000.0, 1e-5, 8192, True, False),
    # Qwen/Qwen2.5-1.5B(-Instruct)
    "qwen2.5-1.5b": Shape("qwen2", 151936, 1536, 28, 12, 2, 8960, 1000000.0, 1e-6, 32768, True, True),
    # Qwen/Qwen2.5-7B(-Instruct)
    "qwen2.5-7b": Shape("qwen2", 152064, 3584, 28, 28, 4, 18944, 1000000.0, 1e-6, 32768, False, True),
    # Qwen/Qwen2.5-32B-Instruct (65 GB in f16: bench it with --layers on a small disk)
    "qwen2.5-32b": Shape("qwen2", 152064, 5120, 64, 40, 8, 27648, 1000000.0, 1e-6, 32768, False, True),
}


def _tensor_plan(shape: Shape, n_layer: int) -> list[tuple[str, tuple[int, ...], str, float]]:
    """(name, numpy shape [out, in], kind, std) of every tensor, in llama.cpp's naming."""
    e, kv, ff = shape.n_embd, shape.n_head_kv * (shape.n_embd // shape.n_head), shape.n_ff
    plan: list[tuple[str, tuple[int, ...], str, float]] = [("token_embd.weight", (shape.n_vocab, e), "f16", 1.0)]
    for i in range(n_layer):
        p = f"blk.{i}."
        plan += [
            (p + "attn_norm.weight", (e,), "norm", 0.0),
            (p + "attn_q.weight", (e, e), "f16", e**-0.5),
            (p + "attn_k.weight", (kv, e), "f16", e**-0.5),
            (p + "attn_v.weight", (kv, e), "f16", e**-0.5),
        ]
        if shape.qkv_bias:
            plan += [(p + "attn_q.bias", (e,), "f32", 0.1), (p + "attn_k.bias", (kv,), "f32", 0.1),
                     (p + "attn_v.bias", (kv,), "f32", 0.1)]
        plan += [
            (p + "attn_output.weight", (e, e), "f16", 0.5 * e**-0.5),
            (p + "ffn_norm.weight", (e,), "norm", 0.0),
            (p + "ffn_gate.weight", (ff, e), "f16", e**-0.5),
            (p + "ffn_up.weight", (ff, e), "f16", e**-0.5),
            (p + "ffn_down.weight", (e, ff), "f16", 0.5 * ff**-0.5),
        ]
    plan.append(("output_norm.weight", (e,), "norm", 0.0))
    if not shape.tied_output:
        plan.append(("output.weight", (shape.n_vocab, e), "f16", e**-0.5))
    return plan


def write_synthetic_model(path: str | Path, shape_name: str, *, layers: int | None = None, seed: int = 0) -> Path:
    """Write a random f16 GGUF with the tensor names, shapes and hparams of ``shape_name`` (see SHAPES).

    Norms are ones, biases and matrices random with std 1/sqrt(fan_in) (activations stay O(1)). Values
    are drawn from a 4M-entry pool and tiled, so a 7B file is written at disk speed; the benchmark only
    needs the right shapes. No tokenizer: ``tokenizer.ggml.model = "no_vocab"`` and
    ``<arch>.vocab_size`` (llama.cpp then takes the vocabulary size from the latter).
    """
    import gguf  # imported here: most commands never write a model

    if shape_name not in SHAPES:
        raise BackendError(f"unknown synthetic shape {shape_name!r}; choose one of {', '.join(SHAPES)}")
    shape = SHAPES[shape_name]
    n_layer = layers or shape.n_layer
    if not 1 <= n_layer <= shape.n_layer:
        raise BackendError(f"--layers must be 1..{shape.n_layer} for {shape_name}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    pool = rng.standard_normal(1 << 22).astype(np.float32)
    plan = _tensor_plan(shape, n_layer)

    writer = gguf.GGUFWriter(str(path), shape.arch)
    writer.add_name(f"synthetic-{shape_name}" + (f"-{n_layer}l" if n_layer != shape.n_layer else ""))
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    writer.add_context_length(shape.n_ctx_train)
    writer.add_embedding_length(shape.n_embd)
    writer.add_block_count(n_layer)
    writer.add_feed_forward_length(shape.n_ff)
    writer.add_head_count(shape.n_head)
    writer.add_head_count_kv(shape.n_head_kv)
    writer.add_layer_norm_rms_eps(shape.rms_eps)
    writer.add_rope_freq_base(shape.rope_theta)
    writer.add_rope_dimension_count(shape.n_embd // shape.n_head)
    writer.add_vocab_size(shape.n_vocab)
    writer.add_tokenizer_model("no_vocab")
    for name, dims, kind, _ in plan:
        dtype = np.dtype(np.float16 if kind == "f16" else np.float32)
        writer.add_tensor_info(name, dims, dtype, math.prod(dims) * dtype.itemsize)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for _name, dims, kind, std in plan:
        n = math.prod(dims)
        if kind == "norm":
            data = np.ones(n, dtype=np.float32)
        else:
            piece = np.roll(pool, int(rng.integers(len(pool))))[: min(n, len(pool))] * std
            data = np.resize(piece.astype(np.float16 if kind == "f16" else np.float32), n)
        writer.write_tensor_data(data.reshape(dims))
    writer.close()
    return path


def quantize_model(src: Path, dst: Path, quant: str, *, quantize_bin: str | None = None,
                   threads: int | None = None) -> str:
    """Quantize ``src`` to ``dst``; returns how ("llama-quantize" or "libllama").

    Uses the ``llama-quantize`` binary when given or on PATH, else libllama's ``llama_model_quantize``
    (the same code, through the loaded library).
    """
    quant = quant.upper()
    exe = quantize_bin or shutil.which("llama-quantize")
    if exe:
        cmd = [exe, str(src), str(dst), quant] + ([str(threads)] if threads else [])
        out = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if out.returncode != 0:
            raise BackendError(f"{Path(exe).name} failed ({out.returncode}): {last_line(out.stderr or out.stdout, '')}")
        return Path(exe).name
    quantize_file(src, dst, quant, threads=threads)
    return "libllama"
