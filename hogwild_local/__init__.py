"""hogwild-local: Hogwild! Inference for GGUF models over one shared KV cache.

The public Python API, importable from here::

    from hogwild_local import Generation, Model, RunConfig, SamplingParams, resolve_model

The names are loaded on first use (PEP 562), so ``import hogwild_local`` (what every command and
``hogwild --help`` does first) does not load llama.cpp.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS = {
    "Model": "hogwild_local.native.model",
    "SamplingParams": "hogwild_local.native.sampler",
    "Generation": "hogwild_local.engine.generation",
    "RunConfig": "hogwild_local.engine.config",
    "resolve_model": "hogwild_local.models",
}

__all__ = ["Generation", "Model", "RunConfig", "SamplingParams", "__version__", "resolve_model"]

if TYPE_CHECKING:
    from .engine.config import RunConfig
    from .engine.generation import Generation
    from .models import resolve_model
    from .native.model import Model
    from .native.sampler import SamplingParams


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'hogwild_local' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value  # found once, then an ordinary attribute
    return value
