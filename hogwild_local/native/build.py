"""Build and install llama-cpp-python with the hogwild llama.cpp patches.

`hogwild build-backend` (``cli/build_backend.py``) fetches the llama-cpp-python sdist, applies
``hogwild_local/patches/*.patch`` to the llama.cpp vendored in it, builds a
wheel for one ggml backend and installs it.  Wheels are cached under a key made
of everything that changes the binary, so a second run with nothing changed
only compares keys.  ``--bundle`` writes a small, already patched source
tarball for machines without network (the GPU machine), where
``--sdist BUNDLE`` builds it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import itertools
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import zipfile
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from .errors import BuildError
from .install import (
    BUILD_MARKER,
    LLAMA_CPP_PYTHON_VERSION,
    PACKAGE_PARENT,
    cache_dir,
    cpu_identity,
    installed_build_info,
    installed_package_dir,
)
from .proc import last_line, run_pip
from .verdict import SelfTest, fingerprint_wheel, installed_verdict, run_self_test, verdict_for

SDIST_NAME = f"llama_cpp_python-{LLAMA_CPP_PYTHON_VERSION}.tar.gz"
BACKENDS = ("cpu", "cuda", "metal", "vulkan")
# Written at the root of a --bundle tarball: says the tree is already patched.
BUNDLE_MARKER = "hogwild_bundle.json"
LLAMA_CPP_DIR = "vendor/llama.cpp"
PATCH_DIR = Path(__file__).resolve().parents[1] / "patches"  # package data: it ships in the wheel

# Entries of the sdist root that no build or test uses.
SDIST_DROP = frozenset(
    {".git", ".github", ".dockerignore", ".readthedocs.yaml", "Makefile",
     "docker", "docs", "examples", "mkdocs.yml", "scripts"}
)
# Entries of vendor/llama.cpp that the library build needs, plus gguf-py and
# grammars (small, useful on the GPU machine).  Everything else (models, docs,
# tools, tests, examples, media, benches, ...) is dropped: upstream keeps adding
# top-level folders, so this is a list of what to keep.
LLAMA_CPP_KEEP = frozenset(
    {"CMakeLists.txt", "CMakePresets.json", "LICENSE", "README.md", "cmake", "common",
     "ggml", "gguf-py", "grammars", "include", "licenses", "src", "vendor"}
)
# ggml backends (ggml/src/ggml-NAME) kept in a bundle: every --backend choice, rpc (in every build),
# and blas, which CMake switches on by default on macOS.
BUNDLE_BACKENDS = frozenset({*BACKENDS, "rpc", "blas"})
BUNDLE_LIMIT_BYTES = 64 * 1024 * 1024

_NINJA_STEP = re.compile(r"^\s*\[(\d+)/(\d+)\]")
_HUNK_HEADER = re.compile(r"^@@ -(\d+)(?:,\d+)? \+\d+(?:,\d+)? @@")
_PATCH_FAILED = re.compile(r"patch failed: (.+):(\d+)$")


def say(message: str) -> None:
    """Progress goes to stderr so that stdout stays clean for --print-lib-path (``sys.stderr`` looked up at
    each call: a test runner swaps it)."""
    print(message, file=sys.stderr, flush=True)


def patch_dir() -> Path:
    """Folder with the llama.cpp patch series (package data)."""
    if not PATCH_DIR.is_dir():
        raise BuildError(f"No llama.cpp patch folder found (looked for {PATCH_DIR}).", "reinstall hogwild-local.")
    return PATCH_DIR


def list_patches(directory: Path) -> list[Path]:
    """The ``*.patch`` files of ``directory`` in the order they are applied (by name)."""
    return sorted(directory.glob("*.patch"), key=lambda path: path.name)


def patches_sha256(patches: Sequence[Path]) -> str:
    """sha256 over the names and bytes of ``patches``, in order.

    Names are included because they fix the order the patches apply in.
    """
    digest = hashlib.sha256()
    for patch in patches:
        digest.update(patch.name.encode() + b"\0")
        digest.update(patch.read_bytes() + b"\0")
    return digest.hexdigest()


# ggml's AMX matmul (Intel Xeon 4th gen and later) is compiled in whenever the compiler targets an AMX CPU,
# and its first tile instruction killed every process with SIGILL on an AMX Xeon VM; where it runs it
# speeds up prompts but slows Hogwild's passes of 1-4 tokens (docs/backend.md, "AMX"). Native builds keep
# every other instruction set of the build machine and leave AMX out unless asked (--amx).
NO_AMX_FLAGS = "-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"


def cmake_args(backend: str, cuda_arch: str, native: bool = False, amx: bool = False) -> str:
    """CMAKE_ARGS for a backend.

    The cpu build is tuned for this CPU when ``native`` (llama.cpp's own default, and the command's),
    else portable; the GPU builds keep llama.cpp's default of tuning their CPU code for the build
    machine. Every build tuned for an x86-64 build machine leaves out ggml's AMX path (NO_AMX_FLAGS) unless
    ``amx``.
    Every build carries ggml's RPC backend (GGML_RPC: one small library, libggml-rpc), so that any install
    can offload layers to `hogwild rpc-server` on other machines (`--rpc`) and serve as one.
    LLAVA_BUILD=OFF skips tools/mtmd, which hogwild does not use (and the bundle drops).
    """
    args = {
        "cpu": [f"-DGGML_NATIVE={'ON' if native else 'OFF'}"],
        "cuda": ["-DGGML_CUDA=on", f"-DCMAKE_CUDA_ARCHITECTURES={cuda_arch}"],
        "metal": ["-DGGML_METAL=on"],
        "vulkan": ["-DGGML_VULKAN=on"],
    }[backend]
    tuned_for_this_machine = native or backend != "cpu"
    if tuned_for_this_machine and not amx and platform.machine().lower() in ("x86_64", "amd64"):
        args += [f'"-DCMAKE_C_FLAGS={NO_AMX_FLAGS}"', f'"-DCMAKE_CXX_FLAGS={NO_AMX_FLAGS}"']
    return " ".join(args + ["-DGGML_RPC=ON", "-DLLAVA_BUILD=OFF"])


@dataclass(frozen=True)
class BuildKey:
    """Everything that changes the built library; its digest names the cached wheel."""

    llama_cpp_python: str
    patches_sha256: str
    backend: str
    cuda_arch: str | None
    cmake_args: str
    platform: str
    cpu: str | None = None  # a native cpu build only runs on CPUs like the one that built it

    @property
    def digest(self) -> str:
        """Short stable hash of all fields."""
        encoded = json.dumps(asdict(self), sort_keys=True).encode()
        return hashlib.sha256(encoded).hexdigest()[:16]

    def to_json(self) -> dict[str, Any]:
        """Fields plus digest, as written into the marker file of the wheel."""
        return {"key": self.digest, **asdict(self)}


def make_build_key(
    patches: Sequence[Path], backend: str, cuda_arch: str, native: bool = False, amx: bool = False
) -> BuildKey:
    """The key of the wheel these patches and options produce on this platform."""
    return BuildKey(
        llama_cpp_python=LLAMA_CPP_PYTHON_VERSION,
        patches_sha256=patches_sha256(patches),
        backend=backend,
        cuda_arch=cuda_arch if backend == "cuda" else None,
        cmake_args=cmake_args(backend, cuda_arch, native, amx),
        platform=f"{platform.system()}-{platform.machine()}",
        cpu=cpu_identity() if backend == "cpu" and native else None,
    )


def ensure_sdist(cache: Path) -> Path:
    """Path of the cached llama-cpp-python sdist, downloaded with pip if missing."""
    target = cache / "sdist" / SDIST_NAME
    if target.is_file():
        return target
    say(f"Downloading {SDIST_NAME} ...")
    result = run_pip("download", "--no-deps", "--no-binary", ":all:",
                     f"llama-cpp-python=={LLAMA_CPP_PYTHON_VERSION}", "-d", str(target.parent))
    if result.returncode != 0 or not target.is_file():
        raise BuildError(
            f"Could not download {SDIST_NAME}: {last_line(result.stderr)}",
            "without network, pass --sdist with the sdist or a bundle made by "
            "`hogwild build-backend --bundle DIR` on a machine that has network.",
        )
    return target


def extract_sdist(tarball: Path, dest: Path) -> Path:
    """Extract ``tarball`` into the empty folder ``dest``; return the source root.

    Git metadata is skipped: it is 40 MB the build does not need, and without
    it no git repository encloses the tree while patches are applied.
    """
    try:
        with tarfile.open(tarball) as tar:
            members = [m for m in tar.getmembers() if ".git" not in PurePosixPath(m.name).parts]
            tar.extractall(dest, members=members, filter="data")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BuildError(
            f"Cannot extract {tarball}: {exc}",
            "the file is damaged or not a llama-cpp-python sdist; delete it and run again.",
        ) from None
    roots = [entry for entry in dest.iterdir() if entry.is_dir()]
    pkg_info = roots[0] / "PKG-INFO" if len(roots) == 1 else None
    if pkg_info is None or not pkg_info.is_file():
        raise BuildError(f"{tarball} is not a llama-cpp-python sdist (no PKG-INFO at its top).",
                     f"pass the {SDIST_NAME} from PyPI or a bundle made with --bundle.")
    version = re.search(r"^Version: (\S+)$", pkg_info.read_text(errors="replace"), re.M)
    found = version.group(1) if version else "unknown"
    if found != LLAMA_CPP_PYTHON_VERSION:
        raise BuildError(f"{tarball} holds llama-cpp-python {found}, not {LLAMA_CPP_PYTHON_VERSION}.",
                     f"the patches are made for llama-cpp-python {LLAMA_CPP_PYTHON_VERSION}.")
    return roots[0]


def _rejected_hunk(patch_text: str, path: str, old_line: int) -> str | None:
    """Describe the hunk of ``path`` whose old side starts at ``old_line``.

    git reports a failed hunk as ``patch failed: FILE:LINE`` with LINE the old
    start of the hunk; this turns it into ``hunk #N (@@ ... @@)``.
    """
    current: set[str] = set()
    number = 0
    for line in patch_text.splitlines():
        if line.startswith("diff --git "):
            current, number = set(), 0
        elif line.startswith(("--- a/", "+++ b/")):
            current.add(line[6:].rstrip("\t"))
        else:
            header = _HUNK_HEADER.match(line)
            if header:
                number += 1
                if path in current and int(header.group(1)) == old_line:
                    return f"hunk #{number} ({header.group(0)})"
    return None


def _patch_failure(patch: Path, git_stderr: str) -> BuildError:
    """Turn git apply's complaint about ``patch`` into the user-facing error."""
    prefix = LLAMA_CPP_DIR + "/"
    errors = [
        line.removeprefix("error: ").replace(prefix, "")
        for line in git_stderr.splitlines()
        if line.startswith("error: ") and not line.startswith("error: while searching for")
    ]
    detail = errors[0] if errors else git_stderr.strip() or "git apply failed"
    for error in errors:
        failed = _PATCH_FAILED.search(error)
        if failed:
            path, old_line = failed.group(1), int(failed.group(2))
            hunk = _rejected_hunk(patch.read_text(errors="replace"), path, old_line)
            detail = f"{hunk or f'the hunk at line {old_line}'} of {path} is rejected"
            break
    return BuildError(
        f"Patch {patch.name} does not apply to llama.cpp of llama-cpp-python "
        f"{LLAMA_CPP_PYTHON_VERSION}: {detail}",
        f"regenerate {patch} with `git diff` inside that llama.cpp (paths like a/src/...), "
        "on top of the patches named before it.",
    )


def apply_patches(source_root: Path, patches: Sequence[Path]) -> None:
    """Apply ``patches`` in order to ``source_root``/vendor/llama.cpp with git apply.

    git is used because it exists wherever the sdist can be built (``patch``
    often does not).  GIT_CEILING_DIRECTORIES stops git from finding a
    repository around the tree: inside one, git apply silently skips every
    path outside the current folder and still exits 0.
    """
    git = shutil.which("git")
    if git is None:
        raise BuildError("git is needed to apply the llama.cpp patches but is not installed.",
                     "install git and run again.")
    env = {**os.environ, "GIT_CEILING_DIRECTORIES": str(source_root.resolve().parent)}
    for patch in patches:
        result = subprocess.run(
            [git, "apply", "--whitespace=nowarn", f"--directory={LLAMA_CPP_DIR}",
             str(patch.resolve())],
            cwd=source_root, env=env, capture_output=True, text=True,
        )
        if result.returncode != 0:
            raise _patch_failure(patch, result.stderr)


def prune_source_tree(source_root: Path, keep_backends: frozenset[str] | None) -> None:
    """Delete what building and testing llama-cpp-python does not need.

    Drops SDIST_DROP from the sdist root, everything but LLAMA_CPP_KEEP from
    vendor/llama.cpp, and, unless ``keep_backends`` is None, the ggml backend
    folders ggml/src/ggml-NAME whose NAME is not in it.  Builds use the same
    pruning (with every backend kept) so a pruning mistake shows up in a local
    build rather than on the machine the bundle is carried to.
    """
    doomed = [source_root / name for name in SDIST_DROP]
    llama_cpp = source_root / LLAMA_CPP_DIR
    doomed += [entry for entry in llama_cpp.iterdir() if entry.name not in LLAMA_CPP_KEEP]
    if keep_backends is not None:
        doomed += [
            entry for entry in (llama_cpp / "ggml" / "src").glob("ggml-*")
            if entry.is_dir() and entry.name.removeprefix("ggml-") not in keep_backends
        ]
    for path in doomed:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


def prepare_source(
    tarball: Path, patches: Sequence[Path], workdir: Path,
    keep_backends: frozenset[str] | None = None,
) -> Path:
    """Extract ``tarball`` into ``workdir``, patch it and prune it; return its root.

    A bundle is already patched: its patches must be the ones given, and are
    not applied again.
    """
    root = extract_sdist(tarball, workdir)
    bundle_marker = root / BUNDLE_MARKER
    if bundle_marker.is_file():
        made_with = json.loads(bundle_marker.read_text())["patches_sha256"]
        if made_with != patches_sha256(patches):
            raise BuildError(
                f"{tarball.name} was made from other llama.cpp patches than the "
                f"{len(patches)} patch file(s) in use now.",
                "make a new bundle with `hogwild build-backend --bundle DIR` from these patches.",
            )
    else:
        apply_patches(root, patches)
    prune_source_tree(root, keep_backends)
    return root


def _tool_ok(name: str) -> bool:
    """Whether scikit-build-core can find ``name`` on PATH or as a Python package."""
    return shutil.which(name) is not None or importlib.util.find_spec(name) is not None


def ensure_build_tools() -> None:
    """Install scikit-build-core, cmake and ninja with pip if any is missing.

    The wheel is built without build isolation (the GPU machine has no
    network), so they must be in this Python environment.
    """
    missing = [
        package for package, present in (
            ("scikit-build-core", importlib.util.find_spec("scikit_build_core") is not None),
            ("cmake", _tool_ok("cmake")),
            ("ninja", _tool_ok("ninja")),
        ) if not present
    ]
    if not missing:
        return
    say(f"Installing build tools: {' '.join(missing)} ...")
    result = run_pip("install", *missing)
    if result.returncode != 0:
        raise BuildError(f"Could not install {' '.join(missing)}: {last_line(result.stderr)}",
                     f"install them into {sys.executable}'s environment and run again.")


# a Vulkan build needs the loader's headers and a GLSL -> SPIR-V compiler beyond the C++ tool chain
VULKAN_HINT = ("on Debian or Ubuntu: sudo apt-get install libvulkan-dev glslc spirv-headers (and mesa-vulkan-drivers "
               "for a software device; `make vulkan-deps` in a checkout does it); elsewhere the LunarG Vulkan SDK.")


def check_backend_sdk(backend: str) -> None:
    """Refuse a Vulkan build at once when its SDK is missing: cmake would only stop minutes into the build."""
    if backend != "vulkan":
        return
    roots = [Path(os.environ["VULKAN_SDK"])] if os.environ.get("VULKAN_SDK") else [Path("/usr"), Path("/usr/local")]
    missing = [what for what, found in (
        ("the Vulkan headers", any((root / "include" / "vulkan" / "vulkan.h").is_file() for root in roots)),
        ("glslc", shutil.which("glslc") is not None),
    ) if not found]
    if missing:
        raise BuildError(f"A Vulkan build needs {' and '.join(missing)}, not found here.", VULKAN_HINT)


def _format_seconds(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def _run_logged(command: list[str], env: dict[str, str], log_path: Path, label: str) -> int:
    """Run ``command`` with its output in ``log_path``, showing a progress line.

    On a terminal the line (spinner, elapsed time, ninja step) is redrawn in
    place; otherwise a line is printed every 30 seconds.
    """
    step = ""

    def pump(stream: Any, log: Any) -> None:
        nonlocal step
        for line in stream:
            log.write(line)
            match = _NINJA_STEP.match(line)
            if match:
                step = f"[{match.group(1)}/{match.group(2)}]"

    interactive = sys.stderr.isatty()
    start = last_report = time.monotonic()
    with open(log_path, "w", encoding="utf-8") as log:
        process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True, errors="replace")
        reader = threading.Thread(target=pump, args=(process.stdout, log), daemon=True)
        reader.start()
        try:
            for spinner in itertools.cycle("|/-\\"):
                if process.poll() is not None:
                    break
                now = time.monotonic()
                status = f"{label} {_format_seconds(now - start)} {step}".rstrip()
                if interactive:
                    sys.stderr.write(f"\r\033[K{spinner} {status}")
                    sys.stderr.flush()
                elif now - last_report >= 30:
                    say(status)
                    last_report = now
                time.sleep(0.5)
        finally:
            if process.poll() is None:
                process.terminate()
                process.wait()
            reader.join()
            if interactive:
                sys.stderr.write("\r\033[K")
                sys.stderr.flush()
    say(f"{label} finished in {_format_seconds(time.monotonic() - start)}.")
    return process.returncode


def build_wheel(source_root: Path, key: BuildKey, jobs: int, out_dir: Path, log_path: Path) -> Path:
    """Build the wheel of a prepared source tree into ``out_dir``; return its path.

    The key is written into the llama_cpp package first, so the installed
    package says what it was built from.
    """
    marker = source_root / "llama_cpp" / BUILD_MARKER
    marker.write_text(json.dumps(key.to_json(), indent=2) + "\n")
    env = {**os.environ, "CMAKE_ARGS": key.cmake_args, "CMAKE_BUILD_PARALLEL_LEVEL": str(jobs)}
    command = [sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "--no-build-isolation",
               "-w", str(out_dir), str(source_root)]
    say(f"Building llama-cpp-python {LLAMA_CPP_PYTHON_VERSION} ({key.backend}, "
         f"{jobs} jobs); log: {log_path}")
    returncode = _run_logged(command, env, log_path, f"building {key.backend} backend")
    if returncode != 0:
        with open(log_path, encoding="utf-8", errors="replace") as log:
            tail = deque(log, maxlen=30)
        say("".join(tail).rstrip())
        raise BuildError(f"Building llama-cpp-python failed (exit {returncode}).",
                     f"the last log lines are above; the full log is {log_path}")
    wheels = sorted(out_dir.glob("llama_cpp_python-*.whl"))
    if not wheels:
        raise BuildError(f"The build produced no wheel in {out_dir}.", f"see the log {log_path}")
    return wheels[0]


def cached_wheel(cache: Path, key: BuildKey) -> Path | None:
    """The cached wheel built for ``key``, if there is one."""
    wheels = sorted((cache / "wheels" / key.digest).glob("*.whl"))
    return wheels[0] if wheels else None


def installed_lib_dir() -> Path:
    """Folder holding the installed libllama (what LLAMA_CPP_LIB_PATH would name)."""
    package = installed_package_dir()
    if package is None:
        raise BuildError("llama-cpp-python is not installed.", "run `hogwild build-backend`.")
    lib_dir = package / "lib"
    if not any(lib_dir.glob("libllama.*")) and not any(lib_dir.glob("llama.dll")):
        raise BuildError(f"No libllama in {lib_dir}.", "run `hogwild build-backend --force`.")
    return lib_dir


def install_wheel(wheel: Path) -> None:
    """pip-install ``wheel`` over whatever llama-cpp-python is installed."""
    say(f"Installing {wheel.name} ...")
    result = run_pip("install", "--no-deps", "--force-reinstall", str(wheel))
    if result.returncode != 0:
        raise BuildError(f"Installing {wheel} failed: {last_line(result.stderr)}",
                     "run the same `pip install --no-deps --force-reinstall` by hand to see why.")


def _check_installed(key: BuildKey) -> dict[str, Any]:
    """build_status() of the fresh install, taken in a new interpreter.

    A new process is needed: this one may have loaded the old library.
    """
    search_path = [str(PACKAGE_PARENT), os.environ.get("PYTHONPATH")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, search_path))}
    result = subprocess.run(
        [sys.executable, "-c",
         "import json; from hogwild_local.native.library import build_status; "
         "print(json.dumps(build_status()))"],
        capture_output=True, text=True, env=env,
    )
    lines = result.stdout.strip().splitlines()
    status = json.loads(lines[-1]) if result.returncode == 0 and lines else {}
    if not status.get("importable"):
        detail = last_line(status.get("error") or result.stderr)
        raise BuildError(f"The installed llama-cpp-python does not load: {detail}",
                     "a runtime dependency may be missing: "
                     f"pip install llama-cpp-python=={LLAMA_CPP_PYTHON_VERSION} pulls them in.")
    if status.get("build_key") != key.digest:
        raise BuildError(f"Python imports another llama_cpp than the one just installed "
                     f"(its library: {status['lib_path']}).",
                     f"check PYTHONPATH and which environment {sys.executable} belongs to.")
    return status


def wheel_verdict(wheel: Path) -> SelfTest:
    """The self-test verdict of ``wheel`` on this CPU: kept from an earlier test, else tested now.

    The wheel is unpacked into a temporary folder that goes first on the child's import path, so a
    library that crashes is never installed.
    """
    fingerprint = fingerprint_wheel(wheel)
    if fingerprint is None:
        return SelfTest(False, f"{wheel.name} holds no llama.cpp library")

    def test_unpacked() -> SelfTest:
        say(f"Self-testing {wheel.name} on this CPU ...")
        (cache_dir() / "tmp").mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="selftest-", dir=cache_dir() / "tmp") as unpacked:
            with zipfile.ZipFile(wheel) as archive:
                archive.extractall(unpacked)
            return run_self_test([Path(unpacked)], lib_dir=Path(unpacked) / "llama_cpp" / "lib")

    return verdict_for(fingerprint, test_unpacked)


def _failed_build_hint(key: BuildKey, amx: bool, log_path: Path) -> str:
    if amx:
        return "build one without ggml's AMX path: the same command without --amx"
    if key.backend == "cpu" and key.cpu is not None:
        return "build one without this CPU's own instructions: hogwild build-backend --portable"
    return f"the build log is {log_path}; please report the failure with it"


def build_backend(
    backend: str = "cpu", cuda_arch: str = "90", jobs: int | None = None,
    force: bool = False, native: bool = False, sdist: Path | None = None, amx: bool = False,
) -> Path:
    """Make sure llama-cpp-python built with our patches for ``backend`` is installed and works here.

    Skips everything when the installed package carries the current key and passed its self-test on
    this CPU, and the build when a cached wheel for the key passes it. A new build is self-tested before
    it is cached or installed. Returns the installed lib folder.
    """
    patches_from = patch_dir()
    patches = list_patches(patches_from)
    if not patches:
        say(f"Warning: no patches in {patches_from}; building stock llama.cpp.")
    key = make_build_key(patches, backend, cuda_arch, native, amx)
    installed = installed_build_info()
    if not force and installed and installed.get("key") == key.digest:
        tested = installed_verdict()
        if tested is None or tested[1].ok:
            say(f"llama-cpp-python {LLAMA_CPP_PYTHON_VERSION} ({backend}, {len(patches)} patches) "
                 f"is up to date (build {key.digest}).")
            return installed_lib_dir()
        say(f"The installed build {key.digest} fails its self-test on this CPU ({tested[1].detail}); "
             "building it again.")
        force = True
    cache = cache_dir()
    wheel = None if force else cached_wheel(cache, key)
    if wheel is not None:
        verdict = wheel_verdict(wheel)
        if not verdict.ok:
            say(f"The cached wheel of build {key.digest} fails its self-test on this CPU ({verdict.detail}); "
                 "deleting it and building again.")
            shutil.rmtree(wheel.parent)
            wheel = None
    if wheel is None:
        check_backend_sdk(backend)
        ensure_build_tools()
        tarball = sdist or ensure_sdist(cache)
        for sub in ("tmp", "logs", "wheels"):
            (cache / sub).mkdir(parents=True, exist_ok=True)
        log_path = cache / "logs" / f"build-{key.digest}-{time.strftime('%Y%m%d-%H%M%S')}.log"
        with tempfile.TemporaryDirectory(prefix="build-", dir=cache / "tmp") as work:
            workdir = Path(work)
            (workdir / "src").mkdir()
            (workdir / "out").mkdir()
            say(f"Preparing patched sources from {tarball.name} ({len(patches)} patches) ...")
            source_root = prepare_source(tarball, patches, workdir / "src")
            built = build_wheel(source_root, key, jobs or os.cpu_count() or 1,
                                workdir / "out", log_path)
            verdict = wheel_verdict(built)
            if not verdict.ok:
                raise BuildError(f"The new build fails its self-test: {verdict.detail}; it was neither cached nor "
                             "installed.", _failed_build_hint(key, amx, log_path))
            wheel_dir = cache / "wheels" / key.digest
            shutil.rmtree(wheel_dir, ignore_errors=True)
            wheel_dir.mkdir()
            wheel = Path(shutil.move(str(built), wheel_dir / built.name))
    install_wheel(wheel)
    status = _check_installed(key)
    say(f"Installed build {key.digest}: {status['lib_path']} (patched: "
         f"{'yes' if status['patched'] else 'NO'}, GPU offload: "
         f"{'yes' if status['gpu_offload'] else 'no'}, self-test passed).")
    return installed_lib_dir()


def write_bundle(out_dir: Path, patches: Sequence[Path], sdist: Path | None = None) -> Path:
    """Write a pruned, patched copy of the sdist to ``out_dir``; return its path.

    It is small enough to carry to a machine without network, where
    ``hogwild build-backend --sdist BUNDLE`` builds it without patching again.
    """
    cache = cache_dir()
    tarball = sdist or ensure_sdist(cache)
    (cache / "tmp").mkdir(parents=True, exist_ok=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    digest = patches_sha256(patches)
    bundle = out_dir / f"llama_cpp_python-{LLAMA_CPP_PYTHON_VERSION}-hogwild-{digest[:12]}.tar.gz"
    with tempfile.TemporaryDirectory(prefix="bundle-", dir=cache / "tmp") as work:
        root = prepare_source(tarball, patches, Path(work), BUNDLE_BACKENDS)
        marker = {"llama_cpp_python": LLAMA_CPP_PYTHON_VERSION, "patches_sha256": digest,
                  "patches": [patch.name for patch in patches]}
        (root / BUNDLE_MARKER).write_text(json.dumps(marker, indent=2) + "\n")
        partial = bundle.with_name(bundle.name + ".partial")
        with tarfile.open(partial, "w:gz", compresslevel=9) as tar:
            tar.add(root, arcname=root.name)
        partial.replace(bundle)
    size = bundle.stat().st_size
    say(f"Wrote {bundle} ({size / 2**20:.1f} MiB, {len(patches)} patches applied).")
    if size > BUNDLE_LIMIT_BYTES:
        say(f"Warning: the bundle is larger than {BUNDLE_LIMIT_BYTES // 2**20} MiB.")
    return bundle
