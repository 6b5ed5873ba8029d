"""Where the llama.cpp library is installed and what it is tied to (a leaf: imports nothing of ours).

The llama-cpp-python version hogwild-local is made for, the cache folder of builds and verdicts, this
CPU's identity, the installed llama_cpp package (found without importing it) and its build marker.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import os
import platform
from pathlib import Path
from typing import Any

import platformdirs

LLAMA_CPP_PYTHON_VERSION = "0.3.36"  # the one home of the version: the patches are made for it
# Written into the llama_cpp package of every wheel we build (packaged by
# scikit-build-core's `wheel.packages`); `llama_cpp/lib/` itself is
# git-ignored in the sdist, so a file put there would not reach the wheel.
BUILD_MARKER = "hogwild_build.json"
# the folder above the hogwild_local package: what a child process needs on its PYTHONPATH
PACKAGE_PARENT = Path(__file__).resolve().parents[2]


def cache_dir() -> Path:
    """Folder holding the sdist, built wheels, build logs and self-test verdicts.

    It is ``backend/`` under $HOGWILD_CACHE_DIR, or under the per-user cache folder of hogwild-local.
    """
    root = os.environ.get("HOGWILD_CACHE_DIR") or platformdirs.user_cache_dir("hogwild-local")
    return Path(root) / "backend"


@functools.cache
def cpu_info() -> str:
    """The model name and instruction-set flags lines of /proc/cpuinfo, once each (every core repeats them);
    where there is no /proc/cpuinfo, ``platform.processor()`` or the machine type."""
    try:
        info = Path("/proc/cpuinfo").read_text()
        lines = [line for line in info.splitlines() if line.startswith(("model name", "flags"))]
        return "\n".join(dict.fromkeys(lines))
    except OSError:
        return platform.processor() or platform.machine()


def cpu_identity() -> str:
    """Model name and instruction-set flags of this CPU, hashed: what a native build and a verdict are tied to."""
    return hashlib.sha256(cpu_info().encode()).hexdigest()[:12]


def installed_package_dir() -> Path | None:
    """Folder of the installed llama_cpp package, found without importing it."""
    importlib.invalidate_caches()
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def library_dir(package_dir: Path) -> Path:
    """Folder the libraries are loaded from: $LLAMA_CPP_LIB_PATH (llama-cpp-python honours it), else lib/."""
    override = os.environ.get("LLAMA_CPP_LIB_PATH")
    return Path(override) if override else package_dir / "lib"


def installed_build_info() -> dict[str, Any] | None:
    """The build marker of the installed llama_cpp, or None (not ours, or absent)."""
    package = installed_package_dir()
    marker = package / BUILD_MARKER if package else None
    if marker is None or not marker.is_file():
        return None
    try:
        return json.loads(marker.read_text())
    except (OSError, ValueError):
        return None
