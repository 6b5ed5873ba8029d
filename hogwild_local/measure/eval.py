"""The accuracy evaluation: methods and budgets as the command line names them, and the runs themselves.

One run per (problem, method) at the largest budget; the finisher is also asked at every smaller budget
during that run (``RunConfig.snapshots``). When a worker writes a \\boxed{} answer in a finished step the
run stops there and that answer holds for every later budget (for ``hogwild`` and ``single``; the
``independent`` and ``self-consistency`` baselines always spend their budget unless every worker stops).

Wall time at a budget b is what a run that stopped at b would have taken: the run's elapsed time at pass
b, less the time the finisher spent answering at the smaller snapshot budgets. The results file, the
report and the plot are ``results.py``, ``report.py`` and ``plots.py``.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from ..engine import METHODS, EngineError, Generation, Method, RunConfig
from ..engine.driver import TranscriptSink, drive
from ..engine.events import Event
from ..engine.layout import MAX_WORKERS
from ..engine.transcript import TranscriptWriter
from ..native import BackendError, Model
from .errors import EvalError
from .gsm8k import Problem, is_correct
from .results import append_record

DEFAULT_METHODS = "single,hogwild-2,independent-2"
DEFAULT_BUDGETS = "128,256,512"


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
        if not match or match.group(1) not in METHODS:
            raise EvalError(f"{item!r}: use METHOD or METHOD-WORKERS with METHOD one of "
                            f"{', '.join(METHODS)} (e.g. hogwild-2)")
        method = match.group(1)
        single = method == Method.SINGLE.value
        workers = int(match.group(2)) if match.group(2) else (1 if single else default_workers)
        if single and workers != 1:
            raise EvalError(f"{item!r}: single has one worker")
        if not 1 <= workers <= MAX_WORKERS:
            raise EvalError(f"{item!r}: 1 to {MAX_WORKERS} workers")
        name = method if single else f"{method}-{workers}"
        if name not in (s.name for s in specs):
            specs.append(MethodSpec(name, method, workers))
    if not specs:
        raise EvalError("name at least one method")
    return specs


def parse_budgets(text: str) -> tuple[int, ...]:
    """``128,256,512`` -> (128, 256, 512), sorted, without repeats."""
    try:
        budgets = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        budgets = []
    if not budgets or budgets[0] < 1:
        raise EvalError(f"{text!r}: positive integers separated by commas")
    return tuple(budgets)


def parse_problems(text: str) -> list[int]:
    """``155-199,0-2`` -> [155, ..., 199, 0, 1, 2]: 0-based problem indices, ranges inclusive, in the order
    given, without repeats. Picks problems to (re-)run or to report without editing the data file, so that
    each keeps its index and therefore its seed."""
    indices: dict[int, None] = {}
    for part in text.split(","):
        match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not match or int(match[2] or match[1]) < int(match[1]):
            raise EvalError(f"{text!r}: indices or ranges like 0-30,155-199")
        indices.update(dict.fromkeys(range(int(match[1]), int(match[2] or match[1]) + 1)))
    return list(indices)


class _SnapshotClock:
    """A sink (``engine.driver.drive``): each snapshot event with the run's time at it, less the time spent
    answering at the snapshots before (a run that stopped at that budget would not have spent it)."""

    def __init__(self) -> None:
        self.snapshots: dict[int, tuple] = {}
        self.finisher_time = 0.0
        self._stats_at = 0.0

    def __call__(self, event: Event) -> None:
        if event.type == "stats":
            self._stats_at = time.perf_counter()
        elif event.type == "snapshot":
            self.snapshots[event.budget] = (event, event.elapsed_s - self.finisher_time)
            self.finisher_time += time.perf_counter() - self._stats_at


def run_problem(model: Model, problem: Problem, spec: MethodSpec, base_config: RunConfig, budgets: Sequence[int],
                transcript: Path | None = None) -> dict:
    """One run of ``spec`` on ``problem`` at the largest budget, with the finisher asked at the others.

    Returns the result record: per budget the answer, whether it is right, tokens, wall time and where the
    answer came from (a worker's, the finisher's or the vote); the run's final answer and counts.
    """
    sampling = replace(base_config.sampling, seed=base_config.sampling.seed + problem.index)
    config = replace(base_config, method=spec.method, workers=spec.workers, budget=max(budgets),
                     snapshots=tuple(b for b in budgets if b < max(budgets)), sampling=sampling)
    record = None
    if transcript is not None:
        transcript.unlink(missing_ok=True)  # a run cut short earlier is redone from scratch
        header = {"problem": problem.question, "reference": problem.reference, "index": problem.index,
                  "method": spec.name}
        record = TranscriptSink(TranscriptWriter(transcript, header))
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


Progress = Callable[[Problem, MethodSpec, dict | None], None]


def run_all(model: Model, todo: Sequence[tuple[Problem, MethodSpec]], base_config: RunConfig,
            budgets: Sequence[int], results_path: Path, transcripts_dir: Path | None,
            progress: Progress | None = None) -> None:
    """Run each (problem, method) of ``todo``, appending its result line to ``results_path`` as soon as it is
    done (an interrupted evaluation keeps every finished run). ``progress(problem, spec, None)`` is called
    before a run, ``progress(problem, spec, record)`` after it. A KeyboardInterrupt propagates (the caller
    says what is kept)."""
    for problem, spec in todo:
        if progress:
            progress(problem, spec, None)
        transcript = transcripts_dir / f"{problem.index:04d}-{spec.name}.jsonl" if transcripts_dir else None
        try:
            record = run_problem(model, problem, spec, base_config, budgets, transcript)
        except (EngineError, BackendError) as err:
            raise EvalError(f"problem {problem.index}, {spec.name}: {err}") from None
        append_record(results_path, record)
        if progress:
            progress(problem, spec, record)
