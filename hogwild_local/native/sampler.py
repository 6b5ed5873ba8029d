"""llama.cpp's sampler chain: the usual settings (:class:`SamplingParams`), DRY, and a seeded draw."""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from dataclasses import dataclass

from .context import Context
from .handle import NativeHandle
from .model import Model


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
