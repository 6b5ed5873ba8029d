"""The `hogwild` command line: run, tui, models, doctor, build-backend, bench, eval, transcript.

Every command consumes engine events only. Errors are one line plus a hint (exit 1), usage errors exit
2, Ctrl-C stops generation, still prints the final answer, and exits 130.
"""

from __future__ import annotations

import json
import signal
import sys
from dataclasses import asdict
from pathlib import Path

import click

from .layout import WORKER_NAMES
from .thinking import SIGN_TEXT, Sign, ThinkMode


class ThinkChoice(click.Choice):
    """``--think``'s values. ``--think`` alone means on, but before the problem it takes the problem as its
    value (click cannot tell them apart), so the error says how to write it."""

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> str:
        try:
            return super().convert(value, param, ctx)
        except click.BadParameter:
            self.fail(f"{value!r} is not one of {', '.join(map(repr, self.choices))} (--think alone means on: "
                      "put it after the problem, or write --think on)", param, ctx)


COLOURS = ("cyan", "magenta", "yellow", "green", "blue", "red", "bright_cyan", "bright_magenta")

def generation_options(func):
    """The options shared by `run`, `tui` and `eval`: model, workers, method, sampling, runtime."""
    options = [
        click.option("--model", "-m", "model_spec", default=None,
                     help="Manifest name (see `hogwild models list`), a .gguf path, or hf:OWNER/REPO/FILE. "
                          "Default: qwen2.5-coder-1.5b-instruct."),
        click.option("--workers", "-w", type=click.IntRange(1, len(WORKER_NAMES)), default=2, show_default=True,
                     help="How many workers share the cache."),
        click.option("--method", type=click.Choice(["hogwild", "single", "independent", "self-consistency"]),
                     default="hogwild", show_default=True, help="Hogwild! or a baseline with the same budget."),
        click.option("--layout", type=click.Choice(["combined", "contiguous", "stepwise"]), default="combined",
                     show_default=True, help="How workers see each other (hogwild method)."),
        click.option("--budget", "-b", type=click.IntRange(1), default=512, show_default=True,
                     help="Forward passes (each writes one token per worker)."),
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
        click.option("--finisher-tokens", type=click.IntRange(1), default=16, show_default=True,
                     help="Greedy tokens for the final answer when the budget runs out."),
        click.option("--think", type=ThinkChoice([m.value for m in ThinkMode]), default=ThinkMode.AUTO.value,
                     is_flag=False, flag_value=ThinkMode.ON.value, show_default=True,
                     help="The thinking block of reasoning models, where the workers write. auto: opened for "
                          "models whose chat template or vocabulary shows they reason (QwQ, DeepSeek-R1 distills, "
                          "Qwen3), nothing for instruct models; on: always opened; off: reasoning models get an "
                          "empty, closed block and answer without thinking (Qwen3's enable_thinking=false). "
                          "--think alone means on."),
        click.option("--check-repeats", is_flag=True,
                     help="When a worker's step repeats a finished step word for word, open its next step with "
                          "the self-check question (small models tend to loop)."),
        click.option("--end-at-headers", is_flag=True,
                     help="End a step where its worker starts writing a step header itself (\"**Bob [\"), "
                          "and cut that header: only the engine opens steps."),
        click.option("--drop-repeats", is_flag=True,
                     help="Free a finished step that repeats a step its worker has seen word for word, "
                          "instead of adding it to the history."),
        click.option("--step-limit", type=click.IntRange(0), default=300, show_default=True,
                     help="A step longer than this many tokens ends at its next sentence end, so work reaches "
                          "the shared history (0 = no limit)."),
        click.option("--ctx", "n_ctx", type=click.IntRange(256), default=8192, show_default=True,
                     help="KV cache cells (all workers together)."),
        click.option("--cache-type", type=click.Choice(["f16", "f32", "bf16"]), default="f16", show_default=True,
                     help="KV cache type (V must not be quantized)."),
        click.option("--threads", type=click.IntRange(1), default=None, help="CPU threads (default: all cores)."),
        click.option("--gpu-layers", "-ngl", type=int, default=0, show_default=True,
                     help="Layers to offload to the GPU (-1 = all)."),
        click.option("--main-gpu", type=int, default=0, show_default=True),
        click.option("--tensor-split", default=None, help="Split over several GPUs, e.g. 3,1."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def make_config(opts: dict):
    """RunConfig from the shared options (`--method single` with an explicit `-w` above 1 is a usage error)."""
    from .backend import SamplingParams
    from .engine import RunConfig

    if opts["method"] == "single":
        ctx = click.get_current_context(silent=True)
        source = ctx.get_parameter_source("workers") if ctx else None
        explicit = source in (click.core.ParameterSource.COMMANDLINE, click.core.ParameterSource.ENVIRONMENT)
        if opts["workers"] > 1 and explicit:
            raise click.UsageError("--method single runs one worker; leave out --workers")
        opts = {**opts, "workers": 1}  # recorded as run, not as the default of -w

    sampling = SamplingParams(temperature=opts["temperature"], top_k=opts["top_k"], top_p=opts["top_p"],
                              min_p=opts["min_p"], repeat_penalty=opts["repeat_penalty"],
                              dry_multiplier=opts["dry_multiplier"], seed=opts["seed"])
    return RunConfig(method=opts["method"], workers=opts["workers"], layout=opts["layout"], budget=opts["budget"],
                     sampling=sampling, finisher_tokens=opts["finisher_tokens"], think=opts["think"],
                     check_repeats=opts.get("check_repeats", False),
                     end_at_headers=opts.get("end_at_headers", False), drop_repeats=opts.get("drop_repeats", False),
                     step_limit=opts["step_limit"],
                     n_ctx=opts["n_ctx"], cache_type=opts["cache_type"], threads=opts["threads"])


def parse_tensor_split(opts: dict) -> list[float] | None:
    """--tensor-split "3,1" -> [3.0, 1.0]."""
    if not opts.get("tensor_split"):
        return None
    try:
        return [float(x) for x in opts["tensor_split"].split(",")]
    except ValueError:
        raise click.UsageError("--tensor-split takes numbers separated by commas, e.g. 3,1") from None


def load_model(opts: dict):
    """Resolve and load the model named by the options, with one-line errors."""
    from .backend import BackendError, Model
    from .models import ModelError, resolve_model

    split = parse_tensor_split(opts)
    try:
        path = resolve_model(opts.get("model_spec"), progress=sys.stderr.isatty())
        return Model(path, n_gpu_layers=opts.get("gpu_layers", 0), main_gpu=opts.get("main_gpu", 0), tensor_split=split)
    except (ModelError, BackendError) as err:
        raise click.ClickException(str(err)) from None


class Printer:
    """Streams worker text to the terminal a line at a time, each line labelled with its worker in colour."""

    def __init__(self, colour: bool) -> None:
        self.colour = colour
        self.buffers: dict[str, str] = {}

    def label(self, name: str) -> str:
        index = WORKER_NAMES.index(name) if name in WORKER_NAMES else len(COLOURS) - 1
        text = f"{name:>6} | "
        return click.style(text, fg=COLOURS[index % len(COLOURS)], bold=True) if self.colour else text

    def token(self, worker: str, text: str) -> None:
        buffer = self.buffers.get(worker, "") + text
        *lines, rest = buffer.split("\n")
        for line in lines:
            if line.strip():
                click.echo(self.label(worker) + line)
        self.buffers[worker] = rest

    def cut(self, worker: str, text: str) -> None:
        """The engine cut the worker's step to ``text``: forget the cut part of the line not shown yet
        ("" = the whole step was dropped as a repeat: say so)."""
        kept_line = text.rstrip("\n").rsplit("\n", 1)[-1]
        buffer = self.buffers.get(worker, "")
        self.buffers[worker] = kept_line if kept_line and buffer.startswith(kept_line) else ""
        if not text:
            note = "(the step above repeated an earlier one word for word: dropped)"
            click.echo(self.label(worker) + (click.style(note, dim=True) if self.colour else note))

    def flush(self, worker: str | None = None) -> None:
        for name in [worker] if worker else list(self.buffers):
            if self.buffers.get(name, "").strip():
                click.echo(self.label(name) + self.buffers[name])
            self.buffers[name] = ""


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="hogwild-local")
def main() -> None:
    """Hogwild! Inference on local GGUF models: several workers write at once over ONE shared KV cache,
    each seeing the others' tokens as they are written.

    \b
    First steps:
      hogwild build-backend             # build llama.cpp with the Hogwild patch (once)
      hogwild run "What is 17 * 23?"    # 2 workers on the default model
      hogwild tui                       # watch the workers live
      hogwild doctor                    # check the set-up
    """


@main.command()
@click.argument("problem", required=False)
@generation_options
@click.option("--transcript", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Append every event to this JSONL file as the run goes.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line (token, step, stats, answer).")
@click.option("--no-color", is_flag=True, help="Plain text output.")
def run(problem: str | None, transcript: Path | None, as_json: bool, no_color: bool, **opts) -> None:
    """Solve PROBLEM with several workers sharing one cache ('-' reads it from stdin).

    \b
    Examples:
      hogwild run "A train leaves at 3pm at 60 km/h ..." -w 2
      hogwild run - < problem.txt --budget 256 --transcript run.jsonl
      hogwild run "2+2?" -m smollm2-135m --json | jq -c 'select(.type=="answer")'
      hogwild run "..." --method single         # the one-worker baseline
      hogwild run "..." -ngl -1 --ctx 16384       # all layers on the GPU
    """
    from .backend import BackendError
    from .engine import EngineError, Generation
    from .events import END_REASONS, to_dict
    from .transcript import TranscriptError, TranscriptWriter

    problem = read_problem(problem)
    config = make_config(opts)
    try:  # before the model loads: an unwritable path, or one another run holds, fails at once
        writer = TranscriptWriter(transcript, {"problem": problem}) if transcript else None
    except TranscriptError as err:
        raise click.ClickException(str(err)) from None
    try:
        model = load_model(opts)
    except KeyboardInterrupt:  # Ctrl-C while a model downloads or loads: nothing produced yet
        sys.exit(130)
    printer = Printer(colour=not no_color and sys.stdout.isatty())
    stopped_by: int | None = None  # the first SIGINT or SIGTERM: stop after this pass, still answer
    transcript_lost = False
    speed = 0.0
    try:
        gen = Generation(model, problem, config)

        def on_stop_signal(signum: int, frame: object) -> None:
            # raising inside the generator would kill it, so only the second signal raises
            nonlocal stopped_by
            if stopped_by is not None:
                raise KeyboardInterrupt
            stopped_by = signum
            gen.stop()
            click.echo("\n(stopping: writing the final answer; Ctrl-C again to quit now)", err=True)

        previous = {sig: signal.signal(sig, on_stop_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            for event in gen.events():
                if writer:
                    try:
                        writer.write(event)
                    except TranscriptError as err:  # said once (the writer has closed itself); the answer matters more
                        click.echo(f"Error: {err}", err=True)
                        writer, transcript_lost = None, True
                if as_json:
                    click.echo(json.dumps(to_dict(event), ensure_ascii=False))
                    sys.stdout.flush()  # one line per event, as it happens, also into a pipe
                    continue
                if event.type == "start":
                    if event.cells_total != config.n_ctx:
                        click.echo(f"(the cache holds {event.cells_total} cells: llama.cpp rounds --ctx "
                                   f"{config.n_ctx} up)", err=True)
                    note = thinking_note(event.thinking)
                    if note:
                        click.echo(note, err=True)
                elif event.type == "token":
                    printer.token(event.worker, event.text)
                    sys.stdout.flush()
                elif event.type == "step":
                    printer.flush(event.worker)
                elif event.type == "cut":
                    printer.cut(event.worker, event.text)
                elif event.type == "stats":
                    speed = event.tokens_per_s
                elif event.type == "answer":
                    printer.flush()
                    answer = "no answer" if event.answer is None else event.answer
                    click.echo(f"\n\nFinal answer: {click.style(answer, bold=True) if printer.colour else answer}")
                    click.echo(f"({END_REASONS.get(event.reason, event.reason)}; {event.passes} passes, "
                               f"{event.tokens_generated} tokens, {speed:.1f} tok/s)", err=True)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    except (EngineError, BackendError) as err:
        raise click.ClickException(str(err)) from None
    except KeyboardInterrupt:
        stopped_by = stopped_by or signal.SIGINT
    finally:
        if writer:
            writer.close()
    if stopped_by is not None:
        sys.exit(128 + stopped_by)  # 130 for Ctrl-C, 143 for SIGTERM, as a shell reports a killed command
    if transcript_lost:
        sys.exit(1)


def thinking_note(start: dict) -> str | None:
    """One line on the thinking block the prompt ends with (a start event's ``thinking``), None if there is none."""
    if start.get("block") == "open":
        why = "; ".join(SIGN_TEXT[Sign(sign)] for sign in start.get("signs", ())) or "asked for with --think on"
        return f"(thinking: the prompt opens a thinking block for the workers: {why}; --think off skips it)"
    if start.get("block") == "closed":
        return ("(thinking off: the prompt ends with an empty thinking block, so the model answers without "
                "thinking; --think auto lets it think)")
    return None


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


@main.command()
@click.argument("problem", required=False)
@generation_options
@click.option("--transcript", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Save the run here (also with the w key).")
def tui(problem: str | None, transcript: Path | None, **opts) -> None:
    """Open the live view: one pane per worker, the shared history, stats, and controls.

    \b
    Keys: s start, p pause, x stop, n new problem, o settings, w save, v view as worker, i inject a hint.
    Example:  hogwild tui -m smollm2-135m -w 3
    """
    from .library import LibraryError, require_working_library
    from .tui.app import run_tui

    if problem is not None:
        problem = read_problem(problem)
    try:
        require_working_library()  # before the screen switches: a broken library is one line, not a crashed app
    except LibraryError as err:
        raise click.ClickException(str(err)) from None
    sys.exit(run_tui(opts.get("model_spec"), problem, make_config(opts), transcript, gpu_layers=opts["gpu_layers"],
                     main_gpu=opts["main_gpu"], tensor_split=parse_tensor_split(opts)))


@main.command()
@click.option("--model", "-m", "model_spec", default=None, help="Also load this model and check it.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable report.")
def doctor(model_spec: str | None, as_json: bool) -> None:
    """Check the set-up: the patched library and its self-test on this CPU, its backend (cpu/cuda/metal), GPU
    offload, and a model.

    \b
    Example:  hogwild doctor -m smollm2-135m
    """
    from .backend import BackendError, Model, library_info
    from .build_backend import backend_status
    from .engine import EngineError, check_model
    from .library import failure_message, installed_verdict
    from .models import ModelError, resolve_model
    from .thinking import for_model

    tested = installed_verdict(refresh=True)  # in a child process: a library that crashes cannot take doctor along
    report: dict = {"self_test": None if tested is None else {"fingerprint": tested[0], **asdict(tested[1])}}
    if tested is not None and not tested[1].ok:
        report["library"] = {"ok": False, "error": failure_message(tested[1])}
        report["build"] = {}
    else:
        report["library"], report["build"] = library_info(), backend_status()
    ok = report["library"].get("ok", False)
    if model_spec and ok:
        try:
            with Model(resolve_model(model_spec, progress=False)) as model:
                check_model(model)
                report["model"] = {"ok": True, "path": str(model.path), "architecture": model.info.architecture,
                                   "params": model.info.n_params, "thinking": for_model(model).describe()}
        except (ModelError, BackendError, EngineError) as err:
            report["model"] = {"ok": False, "error": str(err)}
            ok = False
    if as_json:
        click.echo(json.dumps(report, indent=2, default=str))
    else:
        lib = report["library"]
        if lib.get("ok"):
            click.echo(f"library   ok: llama-cpp-python {lib['version']} with the Hogwild patch")
            click.echo(f"          {lib['library']}")
            click.echo(f"GPU       {'offload supported' if lib['gpu_offload'] else 'CPU only'}")
        else:
            click.echo(f"library   NOT OK: {lib['error']}")
        if tested is not None:
            verdict = tested[1]
            click.echo(f"self-test {'ok' if verdict.ok else 'FAILED'}: {verdict.detail} ({verdict.seconds:.1f} s)")
        build = report["build"]
        if build:
            click.echo(f"backend   {build.get('backend', '?')}  (build key {str(build.get('build_key', '-'))[:16]})")
        if "model" in report:
            m = report["model"]
            click.echo(f"model     {'ok: ' + m['architecture'] + ' ' + m['path'] if m['ok'] else 'NOT OK: ' + m['error']}")
            if m["ok"]:
                click.echo(f"          {m['thinking']} (--think auto follows this)")
    sys.exit(0 if ok else 1)


@main.group()
def transcript() -> None:
    """Read transcripts written by `hogwild run --transcript`."""


@transcript.command("show")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def transcript_show(path: Path) -> None:
    """Print a transcript as Markdown.  Example:  hogwild transcript show run.jsonl > run.md"""
    from .transcript import NotATranscript, render_markdown

    try:
        click.echo(render_markdown(path))
    except NotATranscript as err:
        raise click.ClickException(str(err)) from None


def _attach_optional_commands() -> None:
    """Commands that live in their own modules."""
    from .build_backend import build_backend_command
    from .models import models_group

    main.add_command(models_group)
    main.add_command(build_backend_command)
    try:
        from .bench import bench_command

        main.add_command(bench_command)
    except ImportError:
        pass
    try:
        from .evaluate import eval_command

        main.add_command(eval_command)
    except ImportError:
        pass


_attach_optional_commands()
