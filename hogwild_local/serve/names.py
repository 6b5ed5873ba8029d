"""What the loaded model is called on the API: its manifest name where it is a manifest model, else its file name."""

from __future__ import annotations

from pathlib import Path

from ..models import load_manifest, model_path


def model_names(path: Path) -> tuple[str, frozenset[str], tuple[str, ...]]:
    """The loaded model's id, every name a request may use for it, and the manifest's model names."""
    manifest = load_manifest()
    entry = next((e for e in manifest if model_path(e).resolve() == path.resolve()), None)
    model_id = entry.name if entry else path.stem
    names = {model_id, path.stem, path.name, *(entry.aliases if entry else ())}
    return model_id, frozenset(names), tuple(e.name for e in manifest)
