"""The backend's self-test, run in a child process by ``verdict.run_self_test``.

It writes a tiny random llama model, quantizes it with the library under test into each weight type
whose CPU matmul kernels differ (F16, Q4_0, Q8_0 and Q4_K: the types ggml repacks or hands to AMX), and
decodes with each: a 40-token prompt (the batched matmul path), then passes of one token for each of
three workers with Hogwild views on (the small-batch path and the patch's attention graph). It prints
one JSON line, ``{"ok": ..., "detail": ...}``; an illegal instruction or a crash shows as the child's
signal instead, which the parent reports.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from .context import Token
from .errors import BackendError
from .model import Model, quantize_file
from .synthetic import write_synthetic_model

WEIGHT_TYPES = ("F16", "Q4_0", "Q8_0", "Q4_K_S")
PROMPT_TOKENS = 40
WORKERS = 3
PASSES = 4
BLOCK_CELLS = 64  # canonical positions of each worker's block; a view gives each block 8 slots


def decode_check(path: Path) -> str | None:
    """Decode the prompt and PASSES Hogwild passes with the model at ``path``; None if every logit is finite,
    else what was wrong."""
    rng = np.random.default_rng(0)
    with Model(path) as model, model.context(n_ctx=1024, n_seq=WORKERS, n_batch=64, cache_type="f16") as ctx:
        everyone = tuple(range(WORKERS))
        prompt = rng.integers(model.info.n_vocab, size=PROMPT_TOKENS)
        ctx.decode([Token(int(t), i, everyone, i == PROMPT_TOKENS - 1) for i, t in enumerate(prompt)])
        if not np.isfinite(ctx.logits(PROMPT_TOKENS - 1)).all():
            return "non-finite logits after the prompt"
        # worker w writes block w+1 at canonical PROMPT_TOKENS + BLOCK_CELLS*(w+1)...; each worker sees
        # the others' blocks right after the prompt and its own last
        starts = [PROMPT_TOKENS + BLOCK_CELLS * (w + 1) for w in range(WORKERS)]
        ctx.hogwild_enable(WORKERS + 1)
        for w, p0 in enumerate(starts):
            ctx.hogwild_set_block(w + 1, p0, p0 + BLOCK_CELLS)
        for viewer in range(WORKERS):
            order = [w for w in range(WORKERS) if w != viewer] + [viewer]
            deltas = [0] * (WORKERS + 1)
            for slot, w in enumerate(order):
                deltas[w + 1] = PROMPT_TOKENS + 8 * slot - starts[w]
            ctx.hogwild_set_deltas(viewer, deltas)
        for k in range(PASSES):
            tokens = [Token(int(rng.integers(model.info.n_vocab)), starts[w] + k,
                            (w, *[o for o in everyone if o != w]), True) for w in range(WORKERS)]
            ctx.decode(tokens)
            if not all(np.isfinite(ctx.logits(i)).all() for i in range(WORKERS)):
                return f"non-finite logits in Hogwild pass {k + 1}"
    return None


def main(scratch: Path) -> int:
    """Run the checks with the tiny models in ``scratch`` (the parent's folder, which it removes) and print
    the verdict line."""
    try:
        f16 = write_synthetic_model(scratch / "tiny-f16.gguf", "tiny")
        for weight_type in WEIGHT_TYPES:
            path = f16
            if weight_type != "F16":
                path = scratch / f"tiny-{weight_type.lower()}.gguf"
                quantize_file(f16, path, weight_type, threads=1)
            problem = decode_check(path)
            if problem:
                print(json.dumps({"ok": False, "detail": f"{weight_type} weights: {problem}"}))
                return 0
    except BackendError as err:
        print(json.dumps({"ok": False, "detail": str(err)}))
        return 0
    passes = f"a {PROMPT_TOKENS}-token prompt and {PASSES} passes of {WORKERS} Hogwild workers"
    print(json.dumps({"ok": True, "detail": f"decoded {passes} with {', '.join(WEIGHT_TYPES)} weights"}))
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
