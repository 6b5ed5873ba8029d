#!/usr/bin/env bash
# On the GPU machine: the speed of one patch of the series, in one run. Builds the bundle's series without
# PATCH (patch -R), benches, applies PATCH again, rebuilds incrementally (the build folder is kept: ~30 s
# instead of ~280 s) and benches again with the same options, so both tables come from one machine.
#   .carry/ as for scripts/gpu_check.sh (the bundle holds the whole series, PATCH included)
#   usage: bash scripts/gpu_patch_ab.sh hogwild_local/patches/0009-....patch --synthetic qwen2.5-7b ... --flash-attn
#   results under $OUT: build_{without,with}.log, bench_{without,with}.{log,json}, summary.txt
set -uo pipefail
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
patch_file=$(realpath "$1"); shift
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD:$PWD/tests
# the image's numpy ships its own libstdc++; loaded before llama.cpp's, it crashes llama.cpp's iostreams
export LD_PRELOAD=/lib/x86_64-linux-gnu/libstdc++.so.6

python3 -m pip install -q --no-deps .carry/*.whl
rm -rf /tmp/hw-src /tmp/hw-build && mkdir -p /tmp/hw-src && tar xzf .carry/*.tar.gz -C /tmp/hw-src
src=$(dirname "$(find /tmp/hw-src -maxdepth 2 -name pyproject.toml | head -1)")

build() {  # $1: without|with
    local start=$(date +%s)
    CMAKE_ARGS="-DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=90 -DLLAVA_BUILD=OFF" CMAKE_BUILD_PARALLEL_LEVEL=16 \
        python3 -m pip install -q --no-build-isolation --no-deps --force-reinstall -C build-dir=/tmp/hw-build \
        "$src" > "$OUT/build_$1.log" 2>&1
    local rc=$?
    echo "build $1 $(basename "$patch_file"): rc=$rc in $(( $(date +%s) - start )) s" | tee -a "$OUT/summary.txt"
    return $rc
}
bench() {  # $1: without|with; the rest: bench options
    local tag=$1; shift
    python3 -m hogwild_local.measure.bench "$@" --json "$OUT/bench_$tag.json" > "$OUT/bench_$tag.log" 2>&1
    echo "bench $tag: rc=$?" | tee -a "$OUT/summary.txt"
    grep -E "^(stock|hogwild) " "$OUT/bench_$tag.log"
}

(cd "$src/vendor/llama.cpp" && patch -R -p1 -s < "$patch_file") || { echo "PATCH does not revert on the bundle"; exit 1; }
build without && bench without "$@" || exit 1
(cd "$src/vendor/llama.cpp" && patch -p1 -s < "$patch_file") || { echo "PATCH does not apply again"; exit 1; }
build with && bench with "$@"
