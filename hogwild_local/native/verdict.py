"""Whether the llama.cpp library about to be loaded runs on this machine: the self-test and its kept verdicts.

A native build can contain instructions that this CPU, or the VM around it, does not execute: ggml's
AMX matmul killed every process with SIGILL on an AMX Xeon VM, with no message at all. So no process of
ours loads a library in-process before a child process has run the self-test (``native/selftest.py``) on
it. The verdict is kept per (library files, CPU) in the cache folder, so it costs a second once per library
and machine; ``hogwild doctor`` runs it afresh.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from .errors import LibraryError
from .install import PACKAGE_PARENT, cache_dir, cpu_identity, installed_package_dir, library_dir
from .proc import last_line

# set in the self-test's child: it must load the library without waiting for its own verdict
SELF_TEST_CHILD = "HOGWILD_SELF_TEST_CHILD"
SELF_TEST_TIMEOUT_S = 300.0
_LIB_SUFFIXES = (".so", ".dylib", ".dll")


def is_shared_library(name: str) -> bool:
    """Whether a file name is a shared library's (versioned names included: libggml.so.0)."""
    return any(suffix in name for suffix in _LIB_SUFFIXES)


def _fingerprint(files: Iterable[tuple[str, bytes]]) -> str | None:
    digest, count = hashlib.sha256(), 0
    for name, data in sorted(files):
        digest.update(name.encode() + b"\0" + data + b"\0")
        count += 1
    return digest.hexdigest()[:16] if count else None


def fingerprint_dir(lib_dir: Path) -> str | None:
    """Hash of the names and bytes of the shared libraries in ``lib_dir`` (None: there are none)."""
    if not lib_dir.is_dir():
        return None
    return _fingerprint((p.name, p.read_bytes()) for p in lib_dir.iterdir()
                        if p.is_file() and is_shared_library(p.name))


def fingerprint_wheel(wheel: Path) -> str | None:
    """The same hash over ``llama_cpp/lib/`` of a wheel: equal to the installed copy's fingerprint."""
    with zipfile.ZipFile(wheel) as archive:
        members = [m for m in archive.namelist() if m.startswith("llama_cpp/lib/") and is_shared_library(m)]
        return _fingerprint((Path(m).name, archive.read(m)) for m in members)


@dataclass(frozen=True)
class SelfTest:
    """A self-test verdict: ``detail`` is one line (what was decoded, or how the child failed)."""

    ok: bool
    detail: str
    seconds: float = 0.0


def run_self_test(search_path: Sequence[Path] = (), lib_dir: Path | None = None,
                  timeout: float = SELF_TEST_TIMEOUT_S) -> SelfTest:
    """Run ``native/selftest.py`` in a child process and judge how it ended.

    ``search_path`` goes first on the child's PYTHONPATH (an unpacked wheel to test before it is
    installed); ``lib_dir`` becomes its LLAMA_CPP_LIB_PATH. A child killed by a signal, one that exits
    non-zero or prints no verdict, and one that runs past ``timeout`` all fail.
    """
    env = {**os.environ, SELF_TEST_CHILD: "1"}
    env.pop("HOGWILD_VERBOSE", None)
    paths = [str(p) for p in search_path] + [str(PACKAGE_PARENT), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(filter(None, paths))
    if lib_dir is not None:
        env["LLAMA_CPP_LIB_PATH"] = str(lib_dir)
    start = time.monotonic()
    # the folder for the child's tiny models is ours, so it goes even when the child is killed
    with tempfile.TemporaryDirectory(prefix="hogwild-selftest-") as scratch:
        try:
            child = subprocess.run([sys.executable, "-m", "hogwild_local.native.selftest", scratch], env=env,
                                   capture_output=True, text=True, errors="replace", timeout=timeout,
                                   stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            return SelfTest(False, f"the self-test did not finish in {timeout:.0f} s", time.monotonic() - start)
    seconds = time.monotonic() - start
    if child.returncode < 0:
        number = -child.returncode
        name = signal.Signals(number).name if number in signal.valid_signals() else f"signal {number}"
        return SelfTest(False, f"the self-test was killed by {name} ({signal.strsignal(number)})", seconds)
    lines = child.stdout.strip().splitlines()
    try:
        verdict = json.loads(lines[-1]) if lines else None
    except ValueError:
        verdict = None
    if child.returncode != 0 or not isinstance(verdict, dict):
        last = last_line(child.stderr)
        return SelfTest(False, f"the self-test exited with status {child.returncode}: {last}", seconds)
    return SelfTest(bool(verdict.get("ok")), str(verdict.get("detail", "")), seconds)


def _verdict_path(fingerprint: str) -> Path:
    return cache_dir() / "self-test" / f"{fingerprint}-{cpu_identity()}.json"


def cached_verdict(fingerprint: str) -> SelfTest | None:
    """The verdict kept for these library files on this CPU, if any."""
    try:
        return SelfTest(**json.loads(_verdict_path(fingerprint).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def _save_verdict(fingerprint: str, verdict: SelfTest) -> None:
    """Keep ``verdict`` for these library files on this CPU (written whole, then renamed)."""
    path = _verdict_path(fingerprint)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    partial.write_text(json.dumps(asdict(verdict)) + "\n")
    partial.replace(path)


def verdict_for(fingerprint: str, test: Callable[[], SelfTest], *, refresh: bool = False) -> SelfTest:
    """The verdict kept for these library files on this CPU, else the one ``test()`` gives, which is kept.

    ``refresh`` ignores a kept verdict.
    """
    verdict = None if refresh else cached_verdict(fingerprint)
    if verdict is None:
        verdict = test()
        _save_verdict(fingerprint, verdict)
    return verdict


def installed_verdict(refresh: bool = False) -> tuple[str, SelfTest] | None:
    """(fingerprint, verdict) of the library `import llama_cpp` would load here, testing it if needed.

    None when there is nothing to test (llama-cpp-python is not installed, or its lib folder is empty):
    importing it then fails with its own message. ``refresh`` ignores a kept verdict.
    """
    package = installed_package_dir()
    fingerprint = fingerprint_dir(library_dir(package)) if package else None
    if fingerprint is None:
        return None
    # the child inherits LLAMA_CPP_LIB_PATH, if set
    return fingerprint, verdict_for(fingerprint, run_self_test, refresh=refresh)


def failure_message(verdict: SelfTest) -> str:
    """The one line a user sees when the library fails its self-test."""
    return (f"the llama.cpp library fails its self-test on this CPU: {verdict.detail}; "
            "rebuild it here with `hogwild build-backend --force` (or `--portable` if that fails too)")


def require_working_library() -> None:
    """Raise LibraryError unless the library about to be loaded passed its self-test on this CPU."""
    if os.environ.get(SELF_TEST_CHILD):
        return
    tested = installed_verdict()
    if tested is not None and not tested[1].ok:
        raise LibraryError(failure_message(tested[1]))
