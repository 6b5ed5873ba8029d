"""`hogwild run`: solve one problem with several workers, streaming their text (or JSON events) as it is written."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import click

from .command import Command
from .options import config_from_options, generation_options, load_model, read_problem
from .printer import Printer, TextSink, json_sink


@click.command(cls=Command)
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
    from ..engine import Generation
    from ..engine.driver import TranscriptSink, drive
    from ..engine.transcript import TranscriptWriter

    problem = read_problem(problem)
    config = config_from_options(opts)
    # before the model loads: an unwritable path, or one another run holds, fails at once
    record = TranscriptSink(TranscriptWriter(transcript, {"problem": problem}),
                            on_error=lambda err: click.echo(f"Error: {err}", err=True)) if transcript else None
    try:
        model = load_model(opts)
    except KeyboardInterrupt:  # Ctrl-C while a model downloads or loads: nothing produced yet
        sys.exit(130)
    output = json_sink if as_json else TextSink(Printer(colour=not no_color and sys.stdout.isatty()), config.n_ctx)
    stopped_by: int | None = None  # the first SIGINT or SIGTERM: stop after this pass, still answer
    try:
        with Generation(model, problem, config) as gen:
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
                drive(gen, [record, output] if record else [output])
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)
    except KeyboardInterrupt:
        stopped_by = stopped_by or signal.SIGINT
    finally:
        if record:
            record.close()
    if stopped_by is not None:
        sys.exit(128 + stopped_by)  # 130 for Ctrl-C, 143 for SIGTERM, as a shell reports a killed command
    if record and record.lost:  # said when it happened; the answer was still printed
        sys.exit(1)
