"""`hogwild eval`: the accuracy evaluation's command line (the runs, results file and report are in
hogwild_local.measure)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import click

from ..measure.errors import EvalError
from ..measure.eval import (
    DEFAULT_BUDGETS,
    DEFAULT_METHODS,
    MethodSpec,
    parse_budgets,
    parse_methods,
    parse_problems,
    run_all,
)
from ..measure.gsm8k import Problem, fetch_gsm8k, load_problems
from ..measure.plots import plot, plot_title
from ..measure.report import describe_headers, markdown_table, report
from ..measure.results import append_record, check_compatible, make_header, read_results
from ..measure.stats import summarize
from .command import Command, command_line
from .options import (
    compose,
    config_from_options,
    layout_option,
    load_model,
    model_options,
    remedy_options,
    runtime_options,
    sampling_options,
)

if TYPE_CHECKING:
    from ..engine import RunConfig
    from ..native import Model


T = TypeVar("T")


def _parsed(parse: Callable[[str], T]) -> Callable[[click.Context, click.Parameter, str | None], T | None]:
    """An option callback: the value through ``parse`` (None stays None); its EvalError is a usage error
    naming the option (exit 2)."""
    def callback(_ctx: click.Context, param: click.Parameter, value: str | None) -> T | None:
        if value is None:
            return None
        try:
            return parse(value)
        except EvalError as err:
            raise click.BadParameter(str(err), param_hint=param.opts[0]) from None
    return callback


@click.command("eval", cls=Command)
@click.argument("dataset_path", metavar="[DATASET]", required=False,
                type=click.Path(dir_okay=False, path_type=Path))
@click.option("--dataset", "dataset_name", type=click.Choice(["gsm8k"]), default=None,
              help="Fetch a public data set (GSM8K test split from the Hugging Face Hub; needs a network).")
@click.option("--methods", "specs", default=DEFAULT_METHODS, show_default=True, callback=_parsed(parse_methods),
              help="METHOD-WORKERS, comma-separated: single, hogwild-N, independent-N, self-consistency-N.")
@click.option("--budgets", default=DEFAULT_BUDGETS, show_default=True, callback=_parsed(parse_budgets),
              help="Budgets in passes; one run at the largest, the finisher asked at each.")
@click.option("--limit", type=click.IntRange(1), default=None, help="Only the first N problems (also with --report).")
@click.option("--problems", "chosen", default=None, metavar="RANGES", callback=_parsed(parse_problems),
              help="Only these problems, by 0-based index in the file, e.g. 155-199,0-30 (also with --report). "
                   "Each keeps its index, so a re-run uses the same seeds.")
@click.option("--results", "results_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Results JSONL (resumable). Default: eval-DATASET.jsonl.")
@click.option("--transcripts", "transcripts_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write one transcript per (problem, method) into this folder.")
@click.option("--report", "report_paths", type=click.Path(exists=True, dir_okay=False, path_type=Path), multiple=True,
              help="Print the table of an existing results file and exit (no model needed). Repeat it to put "
                   "files with other settings side by side (their methods named by what differs).")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also draw accuracy vs budget to this PNG.")
@compose(model_options, layout_option, sampling_options, remedy_options, runtime_options)
def eval_command(dataset_path: Path | None, dataset_name: str | None, specs: list[MethodSpec],
                 budgets: tuple[int, ...], limit: int | None, chosen: list[int] | None, results_path: Path | None,
                 transcripts_dir: Path | None, report_paths: tuple[Path, ...], plot_path: Path | None, **opts) -> None:
    """Measure accuracy on GSM8K-style problems: every method at every budget, resumable.

    \b
    Examples:
      hogwild eval ../shared/data/gsm8k/dev.jsonl --limit 20 --results gsm8k.jsonl
      hogwild eval --dataset gsm8k --methods single,hogwild-2,hogwild-4 --budgets 256,512,1024
      hogwild eval --report gsm8k.jsonl --plot gsm8k.png
      hogwild eval --report gsm8k.jsonl --report gsm8k-dry.jsonl --limit 12   # two settings, same problems
      hogwild eval ../shared/data/gsm8k/dev.jsonl --problems 5,40-49 --results rerun.jsonl   # some again
    """
    if report_paths:
        text, rows = report(report_paths, limit, chosen)
        click.echo(text)
        if plot_path:
            plot(rows, plot_path, plot_title(report_paths[0]))
            click.echo(f"\nplot: {plot_path}", err=True)
        return

    if dataset_path is not None and dataset_name is not None:
        raise click.UsageError("give a DATASET file or --dataset, not both")
    if dataset_path is None and dataset_name is None:
        raise click.UsageError("give a DATASET.jsonl file (GSM8K format) or --dataset gsm8k")
    if dataset_name == "gsm8k":
        dataset_path, dataset_label = fetch_gsm8k(), "gsm8k (openai/gsm8k main/test)"
    else:
        dataset_label = str(dataset_path)
    problems = load_problems(dataset_path)
    if chosen:
        if max(chosen) >= len(problems):
            outside = min(i for i in chosen if i >= len(problems))
            raise click.BadParameter(f"problem {outside} and up: {dataset_path} has problems 0-{len(problems) - 1}",
                                     param_hint="--problems")
        problems = [problems[i] for i in chosen]
    problems = problems[:limit]
    results_path = results_path or Path(f"eval-{Path(dataset_path).stem}.jsonl")

    base_config = config_from_options(opts)  # each run sets its method, workers and budget
    model = load_model(opts)
    header = make_header(dataset_label, Path(dataset_path), model.path, [s.name for s in specs], budgets, base_config,
                         gpu_layers=opts["gpu_layers"], command=command_line(click.get_current_context()))
    headers, done = read_results(results_path)
    if headers:
        check_compatible(headers[0], header, results_path)

    def is_done(index: int, spec: MethodSpec) -> bool:
        rec = done.get((index, spec.name))
        return rec is not None and all(str(b) in rec["budgets"] for b in budgets)

    todo = [(p, s) for p in problems for s in specs if not is_done(p.index, s)]
    total = len(problems) * len(specs)
    if not todo:
        click.echo(f"all {total} runs are done already in {results_path}", err=True)
    else:
        append_record(results_path, header)
        _run_with_progress(model, todo, total, base_config, budgets, results_path, transcripts_dir)

    # the table covers what this command asked for
    wanted = {(p.index, s.name) for p in problems for s in specs}
    _, results = read_results(results_path)
    mine = [r for k, r in results.items() if k in wanted]
    rows = [r for r in summarize(mine, [s.name for s in specs]) if r.budget in budgets]
    click.echo(f"\n{describe_headers(read_results(results_path)[0])}\n- {len(problems)} problems, {len(mine)} runs, "
               f"results: {results_path}\n\n{markdown_table(rows)}")
    if plot_path:
        plot(rows, plot_path, plot_title(results_path))
        click.echo(f"\nplot: {plot_path}", err=True)


def _run_with_progress(model: Model, todo: list[tuple[Problem, MethodSpec]], total: int, base_config: RunConfig,
                       budgets: tuple[int, ...], results_path: Path, transcripts_dir: Path | None) -> None:
    """``measure.eval.run_all`` under a progress bar with each method's score so far; Ctrl-C keeps what is
    done and exits 130."""
    from tqdm import tqdm

    bar = tqdm(total=total, initial=total - len(todo), desc="eval", unit="run", dynamic_ncols=True,
               mininterval=1.0, file=sys.stderr)
    correct: dict[str, list[bool]] = {}

    def progress(problem: Problem, spec: MethodSpec, record: dict | None) -> None:
        if record is None:
            bar.set_postfix_str(f"#{problem.index} {spec.name}")
            return
        correct.setdefault(spec.name, []).append(record["budgets"][str(max(budgets))]["correct"])
        bar.set_postfix_str(" ".join(f"{m} {sum(v)}/{len(v)}" for m, v in correct.items()))
        bar.update(1)

    try:
        run_all(model, todo, base_config, budgets, results_path, transcripts_dir, progress)
    except KeyboardInterrupt:
        bar.close()
        click.echo(f"\ninterrupted: {results_path} keeps what is done; run the same command again to continue",
                   err=True)
        sys.exit(130)
    bar.close()
