"""Options and argument handling shared by the commands: option groups each command composes (``run`` and
``tui`` take them all, ``eval`` all but the one-run method options, ``bench`` the model, GPU, thread and cache
ones), the RunConfig they make, the model they load, and PROBLEM as typed or read from stdin."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import click

from ..engine.config import ANSWER_MODES, METHODS, AnswerMode
from ..engine.layout import MAX_WORKERS, USER_LAYOUTS
from ..engine.thinking import ThinkMode

if TYPE_CHECKING:
    from ..engine import RunConfig
    from ..native import Model

F = TypeVar("F", bound=Callable[..., object])


class ThinkChoice(click.Choice):
    """``--think``'s values. ``--think`` alone means on, but before the problem it takes the problem as its
    value (click cannot tell them apart), so the error says how to write it."""

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> str:
        try:
            return super().convert(value, param, ctx)
        except click.BadParameter:
            self.fail(f"{value!r} is not one of {', '.join(map(repr, self.choices))} (--think alone means on: "
                      "put it after the problem, or write --think on)", param, ctx)


def compose(*options: Callable[[F], F]) -> Callable[[F], F]:
    """One decorator applying ``options`` in order (the first is listed first in --help)."""
    def decorate(func: F) -> F:
        for option in reversed(options):
            func = option(func)
        return func
    return decorate


def gpu_layers_option(auto: bool = False) -> Callable[[F], F]:
    """``-ngl/--gpu-layers``, declared once. ``auto``: no default (None), which the command resolves to every
    layer (-1) where the library can offload, else 0 (``bench``: a GPU machine benchmarks its GPU)."""
    return click.option("--gpu-layers", "-ngl", type=int, default=None if auto else 0,
                        show_default="-1 if the library has GPU offload, else 0" if auto else True,
                        help="Layers to offload to the GPU (-1 = all).")


model_option = click.option("--model", "-m", "model_spec", default=None,
                            help="Manifest name (see `hogwild models list`), a .gguf path, or hf:OWNER/REPO/FILE. "
                                 "Default: qwen2.5-coder-1.5b-instruct.")
threads_option = click.option("--threads", type=click.IntRange(1), default=None,
                              help="CPU threads (default: all cores).")
cache_type_option = click.option("--cache-type", type=click.Choice(["f16", "f32", "bf16"]), default="f16",
                                 show_default=True, help="KV cache type (V must not be quantized).")

tensor_split_option = click.option(
    "--tensor-split", default=None,
    help="Split the offloaded layers over the devices, e.g. 3,1: the --rpc servers first, in order, then the "
         "local GPUs.")
rpc_option = click.option(
    "--rpc", "rpc", default=None, metavar="HOST:PORT[,...]",
    help="Offload layers to `hogwild rpc-server` processes on other machines (with -ngl N the last N layers go to "
         "the servers, the rest stay here). No authentication: trusted networks only.")

# where the model's layers go
model_options = compose(
    model_option,
    gpu_layers_option(),
    click.option("--main-gpu", type=int, default=0, show_default=True),
    tensor_split_option,
    rpc_option,
)
# one run: how many workers, which method, how long (eval runs a grid of these instead)
method_options = compose(
    click.option("--workers", "-w", type=click.IntRange(1, MAX_WORKERS), default=2, show_default=True,
                 help="How many workers share the cache."),
    click.option("--method", type=click.Choice(METHODS), default="hogwild", show_default=True,
                 help="Hogwild! or a baseline with the same budget."),
    click.option("--budget", "-b", type=click.IntRange(1), default=512, show_default=True,
                 help="Forward passes (each writes one token per worker)."),
)
answer_option = click.option(
    "--answer", type=click.Choice(ANSWER_MODES), default=AnswerMode.BOXED.value, show_default=True,
    help="The final answer: boxed (a short \\boxed{} answer, as eval grades it), text (prose written from the "
         "workers' steps once they stop) or code (one fenced code block). The rules tell the workers which.")
layout_option = click.option("--layout", type=click.Choice(USER_LAYOUTS), default="combined", show_default=True,
                             help="How workers see each other (hogwild method).")
# the sampler, the finisher and the thinking block
sampling_options = compose(
    click.option("--temperature", "-t", type=click.FloatRange(min=0), default=0.6, show_default=True,
                 help="0 = greedy."),
    click.option("--top-k", type=click.IntRange(min=0), default=40, show_default=True, help="0 = off."),
    click.option("--top-p", type=click.FloatRange(0, 1, min_open=True), default=0.95, show_default=True,
                 help="1 = off."),
    click.option("--min-p", type=click.FloatRange(0, 1), default=0.05, show_default=True, help="0 = off."),
    click.option("--repeat-penalty", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True,
                 help="1 = off."),
    click.option("--dry", "dry_multiplier", type=click.FloatRange(0), default=0.0, show_default=True,
                 help="DRY penalty strength (0.8 is usual; 0 = off): discourages repeating a run of tokens "
                      "from the text the worker sees, other workers' steps included."),
    click.option("--seed", type=int, default=0, show_default=True),
    click.option("--answer-tokens", "--finisher-tokens", "finisher_tokens", type=click.IntRange(1), default=None,
                 show_default=", ".join(f"{m.default_tokens} for {m.value}" for m in AnswerMode),
                 help="Greedy tokens for the final answer when the budget runs out."),
    click.option("--think", type=ThinkChoice([m.value for m in ThinkMode]), default=ThinkMode.AUTO.value,
                 is_flag=False, flag_value=ThinkMode.ON.value, show_default=True,
                 help="The thinking block of reasoning models, where the workers write. auto: opened for "
                      "models whose chat template or vocabulary shows they reason (QwQ, DeepSeek-R1 distills, "
                      "Qwen3), nothing for instruct models; on: always opened; off: reasoning models get an "
                      "empty, closed block and answer without thinking (Qwen3's enable_thinking=false). "
                      "--think alone means on."),
)
# the engine's optional rules against small models' habits
remedy_options = compose(
    click.option("--check-repeats", is_flag=True,
                 help="When a worker's step repeats a finished step word for word, open its next step with "
                      "the self-check question (small models tend to loop)."),
    click.option("--end-at-headers", is_flag=True,
                 help="End a step where its worker starts writing a step header itself (\"**Bob [\"), "
                      "and cut that header: only the engine opens steps."),
    click.option("--bar-headers", is_flag=True,
                 help="Workers never write \"#\" or \"**\" (such tokens, and after a \"*\" any token starting "
                      "with one, get a logit of minus infinity): section headers (\"### ...\") and step headers "
                      "(\"**Bob [2]:**\") stay the engine's."),
    click.option("--drop-repeats", is_flag=True,
                 help="Free a finished step that repeats a step its worker has seen word for word, "
                      "instead of adding it to the history."),
    click.option("--step-limit", type=click.IntRange(0), default=300, show_default=True,
                 help="A step longer than this many tokens ends at its next sentence end, so work reaches "
                      "the shared history (0 = no limit)."),
)
# the cache and the CPU
runtime_options = compose(
    click.option("--ctx", "n_ctx", type=click.IntRange(256), default=8192, show_default=True,
                 help="KV cache cells (all workers together)."),
    cache_type_option,
    threads_option,
)
# everything one run takes: `run` and `tui`
generation_options = compose(model_options, method_options, layout_option, answer_option, sampling_options,
                              remedy_options, runtime_options)


def config_from_options(opts: dict, **overrides: object) -> RunConfig:
    """RunConfig from the options a command took (RunConfig's and SamplingParams' defaults for those it has
    not, e.g. eval's method and workers), then ``overrides``. ``--method single`` with an explicit ``-w``
    above 1 is a usage error."""
    from ..engine import RunConfig
    from ..native import SamplingParams

    if opts.get("method") == "single":
        ctx = click.get_current_context(silent=True)
        source = ctx.get_parameter_source("workers") if ctx else None
        explicit = source in (click.core.ParameterSource.COMMANDLINE, click.core.ParameterSource.ENVIRONMENT)
        if opts["workers"] > 1 and explicit:
            raise click.UsageError("--method single runs one worker; leave out --workers")
        opts = {**opts, "workers": 1}  # recorded as run, not as the default of -w

    def taken(cls: type) -> dict:
        return {f.name: opts[f.name] for f in dataclasses.fields(cls) if f.name in opts}

    return RunConfig(**{**taken(RunConfig), "sampling": SamplingParams(**taken(SamplingParams)), **overrides})


def parse_tensor_split(opts: dict) -> list[float] | None:
    """--tensor-split "3,1" -> [3.0, 1.0]."""
    if not opts.get("tensor_split"):
        return None
    try:
        return [float(x) for x in opts["tensor_split"].split(",")]
    except ValueError:
        raise click.UsageError("--tensor-split takes numbers separated by commas, e.g. 3,1") from None


def placement(opts: dict) -> dict:
    """Where the model's layers go, from the model options: :class:`Model`'s keyword arguments."""
    from ..native.rpc import parse_endpoints

    return {"n_gpu_layers": opts.get("gpu_layers") or 0, "main_gpu": opts.get("main_gpu", 0),
            "tensor_split": parse_tensor_split(opts),
            "rpc": parse_endpoints(opts["rpc"]) if opts.get("rpc") else ()}


def load_model(opts: dict) -> Model:
    """Resolve and load the model named by the options (their errors are HogwildErrors: one line)."""
    from ..models import resolve_model
    from ..native import Model

    where = placement(opts)
    path = resolve_model(opts.get("model_spec"), progress=sys.stderr.isatty())
    return Model(path, **where)


def read_problem(problem: str | None) -> str:
    """PROBLEM as typed, or stdin for '-'. Text that is not UTF-8 is a usage error, never a traceback later."""
    if problem == "-":
        data = sys.stdin.buffer.read()
        try:
            problem = data.decode("utf-8")
        except UnicodeDecodeError as err:
            raise click.UsageError(f"the problem on stdin is not UTF-8 text (byte {data[err.start]:#04x} at offset "
                                   f"{err.start})") from None
    elif problem is not None:
        try:
            problem.encode("utf-8")
        except UnicodeEncodeError as err:  # argv bytes that are not UTF-8 arrive as lone surrogates
            byte = ord(problem[err.start]) - 0xDC00
            raise click.UsageError(f"PROBLEM is not UTF-8 text (byte {byte:#04x} at character {err.start})") from None
    if not problem or not problem.strip():
        raise click.UsageError("give a PROBLEM (or '-' to read it from stdin)")
    return problem
