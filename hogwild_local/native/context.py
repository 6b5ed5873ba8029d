"""A llama.cpp context: one unified KV cache for all sequences, batched decoding, logits, and the Hogwild
views of our patch (blocks and per-sequence offsets) plus the cache accounting read from llama.cpp."""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from .errors import BackendError
from .handle import NativeHandle, interrupt_after_native_call
from .library import clear_log, last_log_error, load

if TYPE_CHECKING:
    from .model import Model

# ggml types accepted for the KV cache (name -> ggml_type)
CACHE_TYPES = {"f32": 0, "f16": 1, "q8_0": 8, "q4_0": 2, "bf16": 30}

T = TypeVar("T")


def batches(tokens: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """``tokens`` in consecutive pieces of at most ``size`` (a long text decoded one batch at a time)."""
    for i in range(0, len(tokens), size):
        yield tokens[i:i + size]


@dataclass(frozen=True)
class Token:
    """One entry of a decode batch: a token at a canonical position, for sequences seq_ids (own first)."""

    token: int
    pos: int
    seq_ids: tuple[int, ...]
    logits: bool = False


def check_flash_attn(model: Model, cache_type: str, flash_attn: bool) -> None:
    """Refuse flash attention over a bf16 cache on RPC servers: it gives wrong logits, stock llama.cpp too.

    ggml-rpc claims every op for a server's device without asking the server (ggml-rpc.cpp, a TODO upstream),
    so the scheduler never moves an op the server's backend lacks to the CPU. CUDA's flash attention has no
    bf16 path: over RPC, stock llama.cpp's logits were 2.4-3.0 off the numpy reference (H100, 2026-12-06;
    docs/backend.md, "RPC"). The client cannot see which backend a server runs, so this refuses bf16 with flash
    attention on every server; the engine takes the query-copy graph there instead (engine.hogwild_flash_attn).
    """
    if flash_attn and cache_type == "bf16" and model.rpc:
        raise BackendError("a bf16 KV cache with flash attention gives wrong logits on RPC servers (ggml-rpc "
                           "claims the op for backends such as CUDA that lack it); use --cache-type f16")


class Context(NativeHandle):
    """A llama.cpp context with ONE unified KV cache shared by ``n_seq`` sequences.

    One context is not thread-safe: use it from one thread at a time.
    """

    def __init__(
        self,
        model: Model,
        *,
        n_ctx: int = 4096,
        n_seq: int = 1,
        n_batch: int = 512,
        cache_type: str = "f16",
        n_threads: int | None = None,
        flash_attn: bool = False,
        offload_kqv: bool = True,
    ) -> None:
        llama_cpp, self._lib = load()
        self._llama = llama_cpp
        self.model = model
        if cache_type not in CACHE_TYPES:
            raise BackendError(f"unknown cache type {cache_type!r}; choose one of {', '.join(CACHE_TYPES)}")
        check_flash_attn(model, cache_type, flash_attn)
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = n_ctx
        params.n_batch = n_batch
        params.n_ubatch = n_batch  # one ubatch per pass: every token of a pass sees every other (instant visibility)
        params.n_seq_max = n_seq
        params.kv_unified = True
        params.type_k = CACHE_TYPES[cache_type]
        params.type_v = CACHE_TYPES[cache_type]
        params.offload_kqv = offload_kqv
        params.flash_attn_type = (
            llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED if flash_attn else llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
        )
        threads = n_threads or max(1, os.cpu_count() or 1)
        params.n_threads = threads
        params.n_threads_batch = threads
        with interrupt_after_native_call():
            self.ptr = llama_cpp.llama_init_from_model(model.ptr, params)
        if not self.ptr:
            detail = last_log_error()
            raise BackendError("llama.cpp could not create a context" + (f": {detail}" if detail else ""))
        self.n_ctx = llama_cpp.llama_n_ctx(self.ptr)
        self.n_batch = n_batch
        self.n_seq = n_seq
        self.cache_type = cache_type
        self.memory = llama_cpp.llama_get_memory(self.ptr)
        self._batch = llama_cpp.llama_batch_init(n_batch, 0, n_seq)
        self._n_vocab = model.info.n_vocab
        self.last_batch_size = 0

    # decoding -------------------------------------------------------------------------------------

    def decode(self, tokens: Sequence[Token]) -> None:
        """Run one forward pass over ``tokens`` (at most n_batch). Raises BackendError on failure."""
        n = len(tokens)
        if not 0 < n <= self.n_batch:
            raise BackendError(f"a batch holds 1..{self.n_batch} tokens, got {n}")
        b = self._batch
        b.n_tokens = n
        for i, t in enumerate(tokens):
            if not 0 < len(t.seq_ids) <= self.n_seq or not all(0 <= s < self.n_seq for s in t.seq_ids):
                raise BackendError(f"token {i}: seq ids {t.seq_ids} outside 0..{self.n_seq - 1}")
            b.token[i] = t.token
            b.pos[i] = t.pos
            b.n_seq_id[i] = len(t.seq_ids)
            for j, s in enumerate(t.seq_ids):
                b.seq_id[i][j] = s
            b.logits[i] = t.logits
        clear_log()
        rc = self._llama.llama_decode(self.ptr, b)
        self.last_batch_size = n
        if rc == 1:
            raise BackendError(f"the KV cache is full ({self.cells_used()}/{self.cells_total()} cells); "
                               "use a larger --ctx")
        if rc != 0:
            detail = last_log_error()
            raise BackendError(f"llama_decode failed ({rc})" + (f": {detail}" if detail else ""))

    def synchronize(self) -> None:
        """Wait until the last decode has finished on the device (what a timing must include)."""
        self._llama.llama_synchronize(self.ptr)

    def _logits_view(self, index: int) -> np.ndarray:
        """llama.cpp's own logits row for batch ``index`` of the last decode (a view, not a copy)."""
        ptr = self._llama.llama_get_logits_ith(self.ptr, index)
        if not ptr:
            raise BackendError(f"no logits for batch index {index}")
        return np.ctypeslib.as_array(ptr, shape=(self._n_vocab,))

    def bar(self, index: int, tokens: np.ndarray) -> None:
        """Make ``tokens`` impossible at batch ``index`` of the last decode: their logits become minus infinity
        in llama.cpp's own buffer, which the next sample there reads (greedy or not, nothing draws them)."""
        self._logits_view(index)[tokens] = -np.inf

    def logits(self, index: int) -> np.ndarray:
        """The logits of the token at ``index`` of the last batch (a copy, float32 [n_vocab])."""
        return self._logits_view(index).copy()

    # memory -----------------------------------------------------------------------------------------

    def seq_rm(self, seq: int, p0: int = -1, p1: int = -1) -> bool:
        """Remove cells of ``seq`` in [p0, p1) (-1 = open end); seq -1 = every sequence."""
        return bool(self._llama.llama_memory_seq_rm(self.memory, seq, p0, p1))

    def seq_cp(self, src: int, dst: int, p0: int = -1, p1: int = -1) -> None:
        """Share the cells of ``src`` in [p0, p1) with ``dst`` (no copy in a unified cache)."""
        self._llama.llama_memory_seq_cp(self.memory, src, dst, p0, p1)

    def seq_add(self, seq: int, p0: int, p1: int, shift: int) -> None:
        """Move cells of ``seq`` in [p0, p1) by ``shift`` positions (keys re-rotated at the next decode)."""
        self._llama.llama_memory_seq_add(self.memory, seq, p0, p1, shift)

    def cells_used(self) -> int:
        """Cells holding at least one sequence, counted by llama.cpp."""
        return self._lib.llama_memory_n_cells_used(self.memory)

    def cells_total(self) -> int:
        """All cells of the KV cache."""
        return self._lib.llama_memory_n_cells_total(self.memory)

    # Hogwild views ----------------------------------------------------------------------------------

    def hogwild_enable(self, n_blk: int) -> None:
        """Turn Hogwild views on with ``n_blk`` blocks (0 turns them off)."""
        self._check(self._lib.llama_memory_hogwild_enable(self.memory, n_blk), "hogwild_enable")

    def hogwild_set_block(self, blk: int, p0: int, p1: int) -> None:
        """Block ``blk`` (>= 1) owns canonical positions [p0, p1)."""
        self._check(self._lib.llama_memory_hogwild_set_block(self.memory, blk, p0, p1), "hogwild_set_block")

    def hogwild_set_deltas(self, seq: int, deltas: Sequence[int]) -> None:
        """Sequence ``seq`` sees a cell of block b at canonical position p at p + deltas[b]."""
        arr = (ctypes.c_int32 * len(deltas))(*deltas)
        self._check(self._lib.llama_memory_hogwild_set_deltas(self.memory, seq, arr, len(deltas)), "hogwild_set_deltas")

    def hogwild_get_block(self, pos: int) -> int:
        """The block owning canonical position ``pos``."""
        rc = self._lib.llama_memory_hogwild_get_block(self.memory, pos)
        if rc < 0:
            self._check(rc, "hogwild_get_block")
        return rc

    @staticmethod
    def _check(rc: int, what: str) -> None:
        if rc == -1:
            raise BackendError(f"{what}: invalid argument")
        if rc == -2:
            raise BackendError(
                f"{what}: unsupported by this model or context (needs RoPE with K-shift in every layer, "
                "1-D positions, no MLA, no sliding window, a non-quantized V cache, a unified KV cache)"
            )
        if rc != 0:
            raise BackendError(f"{what}: error {rc}")

    def _free(self) -> None:
        self._llama.llama_batch_free(self._batch)
        self._llama.llama_free(self.ptr)
