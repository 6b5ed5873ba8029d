"""Hogwild! pass time with the model's layers local, or split over 1 or 2 `hogwild rpc-server` processes on
loopback: one run, every placement benched in turn by `hogwild bench` (same model, W, cells), and one table of
ratios against the all-local pass. What it prices is the RPC backend's own cost (a graph sent and run per pass,
activations copied over TCP between the devices), not a network's.

    python scripts/rpc_bench.py [-m smollm2-135m] [--workers 1,2,4] [--contexts 1024] [--passes 16] [--rounds 2]

Placements: local (every layer here); 1 server (the last half of the layers there); 2 servers (a third here,
a third on each, --tensor-split 1,1); 2 servers, all layers (-ngl -1).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from hogwild_local.measure.loopback import HOGWILD, rpc_servers
from hogwild_local.models import resolve_model
from hogwild_local.native import Model


def bench(model: str, placement: list[str], args: argparse.Namespace) -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "bench.json"
        command = [*HOGWILD, "bench", "-m", model, "--methods", "hogwild", "--workers", args.workers, "--contexts",
                   args.contexts, "--passes", str(args.passes), "--rounds", str(args.rounds), "--threads",
                   str(args.threads), "--json", str(out), *placement]
        print("+", " ".join(command[2:]), file=sys.stderr, flush=True)
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        return json.loads(out.read_text())["rows"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-m", "--model", default="smollm2-135m")
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--contexts", default="1024")
    parser.add_argument("--passes", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="threads of the client and of each server")
    args = parser.parse_args()
    path = str(resolve_model(args.model))
    with Model(path) as loaded:
        n_layer = loaded.info.n_layer
    with rpc_servers(2, threads=args.threads) as (a, b):
        third = n_layer // 3
        placements = {
            "local": [],
            f"1 server ({n_layer // 2} of {n_layer} layers)": ["--rpc", a, "-ngl", str(n_layer // 2 + 1)],
            f"2 servers ({2 * third} layers, 1:1)": ["--rpc", f"{a},{b}", "-ngl", str(2 * third + 1),
                                                      "--tensor-split", "1,1"],
            "2 servers (all layers)": ["--rpc", f"{a},{b}", "-ngl", "-1", "--tensor-split", "1,1"],
        }
        results = {name: bench(path, placement, args) for name, placement in placements.items()}
    local = {(r["workers"], r["context"]): r["ms_per_pass"] for r in results["local"]}
    print(f"| placement | {' | '.join(f'W={w} C={c}' for w, c in local)} |")
    print(f"|:--|{'--:|' * len(local)}")
    for name, rows in results.items():
        cells = []
        for row in rows:
            base = local[row["workers"], row["context"]]
            cells.append(f"{row['ms_per_pass']:.1f} ms ({row['ms_per_pass'] / base:.2f}x)")
        print(f"| {name} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
