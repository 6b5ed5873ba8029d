"""`hogwild transcript`: read the JSONL transcripts that `hogwild run --transcript` writes."""

from __future__ import annotations

from pathlib import Path

import click

from .command import Group


@click.group(cls=Group)
def transcript() -> None:
    """Read transcripts written by `hogwild run --transcript`.

    \b
    Example:
      hogwild transcript show run.jsonl > run.md
    """


@transcript.command("show")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def transcript_show(path: Path) -> None:
    """Print a transcript as Markdown.

    \b
    Example:
      hogwild transcript show run.jsonl > run.md
    """
    from ..engine.transcript import render_markdown

    click.echo(render_markdown(path))
