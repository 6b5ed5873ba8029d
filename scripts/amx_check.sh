#!/usr/bin/env bash
# On an x86-64 machine whose CPU has AMX (the GPU machine's Xeon; no network): build the CPU backend from a
# --bundle tarball twice, as stock llama.cpp does (GGML_NATIVE=ON, which compiles ggml's AMX path in) and as
# `hogwild build-backend` does (native, AMX left out), self-test both, time both if both pass, and run the
# backend and self-test suites on ours.
#   .carry/ holds: the bundle (hogwild build-backend --bundle .carry) and wheels of diskcache, platformdirs, gguf
#   usage: bash scripts/amx_check.sh     (results under $OUT)
set -uo pipefail
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
log() { echo "$@" | tee -a "$OUT/summary.txt"; }
export PYTHONUNBUFFERED=1 HOGWILD_CACHE_DIR=/tmp/hw-cache CMAKE_BUILD_PARALLEL_LEVEL=$(nproc)
# the image's numpy ships its own libstdc++; loaded before llama.cpp's, it crashes llama.cpp's iostreams
export LD_PRELOAD=/lib/x86_64-linux-gnu/libstdc++.so.6
python3 -m pip install -q --no-deps --target /tmp/site .carry/*.whl
export PYTHONPATH=$PWD:$PWD/tests:/tmp/site
log "$(grep -m1 'model name' /proc/cpuinfo); $(grep -o -w 'amx_tile\|amx_int8\|amx_bf16' /proc/cpuinfo | sort -u | tr '\n' ' ')"

rm -rf /tmp/hw-src && mkdir -p /tmp/hw-src /tmp/stock && tar xzf .carry/*.tar.gz -C /tmp/hw-src
src=$(dirname "$(find /tmp/hw-src -maxdepth 2 -name pyproject.toml | head -1)")
start=$(date +%s)
CMAKE_ARGS="-DGGML_NATIVE=ON -DLLAVA_BUILD=OFF" python3 -m pip wheel -q --no-build-isolation --no-deps \
    -w /tmp/stock "$src" > "$OUT/build_stock.log" 2>&1
log "stock native build rc=$? in $(( $(date +%s) - start )) s"
mkdir -p /tmp/stock/unpacked && (cd /tmp/stock/unpacked && python3 -m zipfile -e /tmp/stock/*.whl .)
log "stock (AMX compiled in): $(python3 -c "
from pathlib import Path; from hogwild_local.native.verdict import run_self_test
print(run_self_test([Path('/tmp/stock/unpacked')], lib_dir=Path('/tmp/stock/unpacked/llama_cpp/lib')))")"

start=$(date +%s)
python3 -m hogwild_local build-backend --sdist .carry/*.tar.gz > "$OUT/build_ours.log" 2>&1
log "hogwild build-backend rc=$? in $(( $(date +%s) - start )) s: $(tail -1 "$OUT/build_ours.log")"
python3 -m hogwild_local doctor | tee -a "$OUT/summary.txt"

python3 -c "from hogwild_local.measure.synthetic import synthetic_model as s; print(s('qwen2.5-1.5b', layers=8, out_dir='/tmp/syn'))" \
    > /tmp/syn.txt 2>&1 && model=$(tail -1 /tmp/syn.txt)
log "speed, synthetic Qwen2.5-1.5B shape, 8 of 28 layers, Q4_K_M, $(nproc) threads: 512-token prompt, then passes of B tokens"
for build in ours stock ours stock; do
    extra=$([[ $build == stock ]] && echo /tmp/stock/unpacked: || true)
    PYTHONPATH=$extra$PYTHONPATH python3 scripts/prefill_speed.py "$model" --reps 5 2>&1 | sed "s/^/$build: /" \
        | tee -a "$OUT/summary.txt"
done

# (the tui case needs textual, which that image lacks)
python3 -m pytest tests/test_backend.py tests/test_library.py -q -p no:cacheprovider \
    --deselect "tests/test_library.py::test_every_command_refuses_a_crashing_library_in_one_line[command1]" \
    > "$OUT/tests.log" 2>&1
log "backend + self-test suites rc=$?: $(tail -1 "$OUT/tests.log")"
