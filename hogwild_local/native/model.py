"""A GGUF model loaded by the patched llama.cpp: its facts (:class:`ModelInfo`), tokens, chat template, and
libllama's quantizer.

This is layer 1 of the project: it knows llama.cpp, not the method. Errors are :class:`BackendError` with one
clear line; the native library never aborts on bad input from here because every call is checked before or
after it is made.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import BackendError
from .handle import NativeHandle, interrupt_after_native_call
from .library import clear_log, last_log_error, load
from .rpc import add_servers

if TYPE_CHECKING:
    from .context import Context


class RopeType(IntEnum):
    """llama.cpp's ``llama_rope_type`` (``ModelInfo.rope_type`` compares equal to these)."""

    NONE = -1
    NORM = 0
    NEOX = 2
    MROPE = 8
    VISION = 24
    IMROPE = 40


def quantize_file(src: str | Path, dst: str | Path, quant: str, *, threads: int | None = None) -> None:
    """Quantize the GGUF ``src`` into ``dst`` (``quant``: a llama.cpp file type such as Q4_K_M, Q8_0, Q4_0)
    with libllama's own quantizer."""
    llama_cpp, _ = load()
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
    n_layer: int = 0
    n_head: int = 0
    n_head_kv: int = 0
    n_embd: int = 0


class Model(NativeHandle):
    """A GGUF model loaded by llama.cpp (weights only; contexts are opened with :meth:`context`)."""

    def __init__(
        self,
        path: str | Path,
        *,
        n_gpu_layers: int = 0,
        main_gpu: int = 0,
        tensor_split: Sequence[float] | None = None,
        rpc: Sequence[str] = (),
    ) -> None:
        """``rpc``: endpoints of ``hogwild rpc-server`` processes (``HOST:PORT``); their devices come first in
        llama.cpp's list, so ``n_gpu_layers`` and ``tensor_split`` place layers on them (native/rpc.py)."""
        llama_cpp, _ = load()
        self._llama = llama_cpp
        path = Path(path)
        if not path.is_file():
            raise BackendError(f"model file not found: {path}")
        if rpc:
            add_servers(rpc)
        params = llama_cpp.llama_model_default_params()
        # -1: every layer (as llama-cpp-python does)
        params.n_gpu_layers = 0x7FFFFFFF if n_gpu_layers < 0 else n_gpu_layers
        params.main_gpu = main_gpu
        if tensor_split:
            n_dev = llama_cpp.llama_max_devices()
            if len(tensor_split) > n_dev:
                raise BackendError(f"--tensor-split has {len(tensor_split)} values but this build supports "
                                   f"{n_dev} devices")
            # RPC servers come first in llama.cpp's device list, then the local GPUs
            self._split = (ctypes.c_float * n_dev)(*tensor_split, *([0.0] * (n_dev - len(tensor_split))))
            params.tensor_split = self._split
        with interrupt_after_native_call():
            self.ptr = llama_cpp.llama_model_load_from_file(str(path).encode(), params)
        if not self.ptr:
            detail = last_log_error()
            raise BackendError(f"llama.cpp could not load {path.name}" + (f": {detail}" if detail else ""))
        self.path = path
        self.n_gpu_layers = n_gpu_layers
        self.rpc = tuple(rpc)  # endpoints whose devices may hold layers and cache (see context.check_flash_attn)
        self.vocab = llama_cpp.llama_model_get_vocab(self.ptr)
        self.info = self._read_info()
        self._texts: tuple[str, ...] | None = None  # token_texts, read on first use

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
            n_layer=llama_cpp.llama_model_n_layer(self.ptr),
            n_head=llama_cpp.llama_model_n_head(self.ptr),
            n_head_kv=llama_cpp.llama_model_n_head_kv(self.ptr),
            n_embd=llama_cpp.llama_model_n_embd(self.ptr),
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

    def token_texts(self) -> tuple[str, ...]:
        """Every token's text by id (control tokens: ""; a piece of a UTF-8 character: its whole characters),
        read once per model: what a rule over the vocabulary (which tokens hold a "#") looks at."""
        if self._texts is None:
            self._texts = tuple(self.token_bytes(t).decode("utf-8", "ignore") for t in range(self.info.n_vocab))
        return self._texts

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
        """Open a context (see :class:`~hogwild_local.native.context.Context`)."""
        from .context import Context  # context.py imports this module

        return Context(self, **kwargs)

    def _free(self) -> None:
        self._llama.llama_model_free(self.ptr)
