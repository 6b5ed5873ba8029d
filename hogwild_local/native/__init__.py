"""Layer 1: the patched llama.cpp, typed (through llama-cpp-python's ctypes layer). It knows llama.cpp, not
the method; no click, no textual.

The names most callers need are re-exported here; submodules: ``install`` (version, cache, CPU identity),
``library`` (loading, log, doctor's facts), ``verdict`` (the self-test verdicts), ``model``, ``context``,
``sampler``, ``synthetic`` (random-weight GGUFs), ``selftest`` (the child), ``build`` (build-backend).
"""

from .context import CACHE_TYPES, Context, Token, batches
from .errors import BackendError, BuildError, LibraryError, UnpatchedLibraryError
from .library import clear_log, last_log_error, library_info, recent_log
from .model import Model, ModelInfo, RopeType, quantize_file
from .sampler import Sampler, SamplingParams

__all__ = [
    "CACHE_TYPES", "BackendError", "BuildError", "Context", "LibraryError", "Model", "ModelInfo", "RopeType",
    "Sampler", "SamplingParams", "Token", "UnpatchedLibraryError", "batches", "clear_log", "last_log_error",
    "library_info", "quantize_file", "recent_log",
]
