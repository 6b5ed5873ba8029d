"""`hogwild tui`: the live view (Textual, imported when the command runs: start-up stays fast)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .command import Command
from .options import (
    config_from_options,
    generation_options,
    placement,
    read_problem,
)


@click.command(cls=Command)
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
    from ..native.verdict import require_working_library
    from ..tui.app import run_tui

    if problem is not None:
        problem = read_problem(problem)
    require_working_library()  # before the screen switches: a broken library is one line, not a crashed app
    sys.exit(run_tui(opts.get("model_spec"), problem, config_from_options(opts), transcript,
                     placement=placement(opts)))
