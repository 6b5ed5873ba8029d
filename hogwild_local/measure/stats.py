"""Accuracy statistics of evaluation results: per (method, budget) with its standard error, and methods
compared problem by problem against a baseline (a paired difference is far less noisy than two accuracies)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Row:
    """One method at one budget over the problems it ran."""

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
