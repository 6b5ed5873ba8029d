"""How far Hogwild logits are from the float64 reference as the context grows (the table in docs/backend.md).

Runs the lock-step scenario of tests/lockstep.py (W workers, forced headers, steps joining the history) on a
tiny random model, with blocks of n_ctx positions in a cache of n_ctx cells, so the step blocks start just
after n_ctx; prints the max abs logit error per cache type and n_ctx as a markdown table. Run it against the
library under test:

    LLAMA_CPP_LIB_PATH=/path/to/build/bin .venv/bin/python scripts/precision_table.py --workers 3
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from hogwild_local.engine.layout import LayoutKind  # noqa: E402
from hogwild_local.native import Model  # noqa: E402
from lockstep import run_lockstep  # noqa: E402
from tiny_gguf import write_tiny_model  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--arch", choices=["llama", "qwen2"], default="llama")
    parser.add_argument("--ctx", type=int, nargs="+", default=[1024, 8192, 32768, 131072])
    parser.add_argument("--passes", type=int, default=14)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        spec = write_tiny_model(Path(tmp) / f"{args.arch}.gguf", args.arch, seed=7)
        rows: dict[str, list[str]] = {}
        starts: list[str] = []
        with Model(spec.path) as model:
            for n_ctx in args.ctx:
                for cache_type in ("f32", "f16"):
                    result = run_lockstep(spec, model, cache_type, LayoutKind.COMBINED, n_workers=args.workers,
                                          capacity=n_ctx, n_ctx=n_ctx, passes=args.passes)
                    rows.setdefault(cache_type, []).append(f"{result.worst:.2g}")
                starts.append(str(result.layout.steps[0].start))
    print(f"{args.arch}, W={args.workers}, {args.passes} passes; max abs logit error vs float64")
    print("| first step block starts at | " + " | ".join(starts) + " |")
    print("|---|" + "--:|" * len(starts))
    for cache_type, cells in rows.items():
        print(f"| {cache_type} cache | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
