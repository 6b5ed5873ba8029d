"""Typed binding of the Hogwild-patched llama.cpp (through llama-cpp-python's ctypes layer).

This is layer 2 of the project: it knows llama.cpp, not the method. It loads a GGUF model, opens a
context whose KV cache is unified (one set of cells for all sequences), decodes batches of
(token, position, seq ids), reads logits per batch index, and exposes the four
``llama_memory_hogwild_*`` functions of our patch plus the cache accounting read from llama.cpp.

Errors are :class:`BackendError` with one clear line; the native library never aborts on bad input
from here because every call is checked before or after it is made.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .library import LLAMA_CPP_PYTHON_VERSION, LibraryError, require_working_library

FIX_HINT = "run: hogwild build-backend"

HOGWILD_SYMBOLS = (
    "llama_memory_hogwild_enable",
    "llama_memory_hogwild_set_block",
    "llama_memory_hogwild_set_deltas",
    "llama_memory_hogwild_get_block",
    "llama_memory_n_cells_used",
    "llama_memory_n_cells_total",
)

# ggml types accepted for the KV cache (name -> ggml_type)
CACHE_TYPES = {"f32": 0, "f16": 1, "q8_0": 8, "q4_0": 2, "bf16": 30}

ROPE_NONE, ROPE_NORM, ROPE_NEOX = -1, 0, 2


class BackendError(Exception):
    """A user-facing failure of the backend: one line, with a hint where there is one."""


class UnpatchedLibraryError(BackendError):
    """llama-cpp-python is missing, the wrong version, built without the Hogwild patch, or fails its self-test."""


# --------------------------------------------------------------------------------------------------
# library loading and logging

_log_lines: deque[str] = deque(maxlen=64)
_log_lock = threading.Lock()
_lib = None
_llama = None


def _load() -> tuple[object, ctypes.CDLL]:
    """Import llama_cpp once, check the patch, bind our symbols, and route llama.cpp's log to a buffer."""
    global _lib, _llama
    if _lib is not None:
        return _llama, _lib
    # idle OpenMP threads spin by default: beside a UI thread or on a busy laptop that starves decoding
    # (a 10x slowdown was measured on 2 shared cores); OpenMP reads this when the library loads
    os.environ.setdefault("OMP_WAIT_POLICY", "passive")
    try:
        require_working_library()  # in a child process: a library that dies here must not take us with it
    except LibraryError as err:
        raise UnpatchedLibraryError(str(err)) from None
    try:
        import llama_cpp  # noqa: PLC0415 - imported lazily so that `hogwild --help` works without it
    except Exception as err:  # a missing package, or a library that fails to load
        raise UnpatchedLibraryError(f"llama-cpp-python could not be imported ({err}); {FIX_HINT}") from None
    version = getattr(llama_cpp, "__version__", "?")
    if version != LLAMA_CPP_PYTHON_VERSION:
        raise UnpatchedLibraryError(
            f"llama-cpp-python {version} is installed but hogwild-local needs {LLAMA_CPP_PYTHON_VERSION}; {FIX_HINT}"
        )
    lib = llama_cpp.llama_cpp._lib
    missing = [name for name in HOGWILD_SYMBOLS if not hasattr(lib, name)]
    if missing:
        raise UnpatchedLibraryError(
            f"this llama-cpp-python was built without the Hogwild patch (no {missing[0]}); {FIX_HINT}"
        )
    i32, p = ctypes.c_int32, ctypes.c_void_p
    signatures = {
        "llama_memory_hogwild_enable": [p, i32],
        "llama_memory_hogwild_set_block": [p, i32, i32, i32],
        "llama_memory_hogwild_set_deltas": [p, i32, ctypes.POINTER(i32), i32],
        "llama_memory_hogwild_get_block": [p, i32],
        "llama_memory_n_cells_used": [p],
        "llama_memory_n_cells_total": [p],
    }
    for name, argtypes in signatures.items():
        fn = getattr(lib, name)
        fn.argtypes = argtypes
        fn.restype = i32
    _install_log_callback(llama_cpp)
    llama_cpp.llama_backend_init()
    _llama, _lib = llama_cpp, lib
    return _llama, _lib


def _install_log_callback(llama_cpp) -> None:
    """Keep llama.cpp's log lines in memory (errors are quoted in exceptions); print them if HOGWILD_VERBOSE."""
    verbose = os.environ.get("HOGWILD_VERBOSE", "") not in ("", "0")

    @llama_cpp.llama_log_callback
    def callback(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
        line = text.decode("utf-8", errors="replace")
        with _log_lock:
            _log_lines.append(line)
        if verbose:
            os.write(2, text)

    global _log_callback
    _log_callback = callback  # keep a reference: ctypes callbacks die with their Python object
    llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))


_log_callback = None


def last_log_error() -> str:
    """The most specific error line llama.cpp logged recently, for error messages."""
    with _log_lock:
        lines = [line.strip() for line in _log_lines if "error" in line.lower() or "hogwild" in line.lower()]
    specific = [line for line in lines if "failed to decode" not in line]
    return (specific or lines or [""])[-1]


def recent_log() -> list[str]:
    """llama.cpp's last log messages (at most 64), oldest first."""
    with _log_lock:
        return list(_log_lines)


def clear_log() -> None:
    """Forget earlier log lines (called before each native call whose failure we explain)."""
    with _log_lock:
        _log_lines.clear()


def library_info() -> dict:
    """What `hogwild doctor` reports: version, library path, patched?, GPU offload."""
    try:
        llama_cpp, lib = _load()
    except UnpatchedLibraryError as err:
        return {"ok": False, "error": str(err)}
    return {
        "ok": True,
        "version": llama_cpp.__version__,
        "library": getattr(lib, "_name", "?"),
        "patched": True,
        "gpu_offload": bool(llama_cpp.llama_supports_gpu_offload()),
        "system_info": llama_cpp.llama_print_system_info().decode(errors="replace"),
    }


def quantize_file(src: str | Path, dst: str | Path, quant: str, *, threads: int | None = None) -> None:
    """Quantize the GGUF ``src`` into ``dst`` (``quant``: a llama.cpp file type such as Q4_K_M, Q8_0, Q4_0)
    with libllama's own quantizer."""
    llama_cpp, _ = _load()
    ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{quant.upper()}", None)
    if ftype is None:
        raise BackendError(f"unknown quantization {quant!r} (e.g. Q4_K_M, Q8_0, Q4_0)")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.nthread = threads or 0
    clear_log()
    if llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), ctypes.byref(params)) != 0:
        detail = last_log_error()
        raise BackendError(f"quantizing {Path(src).name} to {quant.upper()} failed" + (f": {detail}" if detail else ""))


@contextlib.contextmanager
def _interrupt_after_native_call() -> Iterator[None]:
    """Hold Ctrl-C during a long native call and raise it when the call returns.

    Python runs signal handlers only in Python code, and during a model load that is the log callback:
    a KeyboardInterrupt raised there is swallowed by ctypes ("Exception ignored ...") and the load goes
    on as if nothing happened.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # signals are delivered to the main thread only
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt


# --------------------------------------------------------------------------------------------------
# native objects


class NativeHandle:
    """An object owning a llama.cpp pointer: freed once, by close(), a with-block, or garbage collection."""

    ptr = None

    def _free(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Free the native object (idempotent)."""
        if self.ptr:
            self._free()
            self.ptr = None

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()


# --------------------------------------------------------------------------------------------------
# model


@dataclass(frozen=True)
class ModelInfo:
    """What the engine needs to know about a loaded model."""

    architecture: str
    n_vocab: int
    n_ctx_train: int
    rope_type: int
    is_recurrent: bool
    is_hybrid: bool
    n_swa: int
    chat_template: str | None
    size_bytes: int
    n_params: int
    kv_lora_rank: int = 0  # > 0: multi-head latent attention (DeepSeek-V2/V3), keys from a compressed latent


class Model(NativeHandle):
    """A GGUF model loaded by llama.cpp (weights only; contexts are opened with :meth:`context`)."""

    def __init__(
        self,
        path: str | Path,
        *,
        n_gpu_layers: int = 0,
        main_gpu: int = 0,
        tensor_split: Sequence[float] | None = None,
    ) -> None:
        llama_cpp, _ = _load()
        self._llama = llama_cpp
        path = Path(path)
        if not path.is_file():
            raise BackendError(f"model file not found: {path}")
        params = llama_cpp.llama_model_default_params()
        params.n_gpu_layers = 0x7FFFFFFF if n_gpu_layers < 0 else n_gpu_layers  # -1: every layer (as llama-cpp-python does)
        params.main_gpu = main_gpu
        if tensor_split:
            n_dev = llama_cpp.llama_max_devices()
            if len(tensor_split) > n_dev:
                raise BackendError(f"--tensor-split has {len(tensor_split)} values but this build supports {n_dev} devices")
            self._split = (ctypes.c_float * n_dev)(*tensor_split, *([0.0] * (n_dev - len(tensor_split))))
            params.tensor_split = self._split
        with _interrupt_after_native_call():
            self.ptr = llama_cpp.llama_model_load_from_file(str(path).encode(), params)
        if not self.ptr:
            detail = last_log_error()
            raise BackendError(f"llama.cpp could not load {path.name}" + (f": {detail}" if detail else ""))
        self.path = path
        self.n_gpu_layers = n_gpu_layers
        self.vocab = llama_cpp.llama_model_get_vocab(self.ptr)
        self.info = self._read_info()

    def meta(self, key: str) -> str | None:
        """The GGUF metadata value of ``key`` as llama.cpp prints it (None: absent)."""
        buf = ctypes.create_string_buffer(256)
        n = self._llama.llama_model_meta_val_str(self.ptr, key.encode(), buf, len(buf))
        return buf.value.decode() if n > 0 else None

    def meta_int(self, key: str) -> int | None:
        """The GGUF metadata value of ``key`` as an integer (None: absent or not an integer)."""
        value = self.meta(key)
        return int(value) if value is not None and value.isdigit() else None

    def _read_info(self) -> ModelInfo:
        llama_cpp = self._llama
        arch = self.meta("general.architecture") or "?"
        template = llama_cpp.llama_model_chat_template(self.ptr, None)
        return ModelInfo(
            architecture=arch,
            n_vocab=llama_cpp.llama_vocab_n_tokens(self.vocab),
            n_ctx_train=llama_cpp.llama_model_n_ctx_train(self.ptr),
            rope_type=llama_cpp.llama_model_rope_type(self.ptr),
            is_recurrent=bool(llama_cpp.llama_model_is_recurrent(self.ptr)),
            is_hybrid=bool(llama_cpp.llama_model_is_hybrid(self.ptr)),
            n_swa=llama_cpp.llama_model_n_swa(self.ptr),
            chat_template=template.decode() if template else None,
            size_bytes=llama_cpp.llama_model_size(self.ptr),
            n_params=llama_cpp.llama_model_n_params(self.ptr),
            kv_lora_rank=self.meta_int(f"{arch}.attention.kv_lora_rank") or 0,
        )

    # tokens ---------------------------------------------------------------------------------------

    def tokenize(self, text: str, *, add_special: bool = False, parse_special: bool = True) -> list[int]:
        """Text to token ids (no BOS unless add_special)."""
        data = text.encode("utf-8")
        cap = len(data) + 16
        buf = (ctypes.c_int32 * cap)()
        n = self._llama.llama_tokenize(self.vocab, data, len(data), buf, cap, add_special, parse_special)
        if n < 0:
            cap = -n
            buf = (ctypes.c_int32 * cap)()
            n = self._llama.llama_tokenize(self.vocab, data, len(data), buf, cap, add_special, parse_special)
        return list(buf[:n])

    def token_bytes(self, token: int, *, special: bool = False) -> bytes:
        """The raw bytes of one token (may be part of a UTF-8 character)."""
        buf = ctypes.create_string_buffer(64)
        n = self._llama.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, special)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = self._llama.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, special)
        return buf.raw[:n]

    def is_eog(self, token: int) -> bool:
        """End of generation (EOS, EOT, ...)."""
        return bool(self._llama.llama_vocab_is_eog(self.vocab, token))

    def apply_chat_template(self, messages: Sequence[tuple[str, str]], *, add_assistant: bool = True) -> str:
        """Render (role, content) messages with the model's own chat template (llama.cpp's built-in renderer)."""
        llama_cpp = self._llama
        template = self.info.chat_template
        if template is None:
            raise BackendError(f"{self.path.name} has no chat template")
        msgs = (llama_cpp.llama_chat_message * len(messages))()
        keep = []
        for i, (role, content) in enumerate(messages):
            r, c = role.encode(), content.encode()
            keep += [r, c]
            msgs[i].role, msgs[i].content = r, c
        size = sum(len(c) for c in keep) * 2 + 1024
        for _ in range(2):
            buf = ctypes.create_string_buffer(size)
            n = llama_cpp.llama_chat_apply_template(template.encode(), msgs, len(messages), add_assistant, buf, size)
            if n < 0:
                raise BackendError(f"llama.cpp does not support the chat template of {self.path.name}")
            if n <= size:
                return buf.raw[:n].decode("utf-8", errors="replace")
            size = n + 1
        raise BackendError("chat template output did not fit")  # unreachable in practice

    def context(self, **kwargs) -> Context:
        """Open a context (see :class:`Context`)."""
        return Context(self, **kwargs)

    def _free(self) -> None:
        self._llama.llama_model_free(self.ptr)


# --------------------------------------------------------------------------------------------------
# context


@dataclass(frozen=True)
class Token:
    """One entry of a decode batch: a token at a canonical position, for sequences seq_ids (own first)."""

    token: int
    pos: int
    seq_ids: tuple[int, ...]
    logits: bool = False


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
        seed: int = 0,
    ) -> None:
        llama_cpp = model._llama
        self._llama = llama_cpp
        self.model = model
        if cache_type not in CACHE_TYPES:
            raise BackendError(f"unknown cache type {cache_type!r}; choose one of {', '.join(CACHE_TYPES)}")
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
        with _interrupt_after_native_call():
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
            raise BackendError(f"the KV cache is full ({self.cells_used()}/{self.cells_total()} cells); use a larger --ctx")
        if rc != 0:
            detail = last_log_error()
            raise BackendError(f"llama_decode failed ({rc})" + (f": {detail}" if detail else ""))

    def logits(self, index: int) -> np.ndarray:
        """The logits of the token at ``index`` of the last batch (a copy, float32 [n_vocab])."""
        ptr = self._llama.llama_get_logits_ith(self.ptr, index)
        if not ptr:
            raise BackendError(f"no logits for batch index {index}")
        return np.ctypeslib.as_array(ptr, shape=(self._n_vocab,)).copy()

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

    def clear(self) -> None:
        """Empty the cache."""
        self._llama.llama_memory_clear(self.memory, True)

    def cells_used(self) -> int:
        """Cells holding at least one sequence, counted by llama.cpp."""
        return _lib.llama_memory_n_cells_used(self.memory)

    def cells_total(self) -> int:
        """All cells of the KV cache."""
        return _lib.llama_memory_n_cells_total(self.memory)

    # Hogwild views ----------------------------------------------------------------------------------

    def hogwild_enable(self, n_blk: int) -> None:
        """Turn Hogwild views on with ``n_blk`` blocks (0 turns them off)."""
        self._check(_lib.llama_memory_hogwild_enable(self.memory, n_blk), "hogwild_enable")

    def hogwild_set_block(self, blk: int, p0: int, p1: int) -> None:
        """Block ``blk`` (>= 1) owns canonical positions [p0, p1)."""
        self._check(_lib.llama_memory_hogwild_set_block(self.memory, blk, p0, p1), "hogwild_set_block")

    def hogwild_set_deltas(self, seq: int, deltas: Sequence[int]) -> None:
        """Sequence ``seq`` sees a cell of block b at canonical position p at p + deltas[b]."""
        arr = (ctypes.c_int32 * len(deltas))(*deltas)
        self._check(_lib.llama_memory_hogwild_set_deltas(self.memory, seq, arr, len(deltas)), "hogwild_set_deltas")

    def hogwild_get_block(self, pos: int) -> int:
        """The block owning canonical position ``pos``."""
        rc = _lib.llama_memory_hogwild_get_block(self.memory, pos)
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


# --------------------------------------------------------------------------------------------------
# sampling


@dataclass(frozen=True)
class SamplingParams:
    """llama.cpp's usual sampler settings; temperature <= 0 means greedy."""

    temperature: float = 0.6
    top_k: int = 40
    top_p: float = 0.95
    min_p: float = 0.05
    repeat_penalty: float = 1.0
    repeat_last_n: int = 64
    dry_multiplier: float = 0.0  # DRY ("don't repeat yourself"): penalize continuing a repeated run of tokens
    dry_base: float = 1.75
    dry_allowed_length: int = 2
    dry_last_n: int = 2048  # how far back DRY looks for repeats (tokens)
    seed: int = 0


DRY_BREAKERS = ("\n", ":", "\"", "*")  # a repeated run stops at these (llama.cpp's defaults)


class Sampler(NativeHandle):
    """A llama.cpp sampler chain (DRY, penalties, top-k, top-p, min-p, temperature, then a seeded draw)."""

    def __init__(self, model: Model, params: SamplingParams, *, seed_offset: int = 0) -> None:
        llama_cpp = model._llama
        self._llama = llama_cpp
        self.ptr = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
        add = lambda s: llama_cpp.llama_sampler_chain_add(self.ptr, s)  # noqa: E731
        self.has_dry = params.dry_multiplier > 0
        self._dry_last_n = params.dry_last_n
        if self.has_dry:
            breakers = (ctypes.c_char_p * len(DRY_BREAKERS))(*[b.encode() for b in DRY_BREAKERS])
            add(llama_cpp.llama_sampler_init_dry(model.vocab, params.dry_multiplier,
                                                 params.dry_base, params.dry_allowed_length, params.dry_last_n,
                                                 breakers, len(DRY_BREAKERS)))
        if params.repeat_penalty != 1.0:
            add(llama_cpp.llama_sampler_init_penalties(
                model.info.n_vocab, params.repeat_last_n, params.repeat_penalty, 0.0, 0.0))
        if params.temperature <= 0:
            add(llama_cpp.llama_sampler_init_greedy())
            return
        add(llama_cpp.llama_sampler_init_top_k(params.top_k))
        add(llama_cpp.llama_sampler_init_top_p(params.top_p, 1))
        add(llama_cpp.llama_sampler_init_min_p(params.min_p, 1))
        add(llama_cpp.llama_sampler_init_temp(params.temperature))
        add(llama_cpp.llama_sampler_init_dist((params.seed + seed_offset) & 0xFFFFFFFF))

    def sample(self, ctx: Context, index: int) -> int:
        """Draw the next token from the logits at batch ``index`` of the last decode (and remember it)."""
        return self._llama.llama_sampler_sample(self.ptr, ctx.ptr, index)

    def accept(self, token: int) -> None:
        """Tell the penalties about a token written without sampling (forced text)."""
        self._llama.llama_sampler_accept(self.ptr, token)

    def set_dry_context(self, tokens: Sequence[int]) -> None:
        """The text DRY looks for repeats in (by default, the tokens this sampler drew or was told about).

        A worker's own tokens are not all it reads: with a shared cache it also sees the others' steps,
        and echoing those is the repetition to discourage. Nothing happens without DRY.
        """
        if not self.has_dry:
            return
        dry = self._llama.llama_sampler_chain_get(self.ptr, 0)
        self._llama.llama_sampler_reset(dry)
        for token in tokens[-self._dry_last_n:]:
            self._llama.llama_sampler_accept(dry, token)

    def _free(self) -> None:
        self._llama.llama_sampler_free(self.ptr)
