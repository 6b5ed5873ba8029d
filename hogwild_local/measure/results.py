"""The results file of an evaluation: JSON Lines, resumable, with the settings that make results comparable.

A ``header`` line per session (model, seed, sampling, commit, date, machine, native build), then one
``result`` line per (problem index, method) with every budget's answer, whether it is correct, tokens
generated and wall time. A rerun of the same command skips what is done, so a long evaluation can be stopped
at any time and continued later; results are pooled in one file only if the COMPATIBLE_KEYS settings match.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from ..engine import RunConfig
from ..engine.transcript import read_events
from ..models import sha256_file
from ..native import SamplingParams
from .errors import EvalError
from .provenance import backend_record, git_commit, machine_record, model_record

RESULTS_VERSION = 1
# settings that must match for results to be pooled in one file (the rest, e.g. threads, may change)
COMPATIBLE_KEYS = ("dataset_sha256", "model_sha256", "seed", "sampling", "layout", "finisher_tokens", "think",
                   "n_ctx", "cache_type", "check_repeats", "end_at_headers", "drop_repeats", "bar_headers")
# the value a key had before files recorded it
COMPATIBLE_DEFAULTS = {"check_repeats": False, "end_at_headers": False, "drop_repeats": False, "bar_headers": False}


def read_results(path: Path) -> tuple[list[dict], dict[tuple[int, str], dict]]:
    """(header lines, the last result line of each (index, method)); a truncated last line is skipped."""
    headers: list[dict] = []
    results: dict[tuple[int, str], dict] = {}
    if not path.exists():
        return headers, results
    for rec in read_events(path):
        if rec.get("type") == "header":
            headers.append(rec)
        elif rec.get("type") == "result":
            results[(rec["index"], rec["method"])] = rec
    return headers, results


def append_record(path: Path, record: dict) -> None:
    """Append ``record`` to the results file as one JSON line, synced to disk (a crash loses at most it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+b") as f:
        if f.tell() > 0:  # a line cut short by a crash is left alone: end it first
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                f.write(b"\n")
        f.write((json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8"))
        f.flush()
        os.fsync(f.fileno())


def make_header(dataset: str, dataset_path: Path, model_path: Path, methods: Sequence[str], budgets: Sequence[int],
                config: RunConfig, *, gpu_layers: int, command: str) -> dict:
    """The header line of a session: what ran (``command`` as typed), on what data, model, build and machine,
    with which settings (``methods``: the method names, e.g. "hogwild-2")."""
    model = model_record(model_path)
    return {
        "type": "header", "version": RESULTS_VERSION,
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "commit": git_commit(), "machine": machine_record(), "backend": backend_record(),
        "command": command,
        "dataset": dataset, "dataset_sha256": sha256_file(dataset_path),
        "model": model, "model_sha256": model["sha256"],
        "methods": list(methods), "budgets": list(budgets),
        "seed": config.sampling.seed, "sampling": asdict(config.sampling),
        "layout": config.layout, "finisher_tokens": config.answer_tokens, "think": config.think,
        "check_repeats": config.check_repeats, "end_at_headers": config.end_at_headers,
        "drop_repeats": config.drop_repeats, "bar_headers": config.bar_headers,
        "n_ctx": config.n_ctx, "cache_type": config.cache_type,
        "threads": config.threads, "gpu_layers": gpu_layers,
    }


def compatible_settings(header: dict) -> dict:
    """The settings of a header that must match, with the values older files did not record yet."""
    settings = {key: header.get(key, COMPATIBLE_DEFAULTS.get(key)) for key in COMPATIBLE_KEYS}
    if isinstance(settings["sampling"], dict):  # sampler settings added later (DRY) were at their defaults
        settings["sampling"] = {**asdict(SamplingParams()), **settings["sampling"]}
    if isinstance(settings["think"], bool):  # before the thinking modes: a flag that opened a block, or nothing,
        settings["think"] = "on" if settings["think"] else "auto"  # as auto does on the instruct models used then
    return settings


def check_compatible(first: dict, header: dict, path: Path) -> None:
    """Refuse to pool results whose settings differ from the file's first header (COMPATIBLE_KEYS)."""
    before, now = compatible_settings(first), compatible_settings(header)
    for key in COMPATIBLE_KEYS:
        if before[key] != now[key]:
            old, new = before[key], now[key]
            if isinstance(old, str) and len(old) > 16:
                old, new = old[:12] + "...", str(new)[:12] + "..."
            raise EvalError(f"{path} holds results with another {key} ({old} vs now {new}); "
                            "use another --results file, or the same settings to continue it")


def settings_label(first: dict, header: dict) -> str:
    """How a results file's settings differ from the first file's, e.g. "dry_multiplier=0.8" ("" if not)."""
    before, now = compatible_settings(first), compatible_settings(header)
    changes = []
    for key in COMPATIBLE_KEYS:
        if isinstance(now[key], dict) and isinstance(before[key], dict):
            changes += [f"{k}={v}" for k, v in now[key].items() if before[key].get(k) != v]
        elif before[key] != now[key]:
            value = now[key][:8] if key.endswith("sha256") and isinstance(now[key], str) else now[key]
            changes.append(f"{key}={value}")
    return " ".join(dict.fromkeys(changes))  # the seed is both a setting and a sampler field: name it once
