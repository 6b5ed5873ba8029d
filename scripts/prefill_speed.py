"""Prompt and small-batch decode speed of the llama.cpp build that `import llama_cpp` finds, on one GGUF.

Used to price a build choice on one machine (docs/backend.md, "AMX"): run it once per build, in one session.
    python scripts/prefill_speed.py MODEL [--prompt 512] [--batch 1,2,4,8] [--reps 3]   # one JSON line per batch
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from hogwild_local.native import Model, Token


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--prompt", type=int, default=512, help="prompt tokens decoded in one batch")
    parser.add_argument("--batch", default="1,2,4,8", help="tokens per decode pass (one per sequence), comma-separated")
    parser.add_argument("--passes", type=int, default=16)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    with Model(args.model) as model:
        for batch in [int(b) for b in args.batch.split(",")]:
            print(json.dumps(measure(model, args.prompt, batch, args.passes, args.reps)), flush=True)


def measure(model: Model, prompt_tokens: int, batch: int, passes: int, reps: int) -> dict:
    """Best-of-``reps`` prompt speed and decode pass time with ``batch`` sequences over one shared prompt."""
    rng = np.random.default_rng(0)
    with model.context(n_ctx=prompt_tokens + passes + 8, n_seq=batch, n_batch=prompt_tokens) as ctx:
        prompt = rng.integers(model.info.n_vocab, size=prompt_tokens)
        everyone = tuple(range(batch))
        prefill, decode = [], []
        for _ in range(reps):
            ctx.seq_rm(-1)
            start = time.perf_counter()
            ctx.decode([Token(int(t), i, everyone, i == prompt_tokens - 1) for i, t in enumerate(prompt)])
            ctx.logits(prompt_tokens - 1)
            prefill.append(time.perf_counter() - start)
            start = time.perf_counter()
            for k in range(passes):
                ctx.decode([Token(int(rng.integers(model.info.n_vocab)), prompt_tokens + k, (s,), True)
                            for s in everyone])
                ctx.logits(0)
            decode.append((time.perf_counter() - start) / passes)
    return {"batch": batch, "prompt_tok_s": round(prompt_tokens / min(prefill), 1),
            "pass_ms": round(1000 * min(decode), 2)}

if __name__ == "__main__":
    main()
