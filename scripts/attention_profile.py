"""Per-layer attention kernels of one decode pass, from an Nsight Compute CSV.

Where does the extra time of a Hogwild! pass go on the GPU? Profile the benchmark with ncu (CUDA graphs
off, so that every kernel is its own launch) and read the kernels that llama.cpp runs between writing
the new K/V rows (`k_set_rows`) and the next weight product (`quantize_q8_1`): that is a layer's attention.

    GGML_CUDA_DISABLE_GRAPHS=1 ncu --csv --metrics gpu__time_duration.sum \\
        python3 -m hogwild_local.measure.bench --synthetic qwen2.5-1.5b --workers 1 --contexts 1024 \\
        --passes 2 --warmup 1 --methods hogwild > hogwild.csv
    python3 scripts/attention_profile.py stock.csv hogwild.csv

ncu runs each kernel alone with its caches flushed and its clocks fixed, so its durations are longer than
in a normal run: compare the files with each other, not with the benchmark's milliseconds.
"""

from __future__ import annotations

import csv
import re
import statistics
import sys
from collections import Counter

NCU_COLUMNS = {"Kernel Name", "Metric Name", "Metric Value"}


def kernels(path: str) -> list[tuple[str, float]]:
    """(short kernel name, microseconds) in launch order."""
    try:
        with open(path) as f:
            rows = [line for line in f if line.startswith('"')]  # ncu prints the program's own output too
    except OSError as err:
        sys.exit(f"{path}: {err.strerror}")
    table = csv.DictReader(rows)
    if not NCU_COLUMNS <= set(table.fieldnames or ()):
        sys.exit(f"{path}: not an ncu --csv file (no {', '.join(sorted(NCU_COLUMNS))} columns)")
    return [(re.sub(r"\(.*", "", r["Kernel Name"]).removeprefix("void "),
             float(r["Metric Value"].replace(",", "")) / 1000)
            for r in table if r["Metric Name"] == "gpu__time_duration.sum"]


def attention_layers(launches: list[tuple[str, float]]) -> list[list[tuple[str, float]]]:
    """The kernels of each layer's attention: from k_set_rows up to the next quantize_q8_1."""
    layers, i = [], 0
    while i < len(launches):
        if launches[i][0].startswith("k_set_rows"):
            j = i
            while j < len(launches) and not launches[j][0].startswith("quantize"):
                j += 1
            layers.append(launches[i:j])
            i = j
        else:
            i += 1
    return layers


def main(paths: list[str], last: int = 1600) -> None:
    for path in paths:
        layers = attention_layers(kernels(path)[-last:])  # the last passes: decode, not the prompt
        if not layers:
            sys.exit(f"{path}: no attention kernels (not an ncu --csv file with gpu__time_duration.sum?)")
        # the usual sequence: the prompt's pass and the moves' K-shifts launch other ones, once each
        usual = Counter(map(len, layers)).most_common(1)[0][0]
        full = [layer for layer in layers if len(layer) == usual]
        print(f"{path}: {len(layers)} layers, kernels per layer {dict(Counter(map(len, layers)))}")
        for k, (name, _) in enumerate(full[0]):
            print(f"  {statistics.median(layer[k][1] for layer in full):6.2f} us  {name[:70]}")
        print(f"  {statistics.median(sum(t for _, t in layer) for layer in full):6.2f} us  per layer (median)\n")


if __name__ == "__main__":
    main(sys.argv[1:])
