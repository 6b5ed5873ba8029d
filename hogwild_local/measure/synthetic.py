"""Synthetic models as the benchmark uses them: written and quantized once, then cached in the models folder.

The writer and the quantizer are ``native.synthetic``'s; this module only adds where the files are kept
(``models.models_dir()``, which the native layer must not know about).
"""

from __future__ import annotations

from pathlib import Path

from ..models import models_dir
from ..native import BackendError
from ..native.synthetic import SHAPES, Log, quantize_model, write_synthetic_model


def synthetic_model(shape_name: str, *, layers: int | None = None, quant: str = "Q4_K_M",
                    quantize_bin: str | None = None, out_dir: str | Path | None = None,
                    threads: int | None = None, log: Log | None = None) -> Path:
    """A cached synthetic GGUF of ``shape_name`` (a key of ``native.synthetic.SHAPES``), written and quantized
    on first use under ``out_dir`` (default: ``synthetic/`` in the models folder); quant "f16" keeps the f16 file."""
    out_dir = Path(out_dir) if out_dir is not None else models_dir() / "synthetic"
    if shape_name not in SHAPES:
        raise BackendError(f"unknown synthetic shape {shape_name!r}; choose one of {', '.join(SHAPES)}")
    n_layer = layers or SHAPES[shape_name].n_layer
    stem = f"synthetic-{shape_name}-{n_layer}l"
    final = out_dir / f"{stem}-{quant.lower()}.gguf"
    if final.is_file():
        return final
    f16 = out_dir / f"{stem}-f16.gguf"
    if not f16.is_file():
        if log:
            log(f"writing {f16} (random f16 weights)")
        tmp = f16.with_suffix(".tmp")
        write_synthetic_model(tmp, shape_name, layers=layers)
        tmp.replace(f16)
    if quant.lower() == "f16":
        return f16
    if log:
        log(f"quantizing to {quant.upper()}")
    tmp = final.with_suffix(".tmp")
    how = quantize_model(f16, tmp, quant, quantize_bin=quantize_bin, threads=threads)
    tmp.replace(final)
    f16.unlink()
    if log:
        log(f"quantized with {how}: {final}")
    return final
