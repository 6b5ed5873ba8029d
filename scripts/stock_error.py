"""Stock llama.cpp (Hogwild mode off) against the numpy reference: the error floor of a device.

Prefill 20 tokens, decode 5 one at a time; prints the max abs logit error per architecture and cache
type. Used to set the tolerance of the GPU run of tests/test_backend.py (see docs/backend.md).
"""

import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from hogwild_local.native import Model, Token  # noqa: E402
from reference import ReferenceModel, sequential_tokens  # noqa: E402
from tiny_gguf import write_tiny_model  # noqa: E402
from where import GPU_LAYERS  # noqa: E402

tokens = [int(t) for t in np.random.default_rng(0).integers(0, 64, 25)]
with tempfile.TemporaryDirectory() as tmp:
    for arch in ("llama", "qwen2"):
        spec = write_tiny_model(Path(tmp) / f"{arch}.gguf", arch, seed=7)
        ref = ReferenceModel(spec)
        cache = ref.new_cache()
        expected = ref.forward(cache, sequential_tokens(tokens))
        with Model(spec.path, n_gpu_layers=GPU_LAYERS) as model:
            for cache_type in ("f32", "f16"):
                with model.context(n_ctx=256, n_seq=1, n_batch=64, cache_type=cache_type, n_threads=2) as ctx:
                    ctx.decode([Token(t, i, (0,), True) for i, t in enumerate(tokens[:20])])
                    got = [ctx.logits(i) for i in range(20)]
                    for i in range(20, 25):
                        ctx.decode([Token(tokens[i], i, (0,), True)])
                        got.append(ctx.logits(0))
                err = max(float(np.abs(g - e).max()) for g, e in zip(got, expected, strict=True))
                print(f"stock llama.cpp vs numpy: {arch} {cache_type}: max abs error {err:.3g}")
