"""Where the native tests run, set from the environment (the CUDA run of scripts/gpu_check.sh).

HOGWILD_TEST_GPU_LAYERS=-1 puts every layer and the KV cache on the GPU. There the matrix products
themselves are less exact (stock llama.cpp too, see docs/backend.md), so that run also passes
HOGWILD_TEST_TOLERANCE, measured from stock llama.cpp against the same numpy reference.
HOGWILD_TEST_RPC=HOST:PORT[,...] adds those `hogwild rpc-server` processes' devices first (tests/test_rpc.py
starts them and runs these suites in a child with -ngl 1 or -1, layers split between here and there).
HOGWILD_TEST_HEAD_DIM=128 widens the heads of the tiny models (16 wide; 8 in tests/test_engine.py) to a size
GPU flash-attention kernels take: CUDA has none for 16, so with flash attention on, ggml's scheduler runs that
op on the CPU (an RPC server, which claims every op, aborts instead), and the GPU's own kernel goes untested.
HOGWILD_TEST_VOCAB names a GGUF (a vocabulary-only one will do) whose tokenizer the tiny models of
tests/test_engine.py copy, for a machine without SmolLM2.
"""

from __future__ import annotations

import os

from hogwild_local.native import Model, recent_log

GPU_LAYERS = int(os.environ.get("HOGWILD_TEST_GPU_LAYERS", "0"))
RPC = tuple(part for part in os.environ.get("HOGWILD_TEST_RPC", "").split(",") if part)
VOCAB = os.environ.get("HOGWILD_TEST_VOCAB")
HEAD_DIM = int(os.environ.get("HOGWILD_TEST_HEAD_DIM", "0"))


def load_model(path: str | os.PathLike) -> Model:
    """A native test's model, its layers where the environment says (with RPC servers: checked there)."""
    model = Model(path, n_gpu_layers=GPU_LAYERS, rpc=RPC)
    for endpoint in RPC:  # llama.cpp logs each device's share of the weights as its load ends
        assert any(f"[{endpoint}] model buffer size" in line for line in recent_log()), f"no layer on {endpoint}"
    return model


def tolerance(on_cpu: float) -> float:
    """The largest logit error a test accepts: its CPU bound, or the one the environment gives."""
    given = os.environ.get("HOGWILD_TEST_TOLERANCE")
    return float(given) if given else on_cpu
