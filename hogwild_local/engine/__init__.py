"""Layer 2: the method. ``config`` (what to run, what is refused), ``layout`` (where every token lives and
who sees it, pure Python), ``views`` (the one bridge Layout -> cache), ``prompts``, ``thinking``, ``events``,
``transcript``, ``worker`` and ``generation`` (the decode loop).

The names callers use are re-exported here, with the ``prompts`` and ``thinking`` modules.
"""

from . import prompts, thinking
from .config import (
    METHODS,
    EngineError,
    Method,
    RunConfig,
    check_config,
    check_model,
    hogwild_flash_attn,
    spare_cells,
)
from .generation import Generation
from .views import enable_views, sync_views

__all__ = [
    "METHODS", "EngineError", "Generation", "Method", "RunConfig", "check_config", "check_model",
    "enable_views", "hogwild_flash_attn", "prompts", "spare_cells", "sync_views", "thinking",
]
