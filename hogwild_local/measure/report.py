"""Reports as Markdown: the evaluation's accuracy tables (one results file, or several side by side) and the
benchmark's timing table (its exact text: docs/bench/*.md were written with it)."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from pathlib import Path

from .bench import BenchRow
from .errors import EvalError
from .results import read_results, settings_label
from .stats import Paired, Row, compare, summarize


def _markdown(columns: Sequence[str], text_columns: int, cells: Iterable[Sequence[object]]) -> str:
    """A Markdown table: the first ``text_columns`` columns left-aligned, the numbers right-aligned."""
    rule = ["---"] * text_columns + ["---:"] * (len(columns) - text_columns)
    return "\n".join("| " + " | ".join(map(str, line)) + " |" for line in [columns, rule, *cells])


def markdown_table(rows: Sequence[Row]) -> str:
    return _markdown(["method", "budget (passes)", "accuracy % ± s.e.", "n", "mean tokens generated",
                      "mean wall s / problem", "answered by a worker %"], 1,
                     [[r.method, r.budget, f"{r.accuracy:.1f} ± {r.stderr:.1f}", r.n, f"{r.tokens:.0f}",
                       f"{r.wall_s:.1f}", f"{r.early:.0f}"] for r in rows])


def paired_table(rows: Sequence[Paired]) -> str:
    return _markdown(["method", "vs", "budget (passes)", "difference (points) ± s.e.", "n",
                      "right only with the method", "right only with the baseline"], 2,
                     [[r.method, r.baseline, r.budget, f"{r.difference:+.1f} ± {r.stderr:.1f}", r.n, r.only_method,
                       r.only_baseline] for r in rows])


def describe_headers(headers: Sequence[dict]) -> str:
    """A few lines on where the results come from (the first session, and how many there were)."""
    if not headers:
        return "(no header line)"
    h = headers[0]
    m, mach = h.get("model", {}), h.get("machine", {})
    lines = [
        f"- model: `{m.get('name')}` ({m.get('size_bytes', 0) / 2**20:.0f} MiB, sha256 {str(m.get('sha256'))[:12]})",
        f"- dataset: `{h.get('dataset')}` (sha256 {str(h.get('dataset_sha256'))[:12]}); seed {h.get('seed')} "
        f"(+ problem index); temperature {h.get('sampling', {}).get('temperature')}",
        f"- first run: {h.get('date')}, commit {h.get('commit')}, {mach.get('cpu')} ({mach.get('cores')} cores), "
        f"threads {h.get('threads')}, load average {(mach.get('load_average') or ['?'])[0]} at the start"
        + (f", backend build {h['backend']['build']}" if (h.get("backend") or {}).get("build") else ""),
    ]
    if len(headers) > 1:
        last = headers[-1]
        lines.append(f"- {len(headers)} sessions; last: {last.get('date')}, commit {last.get('commit')}")
    return "\n".join(lines)


def report(paths: Sequence[Path], limit: int | None = None,
           only: Collection[int] | None = None) -> tuple[str, list[Row]]:
    """The Markdown report of one results file, or several side by side: the methods of each file after the
    first are named with the settings that differ from the first's (e.g. "hogwild-2 dry_multiplier=0.8"),
    or by the file's name where none differ (a re-run: "hogwild-2 rerun"), and compared problem by problem
    (see ``_pairs``). ``limit``: problems 0..limit-1; ``only``: these problem indices."""
    only = set(only) if only is not None else None
    merged: dict[tuple[int, str], dict] = {}
    order: list[str] = []
    parts: dict[str, tuple[str, str]] = {}  # name -> (method, settings label)
    described, first = [], None
    for path in paths:
        headers, results = read_results(path)
        if not results:
            raise EvalError(f"{path}: no results yet")
        first = first or (headers[0] if headers else {})
        label = settings_label(first, headers[0]) if headers and len(paths) > 1 else ""
        if path != paths[0] and not label:  # same settings: keep it apart by its name, never pool silently
            label = path.stem if path.stem != paths[0].stem else str(path)
        names = [_named(m, label) for m in (headers[0].get("methods") or [] if headers else [])]
        order += [m for m in names if m not in order]
        for (index, method), rec in results.items():
            if (limit is None or index < limit) and (only is None or index in only):
                name = _named(method, label)
                merged[(index, name)] = {**rec, "method": name}
                parts[name] = (method, label)
        described.append(f"`{path}`{f' ({label})' if label else ''}:\n{describe_headers(headers)}")
    if not merged:
        raise EvalError("no results for the chosen problems (--limit, --problems)")
    rows = summarize(merged.values(), order)
    problems = len({i for i, _ in merged})
    text = "\n".join(described) + f"\n- {problems} problems, {len(merged)} runs\n\n{markdown_table(rows)}"
    pairs = compare(merged, _pairs(list(dict.fromkeys(r.method for r in rows)), parts))
    if pairs:
        text += f"\n\nPaired, on the problems both methods ran:\n\n{paired_table(pairs)}"
    return text, rows


def _named(method: str, label: str) -> str:
    """A method's name in a report of several files: "hogwild-2", or "hogwild-2 dry_multiplier=0.8"."""
    return f"{method} {label}".strip()


def _pairs(names: list[str], parts: dict[str, tuple[str, str]]) -> list[tuple[str, str]]:
    """What to compare: every method with the first method of the same settings (e.g. hogwild-2 with
    single; a file without one, such as a re-run of hogwild-2 alone, uses the first file's), then every
    method of other settings with the same method of the first file's settings."""
    first_method = parts[names[0]][0]
    pairs = []
    for name in names:
        method, label = parts[name]
        same = [n for n in names if parts[n][1] == label]
        baseline = _named(first_method, label) if _named(first_method, label) in same else names[0]
        if name != baseline:
            pairs.append((name, baseline))
    pairs += [(name, parts[name][0]) for name in names if parts[name][1] and parts[name][0] in names]
    return pairs


def _mib(n: float) -> str:
    return f"{n / (1 << 20):.1f}"


def format_table(rows: Sequence[BenchRow], meta: dict) -> str:
    """The Markdown report: a header of facts, then one row per (W, C, method)."""
    lines = [
        "## hogwild-local bench",
        "",
        f"- machine: {meta['machine']}",
        f"- model: {meta['model']}",
        f"- settings: {meta['settings']}",
        f"- KV bytes per cell: {meta['kv_bytes_per_cell']:.0f} ({meta['kv_formula']})",
        f"- commit: {meta['commit'] or 'unknown'}, date: {meta['date']}",
        f"- command: `{meta['command']}`",
        "",
        ("ms/pass: median wall time of one decode of W tokens (one per worker), host work included; hogwild "
         "passes include moving finished steps into the history (`moves`) and the K-shift that follows. "
         "tok/s = W / median. KV: cells x bytes per cell, shared by all workers; replicated: W separate caches."),
        "",
        "| W | C | method | cells | ms/pass | mean | min | max | tok/s | hogwild/stock | KV MiB | replicated MiB"
        " | moves |",
        "|--:|--:|:--|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in sorted(rows, key=lambda r: (r.context, r.workers, r.method != "stock")):
        ratio = f"{r.ratio:.2f}" if r.ratio is not None else ""
        moves = str(r.moves) if r.method == "hogwild" else ""
        lines.append(
            f"| {r.workers} | {r.context} | {r.method} | {r.cells_used} | {r.ms_per_pass:.2f} | {r.ms_mean:.2f} | "
            f"{r.ms_min:.2f} | {r.ms_max:.2f} | {r.tokens_per_s:.1f} | {ratio} | {_mib(r.kv_bytes)} | "
            f"{_mib(r.kv_bytes_replicated)} | {moves} |"
        )
    return "\n".join(lines) + "\n"
