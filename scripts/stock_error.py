"""Stock llama.cpp (Hogwild mode off) against the numpy reference: the error floor of a device.

Prefill 20 tokens, decode 5 one at a time; prints the max abs logit error per architecture, cache type and
attention path (flash or not), at the tests' head size (HOGWILD_TEST_HEAD_DIM, tests/where.py), with the layers
where tests/where.py puts them (HOGWILD_TEST_RPC: on those servers). Used to set the tolerance of the GPU run of
tests/test_backend.py, and to tell a device's own errors from the patch's (see docs/backend.md).
"""

import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from hogwild_local.native import Token  # noqa: E402
from reference import ReferenceModel, sequential_tokens  # noqa: E402
from tiny_gguf import write_tiny_model  # noqa: E402
from where import HEAD_DIM, load_model  # noqa: E402

tokens = [int(t) for t in np.random.default_rng(0).integers(0, 64, 25)]
with tempfile.TemporaryDirectory() as tmp:
    for arch in ("llama", "qwen2"):
        spec = write_tiny_model(Path(tmp) / f"{arch}.gguf", arch, seed=7, head_dim=HEAD_DIM)
        ref = ReferenceModel(spec)
        cache = ref.new_cache()
        expected = ref.forward(cache, sequential_tokens(tokens))
        with load_model(spec.path) as model:
            for cache_type, flash in ((t, f) for f in (False, True) for t in ("f32", "f16", "bf16")):
                with model.context(n_ctx=256, n_seq=1, n_batch=64, cache_type=cache_type, flash_attn=flash,
                                   n_threads=2) as ctx:
                    ctx.decode([Token(t, i, (0,), True) for i, t in enumerate(tokens[:20])])
                    got = [ctx.logits(i) for i in range(20)]
                    for i in range(20, 25):
                        ctx.decode([Token(tokens[i], i, (0,), True)])
                        got.append(ctx.logits(0))
                err = max(float(np.abs(g - e).max()) for g, e in zip(got, expected, strict=True))
                path = "flash" if flash else "no flash"
                print(f"stock llama.cpp vs numpy: {arch} {cache_type} {path}: max abs error {err:.3g}")
