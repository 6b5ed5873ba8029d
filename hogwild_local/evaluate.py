"""`hogwild eval`: accuracy of Hogwild! and its baselines on GSM8K-style problems at several budgets.

One run per (problem, method) at the largest budget; the finisher is also asked at every smaller budget
during that run (``RunConfig.snapshots``). When a worker writes a \\boxed{} answer in a finished step the
run stops there and that answer holds for every later budget (for ``hogwild`` and ``single``; the
``independent`` and ``self-consistency`` baselines always spend their budget unless every worker stops).

The results file is JSON Lines: a ``header`` line per session (model, seed, sampling, commit, date,
machine), then one ``result`` line per (problem index, method) with every budget's answer, whether it is
correct, tokens generated and wall time. A rerun of the same command skips what is done, so a long
evaluation can be stopped at any time and continued later. ``hogwild eval --report RESULTS.jsonl`` prints
the table again without running anything; ``--plot PATH.png`` draws accuracy against budget.

Wall time at a budget b is what a run that stopped at b would have taken: the run's elapsed time at pass
b, less the time the finisher spent answering at the smaller snapshot budgets.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
import platform
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import click

from .engine.prompts import normalize_number
from .engine.transcript import read_events

RESULTS_VERSION = 1
METHOD_NAMES = ("single", "hogwild", "independent", "self-consistency")
DEFAULT_METHODS = "single,hogwild-2,independent-2"
DEFAULT_BUDGETS = "128,256,512"
GSM8K_REPO, GSM8K_CONFIG = "openai/gsm8k", "main"
# settings that must match for results to be pooled in one file (the rest, e.g. threads, may change)
COMPATIBLE_KEYS = ("dataset_sha256", "model_sha256", "seed", "sampling", "layout", "finisher_tokens", "think",
                   "n_ctx", "cache_type", "check_repeats", "end_at_headers", "drop_repeats")
# the value a key had before files recorded it
COMPATIBLE_DEFAULTS = {"check_repeats": False, "end_at_headers": False, "drop_repeats": False}


class EvalError(click.ClickException):
    """A one-line user-facing error."""


# --------------------------------------------------------------------------------------------------
# methods, budgets, problems, scoring


@dataclass(frozen=True)
class MethodSpec:
    """A method as written on the command line: ``hogwild-3`` is the hogwild method with 3 workers."""

    name: str
    method: str
    workers: int


def parse_methods(text: str, default_workers: int = 2) -> list[MethodSpec]:
    """``single,hogwild-2,independent-2`` -> specs; ``hogwild`` alone takes ``default_workers``."""
    specs: list[MethodSpec] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        match = re.fullmatch(r"([a-z-]+?)(?:-(\d+))?", item)
        if not match or match.group(1) not in METHOD_NAMES:
            raise click.BadParameter(f"{item!r}: use METHOD or METHOD-WORKERS with METHOD one of "
                                     f"{', '.join(METHOD_NAMES)} (e.g. hogwild-2)", param_hint="--methods")
        method = match.group(1)
        workers = int(match.group(2)) if match.group(2) else (1 if method == "single" else default_workers)
        if method == "single" and workers != 1:
            raise click.BadParameter(f"{item!r}: single has one worker", param_hint="--methods")
        if not 1 <= workers <= 8:
            raise click.BadParameter(f"{item!r}: 1 to 8 workers", param_hint="--methods")
        name = "single" if method == "single" else f"{method}-{workers}"
        if name not in (s.name for s in specs):
            specs.append(MethodSpec(name, method, workers))
    if not specs:
        raise click.BadParameter("name at least one method", param_hint="--methods")
    return specs


def parse_budgets(text: str) -> tuple[int, ...]:
    """``128,256,512`` -> (128, 256, 512), sorted, without repeats."""
    try:
        budgets = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise click.BadParameter(f"{text!r}: positive integers separated by commas", param_hint="--budgets") from None
    if not budgets or budgets[0] < 1:
        raise click.BadParameter(f"{text!r}: positive integers separated by commas", param_hint="--budgets")
    return tuple(budgets)


def parse_problems(text: str) -> list[int]:
    """``155-199,0-2`` -> [155, ..., 199, 0, 1, 2]: 0-based problem indices, ranges inclusive, in the order
    given, without repeats. Picks problems to (re-)run or to report without editing the data file, so that
    each keeps its index and therefore its seed."""
    indices: dict[int, None] = {}
    for part in text.split(","):
        match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not match or int(match[2] or match[1]) < int(match[1]):
            raise click.BadParameter(f"{text!r}: indices or ranges like 0-30,155-199", param_hint="--problems")
        indices.update(dict.fromkeys(range(int(match[1]), int(match[2] or match[1]) + 1)))
    return list(indices)


@dataclass(frozen=True)
class Problem:
    index: int
    question: str
    reference: str


def reference_answer(solution: str) -> str:
    """The reference answer of a GSM8K solution: the text after the last ``#### ``."""
    if "####" not in solution:
        raise ValueError("no '####' line in the answer")
    return solution.rsplit("####", 1)[1].strip()


def is_correct(answer: str | None, reference: str) -> bool:
    """Numeric comparison after normalize_number ("\\boxed{1000}" is right for "#### 1,000")."""
    if answer is None:
        return False
    got = normalize_number(answer)
    return got is not None and got != "" and got == normalize_number(reference)


def load_problems(path: Path) -> list[Problem]:
    """Problems of a GSM8K-format JSONL file (``question``, ``answer`` ending with ``#### REFERENCE``)."""
    problems: list[Problem] = []
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise EvalError(f"cannot read {path}: {err.strerror or err}") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            problems.append(Problem(len(problems), str(item["question"]), reference_answer(str(item["answer"]))))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
            why = f"missing field {err}" if isinstance(err, KeyError) else str(err).splitlines()[0]
            raise EvalError(f"{path}:{number}: not a GSM8K line ({why}); each line needs "
                            "'question' and 'answer' ending with '#### REFERENCE'") from None
    if not problems:
        raise EvalError(f"{path}: no problems")
    return problems


def fetch_gsm8k() -> Path:
    """The public GSM8K test split (openai/gsm8k, main/test) from the Hugging Face Hub, as a local JSONL file."""
    try:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.utils import logging as hub_logging
    except ImportError:
        raise EvalError("--dataset gsm8k needs huggingface_hub (pip install huggingface_hub); "
                        "or pass a GSM8K JSONL file") from None
    hub_logging.set_verbosity_error()  # its retry warnings would bury the one-line error below
    try:
        parquet = Path(hf_hub_download(GSM8K_REPO, f"{GSM8K_CONFIG}/test-00000-of-00001.parquet", repo_type="dataset"))
    except Exception as err:  # offline, proxy, 404...: one line
        first = (str(err).strip().splitlines() or [""])[0]
        first = first if len(first) <= 120 else first[:120].rsplit(" ", 1)[0] + " ..."
        raise EvalError(f"cannot fetch GSM8K from the Hugging Face Hub ({type(err).__name__}: {first}); "
                        "without a network, pass a GSM8K JSONL file instead: hogwild eval test.jsonl") from None
    out = parquet.with_suffix(".jsonl")
    if not out.exists():
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise EvalError(f"reading {parquet.name} needs pyarrow (pip install pyarrow); "
                            "or pass a GSM8K JSONL file") from None
        rows = pq.read_table(parquet, columns=["question", "answer"]).to_pylist()
        tmp = out.with_suffix(".jsonl.tmp")
        tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        tmp.replace(out)
    return out


# --------------------------------------------------------------------------------------------------
# running one problem


class _SnapshotClock:
    """A sink (``engine.driver.drive``): each snapshot event with the run's time at it, less the time spent
    answering at the snapshots before (a run that stopped at that budget would not have spent it)."""

    def __init__(self) -> None:
        self.snapshots: dict[int, tuple] = {}
        self.finisher_time = 0.0
        self._stats_at = 0.0

    def __call__(self, event) -> None:
        if event.type == "stats":
            self._stats_at = time.perf_counter()
        elif event.type == "snapshot":
            self.snapshots[event.budget] = (event, event.elapsed_s - self.finisher_time)
            self.finisher_time += time.perf_counter() - self._stats_at


def run_problem(model, problem: Problem, spec: MethodSpec, base_config, budgets: Sequence[int],
                transcript: Path | None = None) -> dict:
    """One run of ``spec`` on ``problem`` at the largest budget, with the finisher asked at the others.

    Returns the result record (see the module docstring).
    """
    from dataclasses import replace

    from .engine import Generation
    from .engine.driver import TranscriptSink, drive
    from .engine.transcript import TranscriptWriter

    sampling = replace(base_config.sampling, seed=base_config.sampling.seed + problem.index)
    config = replace(base_config, method=spec.method, workers=spec.workers, budget=max(budgets),
                     snapshots=tuple(b for b in budgets if b < max(budgets)), sampling=sampling)
    record = None
    if transcript is not None:
        transcript.unlink(missing_ok=True)  # a run cut short earlier is redone from scratch
        record = TranscriptSink(TranscriptWriter(transcript, {"problem": problem.question, "reference": problem.reference,
                                                              "index": problem.index, "method": spec.name}))
    clock = _SnapshotClock()
    with Generation(model, problem.question, config) as gen:
        try:
            final = drive(gen, [record, clock] if record else [clock])
        finally:
            if record:
                record.close()
    snapshots, finisher_time = clock.snapshots, clock.finisher_time
    assert final is not None
    per_budget = {}
    for b in budgets:
        if b in snapshots:
            snap, wall = snapshots[b]
            answer, tokens, source = snap.answer, snap.tokens_generated, snap.reason
        else:  # the largest budget, or the run ended before b: its final answer holds
            answer, tokens, wall = final.answer, final.tokens_generated, final.elapsed_s - finisher_time
            source = "answer" if final.reason == "answer" else ("vote" if final.votes else "finisher")
        per_budget[str(b)] = {"answer": answer, "correct": is_correct(answer, problem.reference),
                              "tokens": tokens, "wall_s": round(wall, 3), "source": source}
    return {
        "type": "result", "index": problem.index, "method": spec.name, "reference": problem.reference,
        "question_sha1": hashlib.sha1(problem.question.encode()).hexdigest()[:12],
        "budgets": per_budget,
        "final": {"answer": final.answer, "reason": final.reason, "passes": final.passes,
                  "tokens": final.tokens_generated, "elapsed_s": round(final.elapsed_s, 3), "votes": final.votes},
    }


# --------------------------------------------------------------------------------------------------
# the results file


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


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


def model_record(path: Path) -> dict:
    """Path, size and sha256 of the model file (from the manifest when it is a manifest model, else hashed)."""
    from .models import installed, load_manifest

    path = Path(path)
    size = path.stat().st_size
    sha = None
    try:
        for entry in load_manifest():
            found = installed(entry)
            if found is not None and found.resolve() == path.resolve():
                sha = entry.sha256
                break
    except Exception:  # a broken manifest must not stop an evaluation: hash the file instead
        sha = None
    return {"path": str(path), "name": path.name, "size_bytes": size, "sha256": sha or _sha256(path)}


def git_commit() -> str | None:
    """``git rev-parse --short HEAD`` of the checkout this package runs from (``-dirty`` if modified)."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                                timeout=10)
        if commit.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10)
        return commit.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def machine_record() -> dict:
    """Where the numbers come from: CPU, cores, memory, OS, Python."""
    cpu = platform.processor() or platform.machine()
    memory = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory = f"{int(line.split()[1]) / 2**20:.1f} GiB"
                break
    except OSError:
        pass
    try:
        load = [round(x, 2) for x in os.getloadavg()]  # other jobs on the machine slow the wall times
    except OSError:
        load = None
    env = {k: os.environ[k] for k in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "LLAMA_CPP_LIB_PATH") if k in os.environ}
    return {"cpu": cpu, "cores": os.cpu_count(), "memory": memory, "os": platform.platform(),
            "python": platform.python_version(), "hostname": platform.node(), "load_average": load, "env": env}


def backend_record() -> dict:
    """Which native build ran.  Sampled text depends on it: another build (another CPU's SIMD kernels
    under a native build) rounds floats differently, and one changed token changes the rest of a run."""
    from .native.install import installed_build_info
    from .native.library import library_info

    info, build = library_info(), installed_build_info() or {}
    return {"version": info.get("version"), "build": build.get("key"), "cmake_args": build.get("cmake_args"),
            "cpu": build.get("cpu"), "system_info": info.get("system_info")}


def make_header(dataset: str, dataset_path: Path, model_path: Path, specs: Sequence[MethodSpec],
                budgets: Sequence[int], config, opts: dict) -> dict:
    from dataclasses import asdict

    argv = sys.argv[sys.argv.index("eval") + 1:] if "eval" in sys.argv else sys.argv[1:]
    model = model_record(model_path)
    return {
        "type": "header", "version": RESULTS_VERSION,
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "commit": git_commit(), "machine": machine_record(), "backend": backend_record(),
        "command": shlex.join(["hogwild", "eval", *argv]),
        "dataset": dataset, "dataset_sha256": _sha256(dataset_path),
        "model": model, "model_sha256": model["sha256"],
        "methods": [s.name for s in specs], "budgets": list(budgets),
        "seed": config.sampling.seed, "sampling": asdict(config.sampling),
        "layout": config.layout, "finisher_tokens": config.finisher_tokens, "think": config.think,
        "check_repeats": config.check_repeats, "end_at_headers": config.end_at_headers,
        "drop_repeats": config.drop_repeats, "n_ctx": config.n_ctx, "cache_type": config.cache_type,
        "threads": config.threads, "gpu_layers": opts.get("gpu_layers", 0),
    }


def _settings(header: dict) -> dict:
    """The settings of a header that must match, with the values older files did not record yet."""
    from dataclasses import asdict

    from .native import SamplingParams

    settings = {key: header.get(key, COMPATIBLE_DEFAULTS.get(key)) for key in COMPATIBLE_KEYS}
    if isinstance(settings["sampling"], dict):  # sampler settings added later (DRY) were at their defaults
        settings["sampling"] = {**asdict(SamplingParams()), **settings["sampling"]}
    if isinstance(settings["think"], bool):  # before the thinking modes: a flag that opened a block, or nothing,
        settings["think"] = "on" if settings["think"] else "auto"  # as auto does on the instruct models used then
    return settings


def check_compatible(first: dict, header: dict, path: Path) -> None:
    """Refuse to pool results whose settings differ from the file's first header (COMPATIBLE_KEYS)."""
    before, now = _settings(first), _settings(header)
    for key in COMPATIBLE_KEYS:
        if before[key] != now[key]:
            old, new = before[key], now[key]
            if isinstance(old, str) and len(old) > 16:
                old, new = old[:12] + "...", str(new)[:12] + "..."
            raise EvalError(f"{path} holds results with another {key} ({old} vs now {new}); "
                            "use another --results file, or the same settings to continue it")


# --------------------------------------------------------------------------------------------------
# the report


@dataclass(frozen=True)
class Row:
    method: str
    budget: int
    n: int
    accuracy: float  # percent
    stderr: float  # percent: sqrt(p(1-p)/n)
    tokens: float
    wall_s: float
    early: float  # percent of runs whose answer came from a worker's \boxed{} by this budget


def summarize(results: Iterable[dict], methods: Sequence[str] | None = None) -> list[Row]:
    """One row per (method, budget), methods in the given (else first-seen) order, budgets ascending."""
    cells: dict[tuple[str, int], list[dict]] = {}
    order: list[str] = list(methods or [])
    for rec in results:
        if rec["method"] not in order:
            order.append(rec["method"])
        for b, item in rec["budgets"].items():
            cells.setdefault((rec["method"], int(b)), []).append(item)
    rows = []
    for method in order:
        for budget in sorted(b for m, b in cells if m == method):
            items = cells[(method, budget)]
            n = len(items)
            p = sum(bool(i["correct"]) for i in items) / n
            rows.append(Row(method, budget, n, 100 * p, 100 * math.sqrt(p * (1 - p) / n),
                            sum(i["tokens"] for i in items) / n, sum(i["wall_s"] for i in items) / n,
                            100 * sum(i.get("source") == "answer" for i in items) / n))
    return rows


def _markdown(columns: Sequence[str], text_columns: int, cells: Iterable[Sequence[object]]) -> str:
    """A Markdown table: the first ``text_columns`` columns left-aligned, the numbers right-aligned."""
    rule = ["---"] * text_columns + ["---:"] * (len(columns) - text_columns)
    return "\n".join("| " + " | ".join(map(str, line)) + " |" for line in [columns, rule, *cells])


def markdown_table(rows: Sequence[Row]) -> str:
    return _markdown(["method", "budget (passes)", "accuracy % ± s.e.", "n", "mean tokens generated",
                      "mean wall s / problem", "answered by a worker %"], 1,
                     [[r.method, r.budget, f"{r.accuracy:.1f} ± {r.stderr:.1f}", r.n, f"{r.tokens:.0f}",
                       f"{r.wall_s:.1f}", f"{r.early:.0f}"] for r in rows])


@dataclass(frozen=True)
class Paired:
    """A method against the baseline on the problems both ran, at one budget."""

    method: str
    baseline: str
    budget: int
    n: int
    difference: float  # accuracy points, method minus baseline
    stderr: float  # points: standard error of the mean per-problem difference
    only_method: int  # problems only the method got right
    only_baseline: int  # problems only the baseline got right


def compare(results: dict[tuple[int, str], dict], pairs: Sequence[tuple[str, str]]) -> list[Paired]:
    """Each (method, baseline) pair, problem by problem (a paired difference is far less noisy than two
    accuracies side by side: both methods met the same problems)."""
    rows = []
    for method, baseline in pairs:
        both = sorted(i for i, m in results if m == method and (i, baseline) in results)
        budgets = sorted({int(b) for i in both for b in results[(i, method)]["budgets"]})
        for budget in budgets:
            outcomes = [(bool(results[(i, method)]["budgets"][str(budget)]["correct"]),
                         bool(results[(i, baseline)]["budgets"][str(budget)]["correct"]))
                        for i in both if str(budget) in results[(i, method)]["budgets"]
                        and str(budget) in results[(i, baseline)]["budgets"]]
            n = len(outcomes)
            if n == 0:
                continue
            diffs = [int(a) - int(b) for a, b in outcomes]
            mean = sum(diffs) / n
            var = sum((d - mean) ** 2 for d in diffs) / (n - 1) if n > 1 else 0.0
            rows.append(Paired(method, baseline, budget, n, 100 * mean, 100 * math.sqrt(var / n),
                               sum(d > 0 for d in diffs), sum(d < 0 for d in diffs)))
    return rows


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


def settings_label(first: dict, header: dict) -> str:
    """How a results file's settings differ from the first file's, e.g. "dry_multiplier=0.8" ("" if not)."""
    before, now = _settings(first), _settings(header)
    changes = []
    for key in COMPATIBLE_KEYS:
        if isinstance(now[key], dict) and isinstance(before[key], dict):
            changes += [f"{k}={v}" for k, v in now[key].items() if before[key].get(k) != v]
        elif before[key] != now[key]:
            value = now[key][:8] if key.endswith("sha256") and isinstance(now[key], str) else now[key]
            changes.append(f"{key}={value}")
    return " ".join(dict.fromkeys(changes))  # the seed is both a setting and a sampler field: name it once


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


def plot(rows: Sequence[Row], path: Path, title: str = "") -> None:
    """Accuracy against budget, one line per method, error bars of one standard error."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.6), dpi=120)
    methods = list(dict.fromkeys(r.method for r in rows))
    for k, method in enumerate(methods):
        mine = [r for r in rows if r.method == method]
        offset = 1 + 0.025 * (k - (len(methods) - 1) / 2)  # spread the error bars a little
        ax.errorbar([r.budget * offset for r in mine], [r.accuracy for r in mine], yerr=[r.stderr for r in mine],
                    marker="o", capsize=3, label=f"{method} (n={mine[0].n})" if mine else method)
    budgets = sorted({r.budget for r in rows})
    ax.set_xscale("log", base=2)
    ax.set_xticks(budgets)
    ax.set_xticklabels([str(b) for b in budgets])
    ax.minorticks_off()
    ax.set_xlabel("budget (forward passes)")
    ax.set_ylabel("accuracy % (± 1 s.e.)")
    ax.set_ylim(-4, 104)  # points at 0 and 100 stay visible
    ax.grid(alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=min(3, max(1, len(methods))), fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def plot_title(path: Path) -> str:
    """The plot title "MODEL on DATASET" from the first header of the results file at ``path`` ("" without one)."""
    headers, _ = read_results(path)
    if not headers:
        return ""
    return f"{headers[0].get('model', {}).get('name', '')} on {Path(str(headers[0].get('dataset'))).name}"


# --------------------------------------------------------------------------------------------------
# running what is left (the command is hogwild_local/cli/eval.py)


def run_todo(model, todo: list[tuple[Problem, MethodSpec]], total: int, base_config, budgets: Sequence[int],
             results_path: Path, transcripts_dir: Path | None) -> None:
    """Run what is left, appending one line per run; Ctrl-C keeps what is done and exits 130."""
    from tqdm import tqdm

    from .engine import EngineError
    from .native import BackendError

    bar = tqdm(total=total, initial=total - len(todo), desc="eval", unit="run", dynamic_ncols=True,
               mininterval=1.0, file=sys.stderr)
    correct: dict[str, list[bool]] = {}
    try:
        for problem, spec in todo:
            bar.set_postfix_str(f"#{problem.index} {spec.name}")
            transcript = transcripts_dir / f"{problem.index:04d}-{spec.name}.jsonl" if transcripts_dir else None
            try:
                record = run_problem(model, problem, spec, base_config, budgets, transcript)
            except (EngineError, BackendError) as err:
                raise EvalError(f"problem {problem.index}, {spec.name}: {err}") from None
            append_record(results_path, record)
            correct.setdefault(spec.name, []).append(record["budgets"][str(max(budgets))]["correct"])
            bar.set_postfix_str(" ".join(f"{m} {sum(v)}/{len(v)}" for m, v in correct.items()))
            bar.update(1)
    except KeyboardInterrupt:
        bar.close()
        click.echo(f"\ninterrupted: {results_path} keeps what is done; run the same command again to continue",
                   err=True)
        sys.exit(130)
    bar.close()
