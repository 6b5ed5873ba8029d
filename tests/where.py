"""Where the native tests run, set from the environment (the CUDA run of scripts/gpu_check.sh).

HOGWILD_TEST_GPU_LAYERS=-1 puts every layer and the KV cache on the GPU. There the matrix products
themselves are less exact (stock llama.cpp too, see docs/backend.md), so that run also passes
HOGWILD_TEST_TOLERANCE, measured from stock llama.cpp against the same numpy reference.
HOGWILD_TEST_VOCAB names a GGUF (a vocabulary-only one will do) whose tokenizer the tiny models of
tests/test_engine.py copy, for a machine without SmolLM2.
"""

from __future__ import annotations

import os

GPU_LAYERS = int(os.environ.get("HOGWILD_TEST_GPU_LAYERS", "0"))
VOCAB = os.environ.get("HOGWILD_TEST_VOCAB")


def tolerance(on_cpu: float) -> float:
    """The largest logit error a test accepts: its CPU bound, or the one the environment gives."""
    given = os.environ.get("HOGWILD_TEST_TOLERANCE")
    return float(given) if given else on_cpu
