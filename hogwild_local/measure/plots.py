"""PNG plots (matplotlib, an optional dependency imported when a plot is drawn): the evaluation's accuracy
against budget and the benchmark's tokens/s against workers."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from .bench import BenchRow
from .results import read_results
from .stats import Row


def _agg_pyplot() -> ModuleType:
    """``matplotlib.pyplot`` on the Agg backend (files only: no display needed)."""
    import matplotlib  # optional: pip install hogwild-local[bench]

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot(rows: Sequence[Row], path: Path, title: str = "") -> None:
    """Accuracy against budget, one line per method, error bars of one standard error."""
    plt = _agg_pyplot()
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


def write_plot(rows: Sequence[BenchRow], path: str | Path, title: str) -> None:
    """Tokens/s against workers, one line per (context, method): solid stock, dashed hogwild."""
    plt = _agg_pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    contexts = sorted({r.context for r in rows})
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, context in enumerate(contexts):
        for method, style in (("stock", "-"), ("hogwild", "--")):
            pts = sorted((r.workers, r.tokens_per_s) for r in rows
                         if r.context == context and r.method == method)
            if pts:
                ax.plot(*zip(*pts, strict=True), style, marker="o", color=colors[i % len(colors)],
                        label=f"{method} C={context}")
    ax.set_xlabel("workers (tokens per pass)")
    ax.set_ylabel("aggregate tokens/s")
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted({r.workers for r in rows}), labels=[str(w) for w in sorted({r.workers for r in rows})])
    ax.set_title(title, fontsize=8)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
