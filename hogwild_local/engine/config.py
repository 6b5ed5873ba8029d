"""What to run and what the engine refuses: the methods, :class:`RunConfig`, the model and config checks.

Methods (same budget accounting: passes, prefill and finisher excluded):
- ``hogwild``: the shared cache (layout combined, or contiguous / stepwise for ablation);
- ``single``: one worker, then the finisher;
- ``independent``: W workers that never see each other, the finisher over their concatenated work;
- ``self-consistency``: W independent workers, one finisher each, majority vote.

Answer modes (what the final answer is; the rules and the finisher's prompt follow it, ``engine/prompts.py``,
and ``engine/answers.py`` reads it from what the finisher writes):
- ``boxed``: a short answer in ``\\boxed{}``, graded by ``hogwild eval``; a worker's box ends the run;
- ``text``: prose for the reader, written by the finisher from the shared work once the workers stop;
- ``code``: one fenced code block, written the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from ..errors import HogwildError
from ..native.model import Model, RopeType
from ..native.sampler import SamplingParams
from . import thinking
from .layout import LayoutKind


class Method(str, Enum):
    """How the budget is spent (the values are what ``--method`` takes)."""

    HOGWILD = "hogwild"
    SINGLE = "single"
    INDEPENDENT = "independent"
    SELF_CONSISTENCY = "self-consistency"

    @property
    def stops_on_answer(self) -> bool:
        """Whether a worker's boxed answer ends the run (the baselines with several workers wait for all)."""
        return self in (Method.HOGWILD, Method.SINGLE)


METHODS = tuple(m.value for m in Method)


class AnswerMode(str, Enum):
    """What the final answer is (the values are what ``--answer`` takes)."""

    BOXED = "boxed"
    TEXT = "text"
    CODE = "code"

    @property
    def default_tokens(self) -> int:
        """The finisher's token limit unless the caller sets one: a box holds a number, prose and code need room."""
        return {AnswerMode.BOXED: 16, AnswerMode.TEXT: 512, AnswerMode.CODE: 1024}[self]


ANSWER_MODES = tuple(m.value for m in AnswerMode)
UNSUPPORTED_ROPE = {RopeType.NONE: "no RoPE", RopeType.MROPE: "M-RoPE", RopeType.IMROPE: "M-RoPE",
                    RopeType.VISION: "vision RoPE"}
# architectures whose graphs leave RoPE out of some layers by a rule of their own (the patch refuses them too)
NOPE_LAYERS = ("smollm3", "llama4", "afmoe")


class EngineError(HogwildError):
    """A user-facing refusal or failure: one line."""


class PromptTooLong(EngineError):
    """The prompt, with the room the run needs besides, does not fit the context (an HTTP client's error)."""


@dataclass(frozen=True)
class RunConfig:
    """What to run. ``budget`` counts passes (sequential forward passes)."""

    method: str = "hogwild"
    workers: int = 2
    layout: str = "combined"
    budget: int = 256
    sampling: SamplingParams = field(default_factory=SamplingParams)
    answer: str = "boxed"  # an AnswerMode value
    finisher_tokens: int | None = None  # the finisher's token limit; None = the answer mode's default
    self_check_every: int = 1024  # generated tokens (all workers) between self-check questions; 0 = never
    check_repeats: bool = False  # also ask it at a worker's next step when its last step repeated a finished one
    end_at_headers: bool = False  # a step ends where its worker starts writing a step header (the header is cut)
    drop_repeats: bool = False  # a finished step that repeats one its worker has seen is freed, not kept
    # workers never write "#" or "**" (prompts.HEADER_MARKS; remedies.BarHeaders): the workspace's section headers
    # and the step headers stay the engine's, whatever the model imitates
    bar_headers: bool = False
    # a step longer than this many tokens (header included) ends at its next sentence or line end (at twice as
    # many, at once), so that work reaches the history even when a worker never writes a blank line; 0 = no limit
    step_limit: int = 300
    think: str = "auto"  # thinking block (a ThinkMode value): auto follows the model, on / off force it
    n_ctx: int = 8192
    cache_type: str = "f16"
    threads: int | None = None
    stop_on_answer: bool = True
    snapshots: tuple[int, ...] = ()  # budgets (passes) at which to also ask the finisher, without stopping

    @property
    def n_workers(self) -> int:
        return 1 if self.method == "single" else self.workers

    @property
    def answer_tokens(self) -> int:
        """The most tokens the finisher writes: ``finisher_tokens``, or the answer mode's default."""
        return self.finisher_tokens or AnswerMode(self.answer).default_tokens

    @property
    def layout_kind(self) -> LayoutKind:
        if self.method == "hogwild":
            return LayoutKind(self.layout)
        return LayoutKind.COMBINED if self.method == "single" else LayoutKind.INDEPENDENT


def hogwild_flash_attn(cache_type: str, *, over_rpc: bool = False) -> bool:
    """Whether a Hogwild context turns flash attention on: unless the cache is f32, or bf16 with layers on
    RPC servers (``over_rpc``; see ``native.context.check_flash_attn``).

    The Hogwild passes then take the patch's flash-attention path (the workers' current steps copied past the
    used cells once per worker, keys rotated for that worker's view, and one stock flash attention over it
    all: no score tensors, every backend's kernel), so memory stays flat as the cache fills. llama.cpp's flash
    attention casts an f32 cache to f16 (1e-3 logit errors where f32 gives 1e-6), which would undo what
    ``--cache-type f32`` asks for: f32 runs take the patch's stock-op graph.
    """
    return cache_type != "f32" and not (cache_type == "bf16" and over_rpc)


def spare_cells(n_workers: int, n_ctx: int, flash_attn: bool) -> int:
    """Cells a Hogwild context holds beyond what its run may fill, for the key copies of the flash-attention
    path (see ``hogwild_flash_attn``): one copy per worker of the small cell range that holds the workers' current
    steps (patch 0008: the range may run up to 1.5x the steps' cells plus 64 before it moves), W x W x 128 cells
    for steps of about 128 tokens, at most a quarter of the context or 4096 cells, whichever is more. Until the
    cache is nearly full the copies also fit in its unused cells; where they do not fit, the patch takes its
    slower query-copy graph for that pass, with the same result."""
    return min(max(256, n_workers * n_workers * 128), max(n_ctx // 4, 4096)) if flash_attn else 0


def check_model(model: Model) -> None:
    """Refuse models whose memory cannot hold Hogwild views, with the reason."""
    info = model.info
    if info.is_recurrent or info.is_hybrid:
        raise EngineError(f"{info.architecture}: recurrent or hybrid memory cannot share a KV cache between workers")
    if info.rope_type in UNSUPPORTED_ROPE:
        raise EngineError(f"{info.architecture}: {UNSUPPORTED_ROPE[info.rope_type]} is not supported "
                          "(needs plain RoPE)")
    if info.n_swa > 0:
        raise EngineError(f"{info.architecture}: sliding-window attention is not supported yet")
    if info.kv_lora_rank > 0:
        raise EngineError(f"{info.architecture}: multi-head latent attention (MLA) is not supported "
                          "(its keys come from a compressed latent, only partly rotary)")
    if info.architecture in NOPE_LAYERS:
        raise EngineError(f"{info.architecture}: layers without RoPE (NoPE) are not supported "
                          "(the query rotation would turn them too)")


def check_config(config: RunConfig) -> None:
    """Refuse a config the engine cannot run, with the reason."""
    if config.method not in METHODS:
        raise EngineError(f"unknown method {config.method!r}; choose one of {', '.join(METHODS)}")
    if config.step_limit < 0:
        raise EngineError(f"the step limit must be 0 (none) or a number of tokens, got {config.step_limit}")
    if config.answer not in ANSWER_MODES:
        raise EngineError(f"unknown answer mode {config.answer!r}; choose one of {', '.join(ANSWER_MODES)}")
    if config.finisher_tokens is not None and config.finisher_tokens < 1:
        raise EngineError(f"the finisher needs at least one token, got {config.finisher_tokens}")
    modes = [m.value for m in thinking.ThinkMode]
    if config.think not in modes:
        raise EngineError(f"unknown thinking mode {config.think!r}; choose one of {', '.join(modes)}")
