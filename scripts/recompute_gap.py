"""How far a Hogwild! worker's logits are from recomputing what it sees, on a real model.

Hogwild! never recomputes: a token's keys and values are computed once, in the context its writer saw,
and other workers read them with only their rotary positions changed. A stock model that read the same
tokens in the same order would recompute every token in that order. The gap between the two is the
method's approximation (the tests prove the views path exact against a numpy oracle that models it; this
measures the approximation itself). Two workers solve a problem with the engine's trace on; at a few
passes the script rebuilds what a worker saw (tests/trace_replay.py: each visible cell's token at its
view position), decodes exactly that in a fresh context with Hogwild mode off (stock llama.cpp), and
compares the worker's logits with stock's for the same token.

For scale, the floor is stock against stock: the last view decoded in batches of 512 against the
prompt then one token per decode (batch shape alone changes float rounding).

    .venv/bin/python scripts/recompute_gap.py [-m qwen2.5-coder-1.5b-instruct] [--passes 400] [--checks 6]

Prints, per check, the tokens the worker sees, the largest logit difference, the total variation
distance between the two sampling distributions at temperature 0.6, and whether the top token agrees.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from hogwild_local.engine import Generation, RunConfig  # noqa: E402
from hogwild_local.models import resolve_model  # noqa: E402
from hogwild_local.native import Model, SamplingParams, Token  # noqa: E402
from trace_replay import TraceReplay  # noqa: E402

PROBLEM = ("A school orders 14 boxes of pencils with 36 pencils in each box. It gives 8 pencils to each of "
           "its 45 pupils and keeps the rest for exams. How many pencils are kept for exams?")
TEMPERATURE = 0.6


def stock_logits(model: Model, sequence: list[tuple[int, int]], n_ctx: int, threads: int) -> np.ndarray:
    """Decode (position, token) pairs in order, in batches of 512, in a fresh stock context; the last logits."""
    with model.context(n_ctx=n_ctx, n_seq=1, n_batch=512, cache_type="f16", n_threads=threads) as ctx:
        for i in range(0, len(sequence), 512):
            part = sequence[i:i + 512]
            last = i + len(part) == len(sequence)
            ctx.decode([Token(t, p, (0,), last and j == len(part) - 1) for j, (p, t) in enumerate(part)])
        return ctx.logits(len(part) - 1)


def compare(a: np.ndarray, b: np.ndarray) -> tuple[float, float, bool]:
    """(max |a - b|, total variation of softmax(x / T), same argmax)."""
    pa, pb = (np.exp((x - x.max()) / TEMPERATURE) for x in (a.astype(np.float64), b.astype(np.float64)))
    pa, pb = pa / pa.sum(), pb / pb.sum()
    return float(np.abs(a - b).max()), float(0.5 * np.abs(pa - pb).sum()), bool(a.argmax() == b.argmax())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-m", "--model", default="qwen2.5-coder-1.5b-instruct")
    parser.add_argument("--passes", type=int, default=400)
    parser.add_argument("--checks", type=int, default=6, help="passes to check, evenly spaced, the last included")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    model = Model(resolve_model(args.model))
    cfg = RunConfig(workers=2, budget=args.passes, n_ctx=4096, threads=args.threads, stop_on_answer=False,
                    sampling=SamplingParams(temperature=TEMPERATURE, seed=1))
    gen = Generation(model, PROBLEM, cfg)
    gen.trace = []
    *_, answer = gen.events()
    decodes = [rest for op, *rest in gen.trace if op == "decode"]
    # a pass is a decode that asks logits for the workers' sequences (the finisher's is sequence n)
    passes = [k for k, (batch, _, logits) in enumerate(decodes)
              if any(batch[i].seq_ids[0] < cfg.workers for i in logits)]
    chosen = {passes[round(i * (len(passes) - 1) / max(args.checks - 1, 1))] for i in range(args.checks)}

    print(f"model {model.path.name}, {cfg.workers} workers, f16 cache, {args.threads} threads; "
          f"{answer.passes} passes ({len(passes)} traced), {answer.tokens_generated} tokens generated\n")
    print("| pass | worker | tokens seen | max abs logit diff | TV at T=0.6 | same top token |")
    print("| ---: | ---: | ---: | ---: | ---: | --- |")
    replay = TraceReplay(gen.layout.block_ranges())
    for k, (batch, logits, seen) in enumerate(replay.run(gen.trace)):
        if k not in chosen:
            continue
        for i, got in logits.items():
            if batch[i].seq_ids[0] >= cfg.workers:
                continue
            view = sorted((pos, replay.tokens[cell]) for cell, pos in seen[i].visible.items())
            stock = stock_logits(model, view, cfg.n_ctx, args.threads)
            diff, tv, same = compare(got, stock)
            print(f"| {passes.index(k) + 1} | {batch[i].seq_ids[0]} | {len(view)} | {diff:.3f} | {tv:.4f} | {same} |")

    prompt = len(model.tokenize(gen.prompt_text(), add_special=True))
    with model.context(n_ctx=cfg.n_ctx, n_seq=1, n_batch=512, cache_type="f16", n_threads=args.threads) as ctx:
        ctx.decode([Token(t, p, (0,)) for p, t in view[:prompt]])
        for j, (p, t) in enumerate(view[prompt:]):
            ctx.decode([Token(t, p, (0,), prompt + j == len(view) - 1)])
        diff, tv, same = compare(ctx.logits(0), stock)  # stock: the last view's, in batches of 512
    print(f"\nfloor (stock against stock on the last view: in batches of 512, and the prompt then one token "
          f"per decode): max abs logit diff {diff:.3f}, TV {tv:.4f}, same top token {same}")


if __name__ == "__main__":
    main()
