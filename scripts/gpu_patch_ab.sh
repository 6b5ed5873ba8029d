#!/usr/bin/env bash
# On the GPU machine: the speed of one patch of the series, in one run. Builds the bundle's series without
# PATCH (patch -R), benches, applies PATCH again, rebuilds incrementally (the build folder is kept: ~40 s
# instead of ~380 s) and benches again with the same options, so both tables come from one machine.
# A tree that `bash scripts/gpu_check.sh build` left on this machine (the whole series) is reused.
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

[[ -d /tmp/hw-build ]] || OUT=/tmp/hw-first-build bash scripts/gpu_check.sh build > /dev/null
src=$(dirname "$(find /tmp/hw-src -maxdepth 2 -name pyproject.toml | head -1)")

build() {  # $1: without|with
    OUT=$OUT/$1 bash scripts/gpu_check.sh rebuild > /dev/null
    local rc=$?
    mv "$OUT/$1/build.log" "$OUT/build_$1.log"
    echo "build $1 $(basename "$patch_file"): rc=$rc, $(cat "$OUT/$1/summary.txt" | head -1)" | tee -a "$OUT/summary.txt"
    rm -rf "${OUT:?}/$1"
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
