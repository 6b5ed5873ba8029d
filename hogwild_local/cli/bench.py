"""`hogwild bench`: the speed benchmark's command line (the timing itself is hogwild_local.measure.bench,
imported when the command runs)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import click

from ..engine.layout import MAX_WORKERS
from ..native.synthetic import SHAPES
from .command import Command, command_line
from .options import (
    cache_type_option,
    gpu_layers_option,
    model_option,
    placement,
    rpc_option,
    tensor_split_option,
    threads_option,
)


def _int_list(_ctx: click.Context | None, _param: click.Parameter | None,
              value: str | None) -> tuple[int, ...] | None:
    """``1,2,4`` -> (1, 2, 4): positive integers separated by commas (None stays None)."""
    if value is None:
        return None
    try:
        out = tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got {value!r}") from None
    if not out or min(out) < 1:
        raise click.BadParameter("expected positive integers")
    return out


def _worker_list(ctx: click.Context | None, param: click.Parameter | None, value: str) -> tuple[int, ...]:
    """Worker counts: :func:`_int_list`, at most one worker per worker name."""
    workers = _int_list(ctx, param, value)
    if max(workers) > MAX_WORKERS:
        raise click.BadParameter(f"at most {MAX_WORKERS} workers (one name each), got {max(workers)}")
    return workers


@click.command("bench", cls=Command)
@model_option
@click.option("--synthetic", type=click.Choice(sorted(SHAPES)), help="Benchmark a random-weight model of this shape.")
@click.option("--layers", type=int, help="Synthetic only: fewer layers than the real model.")
@click.option("--quant", default="Q4_K_M", show_default=True,
              help="Synthetic only: quantization (f16 keeps the f16 file).")
@click.option("--quantize-bin", type=click.Path(exists=True, dir_okay=False),
              help="llama-quantize binary (default: on PATH, else libllama's quantizer).")
@click.option("--workers", default="1,2,4,8", show_default=True, callback=_worker_list,
              help=f"Worker counts W (1-{MAX_WORKERS}).")
@click.option("--contexts", callback=_int_list,
              help="Cells in the cache while timing [default: 1024,2048,4096 on CPU, and 8192 with GPU offload].")
@click.option("--passes", default=16, show_default=True, type=click.IntRange(1), help="Timed passes per point.")
@click.option("--warmup", default=3, show_default=True, type=click.IntRange(0), help="Untimed passes first.")
@click.option("--rounds", default=1, show_default=True, type=click.IntRange(1),
              help="Alternate stock and hogwild runs this many times per point and pool their passes (steadier "
                   "ratios on a busy machine).")
@click.option("--step-tokens", default=32, show_default=True, type=click.IntRange(1),
              help="Hogwild: a worker's step length before it moves into the history.")
@gpu_layers_option(auto=True)
@tensor_split_option
@rpc_option
@threads_option
@click.option("--flash-attn", is_flag=True,
              help="Flash attention for the stock side. Hogwild takes it as a run does: on unless the cache is f32 "
                   "(the patch's key copies and one stock flash attention).")
@cache_type_option
@click.option("--batch", "n_batch", default=512, show_default=True, type=click.IntRange(1),
              help="n_batch (prompt chunk size).")
@click.option("--methods", default="stock,hogwild", show_default=True, help="Which methods to time.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the random token ids.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, writable=True),
              help="Write meta and rows as JSON.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, writable=True),
              help="Write a PNG of tokens/s vs workers.")
def bench_command(model_spec: str | None, synthetic: str | None, layers: int | None, quant: str,
                  quantize_bin: str | None, workers: tuple[int, ...], contexts: tuple[int, ...] | None, passes: int,
                  warmup: int, rounds: int, step_tokens: int, gpu_layers: int | None, tensor_split: str | None,
                  rpc: str | None, threads: int | None, flash_attn: bool, cache_type: str, n_batch: int, methods: str,
                  seed: int, json_path: str | None, plot_path: str | None) -> None:
    """Speed of the backend: stock batched decoding vs Hogwild views, W workers at C cells.

    \b
    Examples:
      hogwild bench -m smollm2-135m --workers 1,2,4 --contexts 1024 --threads 2
      hogwild bench --synthetic qwen2.5-7b --contexts 4096,32768 --flash-attn --json bench.json
      hogwild bench -m smollm2-135m --rpc 127.0.0.1:50052 -ngl 15   # 15 of its 30 layers on a server
    """
    from ..engine import check_model
    from ..measure.bench import CPU_CONTEXTS, GPU_CONTEXTS, bench_meta, json_row, model_facts, run_bench
    from ..measure.plots import write_plot
    from ..measure.provenance import load_average
    from ..measure.report import format_table
    from ..measure.synthetic import synthetic_model
    from ..models import resolve_model
    from ..native import Model, library_info
    from ..native.library import load

    def log(msg: str) -> None:
        click.echo(msg, err=True)

    if model_spec and synthetic:
        raise click.UsageError("give --model or --synthetic, not both")
    if layers is not None and not synthetic:
        raise click.UsageError("--layers is for --synthetic models")
    method_names = tuple(m.strip() for m in methods.split(",") if m.strip())
    if not method_names or set(method_names) - {"stock", "hogwild"}:
        raise click.UsageError("--methods takes stock, hogwild or both")
    load()  # a missing or unpatched library is one line here, before any model is written or loaded
    info = library_info()
    if gpu_layers is None:
        gpu_layers = -1 if info["gpu_offload"] or rpc else 0
    where = placement({"gpu_layers": gpu_layers, "tensor_split": tensor_split, "rpc": rpc})
    contexts = contexts or (GPU_CONTEXTS if gpu_layers else CPU_CONTEXTS)
    threads = threads or os.cpu_count() or 1
    if synthetic:
        path = synthetic_model(synthetic, layers=layers, quant=quant, quantize_bin=quantize_bin, threads=threads,
                               log=log)
    else:
        path = resolve_model(model_spec)
    load_before = load_average()
    t0 = time.perf_counter()
    model = Model(path, **where)
    log(f"loaded {path.name} in {time.perf_counter() - t0:.1f} s")
    try:
        check_model(model)  # the engine's refusals (recurrent memory, M-RoPE, sliding window) apply here too
        facts = model_facts(model)
        rows = run_bench(path, workers=workers, contexts=contexts, passes=passes, warmup=warmup,
                         gpu_layers=gpu_layers, threads=threads, flash_attn=flash_attn, cache_type=cache_type,
                         step_tokens=step_tokens, n_batch=n_batch, methods=method_names, seed=seed,
                         rounds=rounds, log=log, model=model)
    finally:
        model.close()

    meta = bench_meta(facts, path, threads=threads, gpu_layers=gpu_layers, rpc=where["rpc"], cache_type=cache_type,
                      flash_attn=flash_attn, n_batch=n_batch, passes=passes, warmup=warmup, rounds=rounds,
                      step_tokens=step_tokens, load_before=load_before, library=info.get("library"),
                      command=command_line(click.get_current_context()))
    click.echo(format_table(rows, meta))
    if json_path:
        Path(json_path).write_text(json.dumps({"meta": meta, "rows": [json_row(r) for r in rows]}, indent=1) + "\n")
        log(f"wrote {json_path}")
    if plot_path:
        write_plot(rows, plot_path, f"{facts.name}, {threads} threads, {gpu_layers} GPU layers\n{meta['machine']}")
        log(f"wrote {plot_path}")
