"""Thin wrapper over llama-cpp-python's low-level ctypes API for oracle tests.

Which llama.cpp build is exercised is decided by how ``llama_cpp`` is imported
(``PYTHONPATH`` / installed package, and ``LLAMA_CPP_LIB_PATH`` for the shared
library); this module only opens a model/context with deterministic settings
(CPU threads, unified KV cache, chosen K/V cache type, flash attention off)
and decodes explicit batches.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import llama_cpp
import numpy as np

GGML_TYPE_F32 = llama_cpp.GGML_TYPE_F32
GGML_TYPE_F16 = llama_cpp.GGML_TYPE_F16

llama_cpp.llama_backend_init()


class BatchItem(NamedTuple):
    """One batch entry: token id, position, sequence ids, and whether to return its logits."""

    token: int
    pos: int
    seq_ids: Sequence[int]
    want_logits: bool


class LlamaRunner:
    """A llama.cpp model + context pair; use as a context manager to free both."""

    def __init__(
        self,
        model_path: str | Path,
        *,
        n_ctx: int = 256,
        n_batch: int = 256,
        n_seq_max: int = 1,
        kv_type: int = GGML_TYPE_F32,
        n_threads: int = 2,
    ) -> None:
        mparams = llama_cpp.llama_model_default_params()
        mparams.n_gpu_layers = 0
        self.model = llama_cpp.llama_model_load_from_file(str(model_path).encode(), mparams)
        if not self.model:
            raise RuntimeError(f"llama.cpp failed to load {model_path}")

        cparams = llama_cpp.llama_context_default_params()
        cparams.n_ctx = n_ctx
        cparams.n_batch = n_batch
        cparams.n_ubatch = n_batch
        cparams.n_seq_max = n_seq_max
        cparams.kv_unified = True
        cparams.type_k = kv_type
        cparams.type_v = kv_type
        cparams.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
        cparams.n_threads = n_threads
        cparams.n_threads_batch = n_threads
        self.ctx = llama_cpp.llama_init_from_model(self.model, cparams)
        if not self.ctx:
            llama_cpp.llama_model_free(self.model)
            raise RuntimeError("llama.cpp failed to create a context")

        self.n_batch = n_batch
        self.n_seq_max = n_seq_max
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(llama_cpp.llama_model_get_vocab(self.model))
        self.memory = llama_cpp.llama_get_memory(self.ctx)

    def decode(self, items: Sequence[BatchItem | tuple[int, int, Sequence[int], bool]]) -> dict[int, np.ndarray]:
        """Decode one batch; return ``{batch index: float32 logits [n_vocab]}`` for items wanting logits."""
        items = [BatchItem(*it) for it in items]
        if not 0 < len(items) <= self.n_batch:
            raise ValueError(f"batch size {len(items)} not in 1..{self.n_batch}")
        batch = llama_cpp.llama_batch_init(len(items), 0, self.n_seq_max)
        try:
            batch.n_tokens = len(items)
            for i, it in enumerate(items):
                batch.token[i] = it.token
                batch.pos[i] = it.pos
                batch.n_seq_id[i] = len(it.seq_ids)
                for j, s in enumerate(it.seq_ids):
                    batch.seq_id[i][j] = s
                batch.logits[i] = it.want_logits
            rc = llama_cpp.llama_decode(self.ctx, batch)
            if rc != 0:
                raise RuntimeError(f"llama_decode returned {rc}")
        finally:
            llama_cpp.llama_batch_free(batch)
        out = {}
        for i, it in enumerate(items):
            if it.want_logits:
                ptr = llama_cpp.llama_get_logits_ith(self.ctx, i)
                out[i] = np.ctypeslib.as_array(ptr, shape=(self.n_vocab,)).copy()
        return out

    def seq_add(self, seq_id: int, p0: int, p1: int, delta: int) -> None:
        """Shift positions ``[p0, p1)`` of ``seq_id`` by ``delta`` (llama_memory_seq_add)."""
        llama_cpp.llama_memory_seq_add(self.memory, seq_id, p0, p1, delta)

    def close(self) -> None:
        """Free the context and the model."""
        if self.ctx:
            llama_cpp.llama_free(self.ctx)
            self.ctx = None
        if self.model:
            llama_cpp.llama_model_free(self.model)
            self.model = None

    def __enter__(self) -> LlamaRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
