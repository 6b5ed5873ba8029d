#!/usr/bin/env bash
# On the GPU machine (no network): build the patched backend for CUDA from a --bundle tarball, run the
# backend and engine correctness tests with every layer on the GPU, then the speed benchmark on synthetic weights.
#   .carry/ holds: the bundle (hogwild build-backend --bundle .carry) and wheels of diskcache, platformdirs, gguf,
#   jinja2 and markupsafe (the device's python's cp tag: pip download --only-binary=:all: --python-version 3.12
#   --platform manylinux2014_x86_64 -d .carry jinja2 markupsafe), and SmolLM2's tokenizer alone for the engine's
#   reference tests (no weights; written here with
#   cd tests && ../.venv/bin/python -c "from tiny_gguf import write_vocab_only as w; from hogwild_local.models import
#   resolve_model as r; w(r('smollm2-135m'), '../.carry/vocab-smollm2.gguf')")
#   usage: bash scripts/gpu_check.sh [build|rebuild|test|rpc|profile|bench|all]   (results under $OUT)
#   profile BENCH-OPTIONS: Nsight Compute's kernels per attention layer, stock and hogwild (scripts/attention_profile.py)
#   build: the bundle extracted to /tmp/hw-src and built in /tmp/hw-build; rebuild: that tree again, incrementally
#   (~40 s instead of ~380 s after an edit of the tree, as scripts/gpu_patch_ab.sh does)
#   rpc: the GPU lent through `hogwild rpc-server` to a client that sees no GPU of its own (the reference suites)
set -uo pipefail
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
step=${1:-all}
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD:$PWD/tests
# the image's numpy ships its own libstdc++; loaded before llama.cpp's, it crashes llama.cpp's iostreams
export LD_PRELOAD=/lib/x86_64-linux-gnu/libstdc++.so.6
# the tiny test models' heads at a size CUDA's flash kernels take (tests/where.py: with 16, flash ran on the CPU)
export HOGWILD_TEST_HEAD_DIM=${HOGWILD_TEST_HEAD_DIM:-128}

if [[ $step == build || $step == all ]]; then
    python3 -m pip install -q --no-deps .carry/*.whl
    rm -rf /tmp/hw-src /tmp/hw-build && mkdir -p /tmp/hw-src && tar xzf .carry/*.tar.gz -C /tmp/hw-src
fi

if [[ $step == build || $step == rebuild || $step == all ]]; then
    src=$(dirname "$(find /tmp/hw-src -maxdepth 2 -name pyproject.toml | head -1)")
    start=$(date +%s)
    CMAKE_ARGS="-DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=90 -DGGML_RPC=ON -DLLAVA_BUILD=OFF" CMAKE_BUILD_PARALLEL_LEVEL=16 \
        python3 -m pip install -q --no-build-isolation --no-deps --force-reinstall -C build-dir=/tmp/hw-build "$src" \
        > "$OUT/build.log" 2>&1
    rc=$?
    echo "$step rc=$rc in $(( $(date +%s) - start )) s" | tee -a "$OUT/summary.txt"
    [[ $rc == 0 ]] || { tail -20 "$OUT/build.log"; exit 1; }
    python3 -c "import llama_cpp; print('gpu offload:', llama_cpp.llama_supports_gpu_offload())" | tee -a "$OUT/summary.txt"
fi

if [[ $step == test || $step == all ]]; then
    nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee -a "$OUT/summary.txt"
    HOGWILD_TEST_GPU_LAYERS=-1 python3 scripts/stock_error.py 2>/dev/null | tee -a "$OUT/summary.txt"
    HOGWILD_TEST_GPU_LAYERS=-1 HOGWILD_TEST_TOLERANCE=${HOGWILD_TEST_TOLERANCE:-0.05} \
        python3 -m pytest tests/test_backend.py -q -s -p no:cacheprovider > "$OUT/cuda_tests.log" 2>&1
    echo "tests rc=$?" | tee -a "$OUT/summary.txt"
    # the model families (qwen3, llama3, YaRN, LongRoPE, partial rotary, ...) against the reference, and the refusals
    HOGWILD_TEST_GPU_LAYERS=-1 HOGWILD_TEST_TOLERANCE=${HOGWILD_TEST_TOLERANCE:-0.05} \
        python3 -m pytest tests/test_families.py -q -s -p no:cacheprovider >> "$OUT/cuda_tests.log" 2>&1
    echo "family tests rc=$?" | tee -a "$OUT/summary.txt"
    # the engine's own runs (shared prompt, step moves, notes, finisher, cut and dropped steps) on the reference
    vocab=$(ls .carry/vocab-*.gguf 2>/dev/null | head -1)
    if [[ -n $vocab ]]; then
        HOGWILD_TEST_GPU_LAYERS=-1 HOGWILD_TEST_TOLERANCE=${HOGWILD_TEST_TOLERANCE:-0.05} HOGWILD_TEST_VOCAB=$vocab \
            python3 -m pytest tests/test_engine.py -q -s -p no:cacheprovider -k "match_reference or cut_and_dropped" \
            >> "$OUT/cuda_tests.log" 2>&1
        echo "engine tests rc=$?" | tee -a "$OUT/summary.txt"
    else
        echo "engine tests skipped: no .carry/vocab-*.gguf (see the top of this script)" | tee -a "$OUT/summary.txt"
    fi
    grep -E "max abs error|passed|failed" "$OUT/cuda_tests.log" | tee -a "$OUT/summary.txt"
fi

if [[ $step == rpc || $step == all ]]; then
    python3 -m hogwild_local rpc-server --port 50052 > "$OUT/rpc_server.log" 2>&1 &
    server=$!
    sleep 5
    vocab=$(ls .carry/vocab-*.gguf 2>/dev/null | head -1)
    CUDA_VISIBLE_DEVICES= HOGWILD_TEST_RPC=127.0.0.1:50052 HOGWILD_TEST_GPU_LAYERS=-1 HOGWILD_TEST_VOCAB=$vocab \
        HOGWILD_TEST_TOLERANCE=${HOGWILD_TEST_TOLERANCE:-0.05} python3 -m pytest tests/test_backend.py tests/test_engine.py \
        -q -s -p no:cacheprovider -k "lockstep_workers_match_reference or match_reference" > "$OUT/rpc_tests.log" 2>&1
    echo "rpc tests (CUDA lent by rpc-server, client without a GPU) rc=$?" | tee -a "$OUT/summary.txt"
    kill $server
    grep -E "Devices|CUDA|passed|failed" "$OUT/rpc_server.log" "$OUT/rpc_tests.log" | tail -8 | tee -a "$OUT/summary.txt"
    grep "max abs error" "$OUT/rpc_tests.log" | sort -t: -k3 -g | tail -3 | tee -a "$OUT/summary.txt"
fi

if [[ $step == profile ]]; then
    # kernels per layer's attention, stock against hogwild, for the bench options given (one W, one context)
    shift
    for method in stock hogwild; do
        GGML_CUDA_DISABLE_GRAPHS=1 ncu --csv --clock-control none --metrics gpu__time_duration.sum \
            -k regex:'set_rows|cpy|rope|flash|quantize_q8_1' python3 -m hogwild_local.measure.bench "$@" \
            --passes 2 --warmup 1 --methods $method > "$OUT/ncu_$method.csv" 2> "$OUT/ncu_$method.err"
    done
    python3 scripts/attention_profile.py "$OUT/ncu_stock.csv" "$OUT/ncu_hogwild.csv" | tee -a "$OUT/profile.txt"
    rm -f "$OUT"/ncu_*.csv  # 2-6 MB each
fi

if [[ $step == bench || $step == all ]]; then
    shift || true
    python3 -m hogwild_local.measure.bench "$@" 2>&1 | tee "$OUT/bench.log"
fi
