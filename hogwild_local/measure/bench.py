"""Speed benchmark of the backend: stock batched decoding versus Hogwild views, at equal cache size.

``hogwild bench`` (or ``python -m hogwild_local.measure.bench`` where there is no ``hogwild`` script) prints a
Markdown table (``report.format_table``); :func:`run_bench` returns the rows and :func:`bench_meta` the facts
beside them. For every worker count W and context C (the number of cells in the cache while timing):

- **stock**: one unified-KV context with W sequences; a shared prompt of ``P = C - W*(warmup+passes)``
  random tokens is decoded once for all W sequences, then every pass decodes W tokens, one per sequence
  at its next position (like ``llama-batched-bench`` with a shared prompt). Hogwild mode is off.
- **hogwild**: the same context with Hogwild views on and a ``Layout(COMBINED, W, capacity=C,
  header_lengths=(8, 2, 8))``: the prompt (common block), the header and marker blocks, and a current
  step per worker are decoded so that the cache holds the same number of cells as stock at every pass.
  Every pass appends one token per worker to the layout, sets every worker's view offsets (host work
  that is timed) and decodes once. A worker whose step reaches ``step_tokens`` finishes it: the step
  moves to the end of the history (``seq_add``; its keys are re-rotated by the next decode). Steps are
  staggered so that these moves happen every ``step_tokens / W`` passes; timed passes include them and
  the ``moves`` column counts them.

Timing is wall-clock per pass (``llama_synchronize`` after each decode), median over the timed passes
after the warm-up. Both methods of one context share the prompt's cells: it is decoded once per C (with
every sequence of the largest W) and each run only adds and then removes its own cells above it.

``--synthetic SHAPE`` benchmarks a random-weight model with the real tensor names, shapes and hyper-
parameters of SmolLM2-135M or Qwen2.5-1.5B/7B (no tokenizer; token ids are random anyway), written with
the ``gguf`` package in f16 and quantized by ``llama-quantize`` (or libllama's own quantizer).
"""

from __future__ import annotations

import datetime as _dt
import math
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..engine.config import hogwild_flash_attn, spare_cells
from ..engine.layout import Layout, LayoutKind
from ..engine.views import enable_views, sync_views
from ..native import CACHE_TYPES, BackendError, Context, Model, Token, batches
from ..native.synthetic import Log
from .provenance import git_commit, load_average, machine_name

HEADER_LENGTHS = (8, 2, 8)  # others_header, marker, own_header
DEFAULT_WORKERS = (1, 2, 4, 8)
CPU_CONTEXTS = (1024, 2048, 4096)
GPU_CONTEXTS = (1024, 2048, 4096, 8192)
# bytes of one element of each KV cache type (block size / block bytes for the quantized ones)
CACHE_TYPE_BYTES = {"f32": 4.0, "f16": 2.0, "bf16": 2.0, "q8_0": 34 / 32, "q4_0": 18 / 32}
# a prefill chunk in Hogwild mode keeps its scores (at most n_kv x blocks per token and head) under this many bytes
HOGWILD_SCORES_BUDGET = 64 << 20


# --------------------------------------------------------------------------------------------------
# model facts


@dataclass(frozen=True)
class ModelFacts:
    """What the table says about a model, read from llama.cpp."""

    name: str
    architecture: str
    n_params: int
    size_bytes: int
    n_layer: int
    n_head: int
    n_head_kv: int
    head_dim_k: int
    head_dim_v: int
    n_vocab: int

    def kv_bytes_per_cell(self, cache_type: str) -> float:
        """K and V of one token over every layer: n_layer * n_head_kv * (dk + dv) * bytes per element."""
        return self.n_layer * self.n_head_kv * (self.head_dim_k + self.head_dim_v) * CACHE_TYPE_BYTES[cache_type]


def model_facts(model: Model) -> ModelFacts:
    """Layer/head counts and head sizes of a loaded model (llama_model_n_* and the GGUF key_length)."""
    info = model.info
    arch = info.architecture
    dk = model.meta_int(f"{arch}.attention.key_length") or info.n_embd // info.n_head
    dv = model.meta_int(f"{arch}.attention.value_length") or dk
    return ModelFacts(
        name=model.path.name,
        architecture=arch,
        n_params=model.info.n_params,
        size_bytes=model.info.size_bytes,
        n_layer=info.n_layer,
        n_head=info.n_head,
        n_head_kv=info.n_head_kv,
        head_dim_k=dk,
        head_dim_v=dv,
        n_vocab=model.info.n_vocab,
    )


# --------------------------------------------------------------------------------------------------
# the benchmark


@dataclass
class BenchRow:
    """One (method, W, C) point."""

    method: str  # stock | hogwild
    workers: int
    context: int  # cells in the cache at the last timed pass, as planned
    cells_used: int  # as counted by llama.cpp after the last pass
    prompt_tokens: int
    passes: int
    ms_per_pass: float  # median
    ms_mean: float
    ms_min: float
    ms_max: float
    tokens_per_s: float  # W / median pass time
    ratio: float | None  # hogwild / stock median pass time (hogwild rows)
    kv_bytes: float  # cells_used * bytes per cell
    kv_bytes_replicated: float  # W separate caches of the same cells each
    moves: int = 0  # finished steps moved into the history during the timed passes
    blocks: int = 0  # Hogwild blocks (query copies per token)
    times_ms: list[float] = field(default_factory=list)


@dataclass
class _HogwildPlan:
    workers: int
    prompt: int
    header_cells: int
    step_lengths: list[int]


def _plan_hogwild(workers: int, context: int, total_passes: int, warmup: int, step_tokens: int) -> _HogwildPlan:
    """Prompt length, header cells and initial step lengths so that the cache ends at ``context`` cells.

    Worker w's first step ends after pass ``warmup + w*S // W`` (mod S), then every S passes: moves are
    spread evenly, one every S/W passes, starting with the first timed pass.
    """
    header_cells = sum(HEADER_LENGTHS[::2]) + HEADER_LENGTHS[1] * workers if workers > 1 else 0
    lengths = [(step_tokens - 1 - (warmup + w * step_tokens // workers)) % step_tokens for w in range(workers)]
    prompt = context - workers * total_passes - header_cells - sum(lengths)
    return _HogwildPlan(workers, prompt, header_cells, lengths)


def _decode_chunks(ctx: Context, tokens: list[Token], chunk: int) -> None:
    for batch in batches(tokens, chunk):
        ctx.decode(batch)


def _summary(times: list[float]) -> tuple[float, float, float, float]:
    ms = [t * 1e3 for t in times]
    return statistics.median(ms), statistics.fmean(ms), min(ms), max(ms)


def _run_stock(ctx: Context, prompt: np.ndarray, base: int, workers: int, context: int, warmup: int, passes: int,
               ids: np.ndarray) -> tuple[list[float], int, int]:
    total = warmup + passes
    p = context - workers * total
    seqs = tuple(range(workers))
    _decode_chunks(ctx, [Token(int(t), base + i, seqs) for i, t in enumerate(prompt[base:p])], ctx.n_batch)
    ctx.synchronize()
    times = []
    for k in range(total):
        t0 = time.perf_counter()
        ctx.decode([Token(int(ids[k, w]), p + k, (w,), True) for w in range(workers)])
        ctx.synchronize()
        times.append(time.perf_counter() - t0)
    cells = ctx.cells_used()
    ctx.seq_rm(-1, base, -1)
    return times[warmup:], cells, p


def _run_hogwild(ctx: Context, prompt: np.ndarray, base: int, plan: _HogwildPlan, context: int, warmup: int,
                 passes: int, step_tokens: int, ids: np.ndarray, n_head: int, n_vocab: int,
                 rng: np.random.Generator
                 ) -> tuple[list[float], int, int, int]:
    workers, total = plan.workers, warmup + passes
    layout = Layout(LayoutKind.COMBINED, workers, capacity=context, header_lengths=HEADER_LENGTHS)
    seqs = tuple(range(workers))
    # the prompt (common block), in stock mode: positions are view positions for everyone
    layout.append_prompt(plan.prompt)
    _decode_chunks(ctx, [Token(int(t), base + i, seqs) for i, t in enumerate(prompt[base : plan.prompt])],
                   ctx.n_batch)
    enable_views(ctx, layout)

    # a Hogwild token's score row: block 0 over the cache plus a copy per other block over the small range
    # (at most n_kv x n_blk entries): keep prefill chunks' scores bounded
    chunk = max(1, min(ctx.n_batch, HOGWILD_SCORES_BUDGET // (context * layout.n_blocks * n_head * 4)))
    for block in layout.blocks[1:]:
        viewers = layout.viewers(block)
        if block.kind != "step" and block.capacity and viewers:
            layout.mark_filled(block)
            sync_views(ctx, layout)
            fill = rng.integers(0, n_vocab, block.capacity)
            tokens = [Token(int(t), p, viewers) for p, t in zip(layout.fill_header(block), fill, strict=True)]
            _decode_chunks(ctx, tokens, chunk)
    viewers = [layout.viewers(layout.steps[w]) for w in range(workers)]
    for w, n in enumerate(plan.step_lengths):
        if n:
            positions = layout.append(w, n)
            sync_views(ctx, layout)
            fill = rng.integers(0, n_vocab, n)
            _decode_chunks(ctx, [Token(int(t), p, viewers[w]) for p, t in zip(positions, fill, strict=True)], chunk)
    assert layout.live_cells() == context - workers * total, (layout.live_cells(), context, workers * total)
    ctx.synchronize()

    times, moves = [], 0
    for k in range(total):
        t0 = time.perf_counter()
        tokens = [Token(int(ids[k, w]), layout.append(w, 1).start, viewers[w], True) for w in range(workers)]
        sync_views(ctx, layout)
        ctx.decode(tokens)
        ctx.synchronize()
        for w in range(workers):
            if layout.steps[w].length >= step_tokens:
                move = layout.finish_step(w)
                ctx.seq_add(w, move.p0, move.p1, move.shift)
                moves += k >= warmup
        times.append(time.perf_counter() - t0)
    cells = ctx.cells_used()
    if cells != layout.live_cells():
        raise BackendError(f"hogwild: llama.cpp counts {cells} cells, the layout {layout.live_cells()}")
    ctx.hogwild_enable(0)
    ctx.seq_rm(-1, base, -1)
    return times[warmup:], cells, moves, layout.n_blocks


class _PromptedContexts:
    """Contexts of C cells holding the shared prompt, opened on first use: one plain, one with flash attention
    (and a run's spare cells: stock passes never reach them)."""

    def __init__(self, model: Model, context: int, n_seq: int, n_batch: int, cache_type: str, threads: int | None,
                 prompt: np.ndarray, log: Log) -> None:
        self.model, self.context, self.n_seq, self.n_batch = model, context, n_seq, n_batch
        self.cache_type, self.threads, self.prompt, self.log = cache_type, threads, prompt, log
        self.opened: dict[bool, Context] = {}

    def __call__(self, flash_attn: bool) -> Context:
        if flash_attn not in self.opened:
            spare = spare_cells(self.n_seq, self.context, flash_attn)
            ctx = self.model.context(n_ctx=self.context + spare, n_seq=self.n_seq, n_batch=self.n_batch,
                                     cache_type=self.cache_type, n_threads=self.threads, flash_attn=flash_attn)
            self.opened[flash_attn] = ctx
            t0 = time.perf_counter()
            seqs = tuple(range(self.n_seq))
            _decode_chunks(ctx, [Token(int(t), i, seqs) for i, t in enumerate(self.prompt)], self.n_batch)
            ctx.synchronize()
            self.log(f"C={self.context}: prompt of {len(self.prompt)} tokens decoded in "
                     f"{time.perf_counter() - t0:.1f} s" + (" (flash attention)" if flash_attn else ""))
        return self.opened[flash_attn]

    def close(self) -> None:
        for ctx in self.opened.values():
            ctx.close()
        self.opened.clear()


def _bench_point(w: int, context: int, methods: Sequence[str], rounds: int, open_ctx: _PromptedContexts,
                 prompt: np.ndarray, base: int, plan: _HogwildPlan, warmup: int, passes: int, step_tokens: int,
                 ids: np.ndarray, facts: ModelFacts, per_cell: float,
                 flash_attn: bool, rng: np.random.Generator, log: Log) -> list[BenchRow]:
    """Both methods at one (W, C): ``rounds`` alternating runs of each, their timed passes pooled."""
    run_hogwild = "hogwild" in methods
    n_blk = Layout(LayoutKind.COMBINED, w, capacity=context, header_lengths=HEADER_LENGTHS).n_blocks
    stock_t: list[float] = []
    hog_t: list[float] = []
    stock_cells = hog_cells = moves = 0
    p_stock = context - w * (warmup + passes)
    hogwild_fa = hogwild_flash_attn(open_ctx.cache_type, over_rpc=bool(open_ctx.model.rpc))  # as a run takes it
    for _ in range(rounds):
        if "stock" in methods:
            times, stock_cells, p_stock = _run_stock(open_ctx(flash_attn), prompt, base, w, context, warmup, passes,
                                                     ids)
            stock_t += times
        if run_hogwild:
            times, hog_cells, n, n_blk = _run_hogwild(open_ctx(hogwild_fa), prompt, base, plan, context, warmup, passes,
                                                      step_tokens, ids, facts.n_head, facts.n_vocab, rng)
            hog_t += times
            moves += n
    rows = []
    stock_ms = None
    if stock_t:
        med, mean, lo, hi = _summary(stock_t)
        stock_ms = med
        rows.append(BenchRow("stock", w, context, stock_cells, p_stock, len(stock_t), med, mean, lo, hi,
                             w / med * 1e3, None, stock_cells * per_cell, w * stock_cells * per_cell,
                             times_ms=[t * 1e3 for t in stock_t]))
        log(f"stock   W={w} C={context}: {med:.2f} ms/pass ({w / med * 1e3:.1f} tok/s)")
    if hog_t:
        med, mean, lo, hi = _summary(hog_t)
        ratio = med / stock_ms if stock_ms else None
        rows.append(BenchRow("hogwild", w, context, hog_cells, plan.prompt, len(hog_t), med, mean, lo, hi,
                             w / med * 1e3, ratio, hog_cells * per_cell, w * hog_cells * per_cell, moves=moves,
                             blocks=n_blk, times_ms=[t * 1e3 for t in hog_t]))
        log(f"hogwild W={w} C={context}: {med:.2f} ms/pass ({w / med * 1e3:.1f} tok/s)"
            + (f", x{ratio:.2f} stock" if ratio else "") + f", {moves} moves, {n_blk} blocks")
    return rows


def run_bench(
    model_path: str | Path,
    *,
    workers: Sequence[int] = DEFAULT_WORKERS,
    contexts: Sequence[int] = CPU_CONTEXTS,
    passes: int = 16,
    warmup: int = 3,
    gpu_layers: int = 0,
    threads: int | None = None,
    flash_attn: bool = False,
    cache_type: str = "f16",
    step_tokens: int = 32,
    n_batch: int = 512,
    methods: Sequence[str] = ("stock", "hogwild"),
    seed: int = 0,
    rounds: int = 1,
    log: Log | None = None,
    model: Model | None = None,
) -> list[BenchRow]:
    """Time stock and Hogwild passes for every (W, C); see the module docstring. Returns the rows."""
    log = log or (lambda _msg: None)
    if cache_type not in CACHE_TYPES:
        raise BackendError(f"unknown cache type {cache_type!r}; choose one of {', '.join(CACHE_TYPES)}")
    if passes < 1 or warmup < 0 or step_tokens < 1 or rounds < 1:
        raise BackendError("passes and rounds must be >= 1, warm-up >= 0 and step tokens >= 1")
    workers = sorted(set(workers))
    owned = model is None
    model = model or Model(model_path, n_gpu_layers=gpu_layers)
    try:
        facts = model_facts(model)
        per_cell = facts.kv_bytes_per_cell(cache_type)
        rng = np.random.default_rng(seed)
        total = warmup + passes
        max_w = max(workers)
        rows: list[BenchRow] = []
        for context in contexts:
            plans = {w: _plan_hogwild(w, context, total, warmup, step_tokens) for w in workers}
            lows = [context - w * total for w in workers] + [p.prompt for p in plans.values()]
            base = min(lows)
            if base < 1:
                raise BackendError(f"context {context} is too small for {max_w} workers and {total} passes")
            prompt = rng.integers(0, facts.n_vocab, context)
            ids = rng.integers(0, facts.n_vocab, (total, max_w))
            open_ctx = _PromptedContexts(model, context, max_w, n_batch, cache_type, threads, prompt[:base], log)
            try:
                for w in workers:
                    rows += _bench_point(w, context, methods, rounds, open_ctx, prompt, base, plans[w], warmup,
                                         passes, step_tokens, ids, facts, per_cell, flash_attn,
                                         rng, log)
            finally:
                open_ctx.close()
        return rows
    finally:
        if owned:
            model.close()


# --------------------------------------------------------------------------------------------------
# what `hogwild bench` (hogwild_local/cli/bench.py) writes beside the rows


def bench_meta(facts: ModelFacts, model_path: Path, *, threads: int, gpu_layers: int, cache_type: str,
               flash_attn: bool, n_batch: int, passes: int, warmup: int, rounds: int, step_tokens: int,
               rpc: Sequence[str] = (),
               load_before: tuple[float, float, float] | None, library: str | None, command: str) -> dict:
    """The facts a bench report and its JSON carry beside the rows: machine, model, settings, KV cell size,
    commit (None outside a checkout), date, ``command`` as typed, library and model paths. Called right after
    the timing (``load_before``: the load average before it, compared with the one now)."""
    load_after = load_average()
    return {
        "machine": machine_name(),
        "model": (f"{facts.name} ({facts.architecture}, {facts.n_params / 1e6:.0f}M params, "
                  f"{facts.size_bytes / (1 << 20):.0f} MiB, {facts.n_layer} layers, {facts.n_head} heads, "
                  f"{facts.n_head_kv} KV heads x {facts.head_dim_k})"),
        "settings": (f"threads {threads}, gpu layers {gpu_layers}" + (f" (rpc {','.join(rpc)})" if rpc else "")
                     + f", cache {cache_type}, flash-attn: stock "
                     f"{'on' if flash_attn else 'off'}, "
                     f"hogwild {'on' if hogwild_flash_attn(cache_type, over_rpc=bool(rpc)) else 'off'}, "
                     f"n_batch {n_batch}, {passes} timed passes after "
                     f"{warmup} warm-up" + (f" x {rounds} alternating rounds" if rounds > 1 else "")
                     + f", step {step_tokens} tokens, headers {HEADER_LENGTHS}"
                     + (f", load average {load_before[0]:.2f} before / {load_after[0]:.2f} after"
                        if load_before is not None and load_after is not None else "")),
        "kv_bytes_per_cell": facts.kv_bytes_per_cell(cache_type),
        "kv_formula": (f"{facts.n_layer} layers x {facts.n_head_kv} KV heads x ({facts.head_dim_k} + "
                       f"{facts.head_dim_v}) x {CACHE_TYPE_BYTES[cache_type]:g} B"),
        "commit": git_commit(),
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": command,
        "library": library,
        "model_path": str(model_path),
        "model_facts": asdict(facts),
    }


def json_row(row: BenchRow) -> dict:
    """A row as JSON-safe values (NaN of skipped points becomes null)."""
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(row).items()}


if __name__ == "__main__":  # `python -m hogwild_local.measure.bench`: the bench where no `hogwild` script is installed
    from hogwild_local.cli.bench import bench_command

    bench_command()
