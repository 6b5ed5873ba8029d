"""The patched libllama, loaded once: its Hogwild symbols bound, its log kept, and the facts `doctor` prints.

``load()`` is the only place that imports llama_cpp for running models, and only after a child process
ran the self-test on the library (``native/verdict.py``).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import threading
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import LibraryError, UnpatchedLibraryError
from .install import LLAMA_CPP_PYTHON_VERSION, installed_build_info
from .verdict import is_shared_library, require_working_library

FIX_HINT = "run: hogwild build-backend"

_i32, _p = ctypes.c_int32, ctypes.c_void_p
# the functions of our patch, with their argument types (each returns int32); the first one names a
# library built without the patch in the error
HOGWILD_SIGNATURES: dict[str, list] = {
    "llama_memory_hogwild_enable": [_p, _i32],
    "llama_memory_hogwild_set_block": [_p, _i32, _i32, _i32],
    "llama_memory_hogwild_set_deltas": [_p, _i32, ctypes.POINTER(_i32), _i32],
    "llama_memory_hogwild_get_block": [_p, _i32],
    "llama_memory_n_cells_used": [_p],
    "llama_memory_n_cells_total": [_p],
}
HOGWILD_SYMBOLS = tuple(HOGWILD_SIGNATURES)

_log_lines: deque[str] = deque(maxlen=64)
_log_lock = threading.Lock()
_lib = None
_llama = None
_log_callback = None


def _quiet_openmp() -> None:
    """Idle OpenMP threads spin by default: beside a UI thread or on a busy laptop that starves decoding
    (a 10x slowdown was measured on 2 shared cores). OpenMP reads this when the library loads."""
    os.environ.setdefault("OMP_WAIT_POLICY", "passive")


def load() -> tuple[Any, ctypes.CDLL]:
    """Import llama_cpp once, check the patch, bind our symbols, and route llama.cpp's log to a buffer.

    Returns (the llama_cpp module, its loaded library); raises UnpatchedLibraryError with the fix.
    """
    global _lib, _llama
    if _lib is not None:
        return _llama, _lib
    _quiet_openmp()
    try:
        require_working_library()  # in a child process: a library that dies here must not take us with it
    except LibraryError as err:
        raise UnpatchedLibraryError(str(err)) from None
    try:
        import llama_cpp  # noqa: PLC0415 - imported lazily so that `hogwild --help` works without it
    except Exception as err:  # a missing package, or a library that fails to load
        raise UnpatchedLibraryError(f"llama-cpp-python could not be imported ({err}); {FIX_HINT}") from None
    version = getattr(llama_cpp, "__version__", "?")
    if version != LLAMA_CPP_PYTHON_VERSION:
        raise UnpatchedLibraryError(
            f"llama-cpp-python {version} is installed but hogwild-local needs {LLAMA_CPP_PYTHON_VERSION}; {FIX_HINT}"
        )
    lib = llama_cpp.llama_cpp._lib  # read at call time: a test swaps it before the first load
    missing = [name for name in HOGWILD_SYMBOLS if not hasattr(lib, name)]
    if missing:
        raise UnpatchedLibraryError(
            f"this llama-cpp-python was built without the Hogwild patch (no {missing[0]}); {FIX_HINT}"
        )
    for name, argtypes in HOGWILD_SIGNATURES.items():
        fn = getattr(lib, name)
        fn.argtypes = argtypes
        fn.restype = _i32
    _install_log_callback(llama_cpp)
    _install_abort_hook(Path(lib._name).parent)
    llama_cpp.llama_backend_init()
    _llama, _lib = llama_cpp, lib
    return _llama, _lib


def _install_log_callback(llama_cpp) -> None:
    """Keep llama.cpp's log lines in memory (errors are quoted in exceptions); print them if HOGWILD_VERBOSE."""
    verbose = os.environ.get("HOGWILD_VERBOSE", "") not in ("", "0")

    @llama_cpp.llama_log_callback
    def callback(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
        line = text.decode("utf-8", errors="replace")
        with _log_lock:
            _log_lines.append(line)
        if verbose:
            os.write(2, text)

    global _log_callback
    _log_callback = callback  # keep a reference: ctypes callbacks die with their Python object
    llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))


# --------------------------------------------------------------------------------------------------
# ggml's own libraries, and its aborts

_GGML_SIGNATURES: dict[str, tuple[list, Any]] = {
    "ggml_backend_dev_count": ([], ctypes.c_size_t),
    "ggml_backend_dev_get": ([ctypes.c_size_t], _p),
    "ggml_backend_dev_by_name": ([ctypes.c_char_p], _p),
    "ggml_backend_dev_by_type": ([ctypes.c_int], _p),
    "ggml_backend_dev_type": ([_p], ctypes.c_int),
    "ggml_backend_dev_name": ([_p], ctypes.c_char_p),
    "ggml_backend_dev_description": ([_p], ctypes.c_char_p),
    "ggml_backend_register": ([_p], None),
    # libggml-rpc
    "ggml_backend_rpc_add_server": ([ctypes.c_char_p], _p),
    "ggml_backend_rpc_start_server": ([ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_size_t,
                                       ctypes.POINTER(_p)], None),
}
_ggml_libs: dict[str, ctypes.CDLL] = {}
DEV_CPU, DEV_GPU, DEV_IGPU = 0, 1, 2  # ggml_backend_dev_type


def ggml_library(name: str = "ggml", lib_dir: Path | None = None) -> ctypes.CDLL:
    """``lib{name}`` from the folder of the loaded libllama (the copy already in the process: one backend
    registry), with the ggml functions the native layer calls bound. Needs :func:`load` first."""
    if name not in _ggml_libs:
        lib_dir = lib_dir or Path(load()[1]._name).parent
        found = sorted(p for p in lib_dir.glob(f"lib{name}.*") if is_shared_library(p.name))
        if not found:
            raise UnpatchedLibraryError(f"lib{name} is missing from {lib_dir}; {FIX_HINT}")
        lib = _already_loaded(found) or ctypes.CDLL(str(found[0]))
        for symbol, (argtypes, restype) in _GGML_SIGNATURES.items():
            if hasattr(lib, symbol):
                getattr(lib, symbol).argtypes, getattr(lib, symbol).restype = argtypes, restype
        _ggml_libs[name] = lib
    return _ggml_libs[name]


def _already_loaded(paths: list[Path]) -> ctypes.CDLL | None:
    """The one of ``paths`` that the dynamic loader already holds. The loader keeps each name it loaded by
    (``libggml.so.0``, found through libllama), and loading a symlink of it (``libggml.so``) maps a second
    copy with a second backend registry, where devices registered there are invisible to libllama."""
    no_load = getattr(os, "RTLD_NOLOAD", None)
    if no_load is None:
        return None
    for path in paths:
        try:
            return ctypes.CDLL(str(path), mode=no_load | ctypes.RTLD_GLOBAL)
        except OSError:
            continue
    return None


_AbortCallback = ctypes.CFUNCTYPE(None, ctypes.c_char_p)
_abort_callback = None
_abort_cleanups: list[Callable[[], None]] = []
NATIVE_ABORT_EXIT = 1  # the status of every other one-line error


def at_native_abort(cleanup: Callable[[], None]) -> Callable[[], None]:
    """Run ``cleanup`` (e.g. close a transcript) if llama.cpp aborts the process; returns its unregister."""
    _abort_cleanups.append(cleanup)
    return lambda: _abort_cleanups.remove(cleanup) if cleanup in _abort_cleanups else None


def explain_abort(message: str) -> str:
    """The one line a user reads when ggml aborts with ``message`` (``file:line: what``)."""
    what = message.split(": ", 1)[-1].strip()
    if "RPC server" in what:
        return f"an RPC server stopped answering mid-run (it crashed, was stopped, or the network dropped): {what}"
    return f"llama.cpp stopped: {message.strip()}"


def _install_abort_hook(lib_dir: Path) -> None:
    """Make ggml's aborts (GGML_ABORT, GGML_ASSERT; ggml-rpc when a server dies) one line and exit status 1.

    ggml calls the hook on whichever thread failed and would then call abort(): a core dump and a native
    backtrace, and every held line of a transcript lost. The hook runs the registered cleanups, flushes what
    Python printed, writes the line and ends the process itself (nothing can return into the failed call).
    """
    global _abort_callback
    base = ggml_library("ggml-base", lib_dir)
    base.ggml_set_abort_callback.argtypes = [_AbortCallback]
    base.ggml_set_abort_callback.restype = _p

    @_AbortCallback
    def on_abort(message: bytes | None) -> None:
        for cleanup in list(_abort_cleanups):
            with contextlib.suppress(Exception):
                cleanup()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os.write(2, f"Error: {explain_abort((message or b'').decode(errors='replace'))}\n".encode())
        os._exit(NATIVE_ABORT_EXIT)

    _abort_callback = on_abort  # kept: ctypes callbacks die with their Python object
    base.ggml_set_abort_callback(on_abort)


def recent_log() -> list[str]:
    """llama.cpp's last log messages (at most 64), oldest first."""
    with _log_lock:
        return list(_log_lines)


def last_log_error() -> str:
    """The most specific error line llama.cpp logged recently, for error messages."""
    lines = [line.strip() for line in recent_log() if "error" in line.lower() or "hogwild" in line.lower()]
    specific = [line for line in lines if "failed to decode" not in line]
    return (specific or lines or [""])[-1]


def clear_log() -> None:
    """Forget earlier log lines (called before each native call whose failure we explain)."""
    with _log_lock:
        _log_lines.clear()


# --------------------------------------------------------------------------------------------------
# what `hogwild doctor` reports


def _backend_of(lib_dir: Path) -> str:
    """Name of the GPU backend whose ggml library sits in ``lib_dir``, else cpu."""
    for name in ("cuda", "metal", "vulkan", "hip"):
        if any(lib_dir.glob(f"*ggml-{name}*")):
            return name
    return "cpu"


def has_local_gpu(lib_dir: Path | None = None) -> bool:
    """Whether ggml has a GPU of this machine to offload to. Not ``llama_supports_gpu_offload``, which is
    true in every build with the RPC backend, GPU or not."""
    ggml = ggml_library("ggml", lib_dir)
    return any(ggml.ggml_backend_dev_by_type(kind) for kind in (DEV_GPU, DEV_IGPU))


def _facts(llama_cpp: Any, lib: Any) -> dict[str, Any]:
    """What both reports say about an imported llama_cpp and its library."""
    lib_path = getattr(lib, "_name", "?")
    return {
        "version": llama_cpp.__version__,
        "version_ok": llama_cpp.__version__ == LLAMA_CPP_PYTHON_VERSION,
        "lib_path": lib_path,
        "patched": all(hasattr(lib, name) for name in HOGWILD_SYMBOLS),
        "gpu_offload": has_local_gpu(Path(lib_path).parent),
        "rpc": bool(llama_cpp.llama_supports_rpc()),
        "system_info": llama_cpp.llama_print_system_info().decode(errors="replace"),
        "backend": _backend_of(Path(lib_path).parent),
    }


def library_info() -> dict:
    """What `hogwild doctor` reports: version, library path, patched?, GPU offload."""
    try:
        llama_cpp, lib = load()
    except UnpatchedLibraryError as err:
        return {"ok": False, "error": str(err)}
    facts = _facts(llama_cpp, lib)
    return {"ok": True, "version": facts["version"], "library": facts["lib_path"], "patched": True,
            "gpu_offload": facts["gpu_offload"], "rpc": facts["rpc"], "system_info": facts["system_info"]}


def build_status() -> dict[str, Any]:
    """What `hogwild doctor` reports about the installed build (imported without the self-test: doctor and
    the build run it first).

    Keys: importable, version, version_ok, lib_path (the loaded libllama), patched (it exports every Hogwild
    symbol), build_key (from our marker; None for a wheel we did not build), gpu_offload, backend, error.
    """
    status: dict[str, Any] = {
        "importable": False, "version": None, "version_ok": False, "lib_path": None,
        "patched": False, "build_key": None, "gpu_offload": None, "backend": None,
        "error": None,
    }
    _quiet_openmp()
    try:
        import llama_cpp
        from llama_cpp import llama_cpp as bindings
    except Exception as exc:  # noqa: BLE001 - loading the library raises OSError, RuntimeError, ...
        status["error"] = f"{type(exc).__name__}: {exc}"
        return status
    facts = _facts(llama_cpp, bindings._lib)
    info = installed_build_info()
    status.update(
        importable=True,
        version=facts["version"],
        version_ok=facts["version_ok"],
        lib_path=str(Path(facts["lib_path"])),
        patched=facts["patched"],
        build_key=info.get("key") if info else None,
        gpu_offload=facts["gpu_offload"],
        backend=facts["backend"],
    )
    return status
