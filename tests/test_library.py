"""The backend's self-test: it passes on the library we built, and a library that crashes is reported in one
line by every command, is never cached and never installed.

The crashing library is real: a shared object named libllama.so whose constructor executes an illegal
instruction (``__builtin_trap``, ud2 on x86), compiled here with the system C compiler, so the child that
loads it dies by SIGILL exactly as a native build with instructions this CPU lacks does.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

import gguf
import numpy as np
import pytest
from click.testing import CliRunner

from hogwild_local.cli.build_backend import build_backend_command
from hogwild_local.native import build as bb
from hogwild_local.native import install, selftest, verdict
from hogwild_local.native.synthetic import write_synthetic_model

HOGWILD = [sys.executable, "-m", "hogwild_local"]
TRAP_C = "__attribute__((constructor)) static void die_loading(void) { __builtin_trap(); }\n"
needs_cc = pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler to build the crashing library")


def compile_trap_library(path: Path) -> Path:
    source = path.with_suffix(".c")
    source.write_text(TRAP_C)
    subprocess.run(["cc", "-shared", "-fPIC", "-O0", "-o", str(path), str(source)], check=True)
    return path


@pytest.fixture(scope="module")
def crashing_lib_dir(tmp_path_factory) -> Path:
    """A copy of the installed lib folder whose libllama.so dies with SIGILL when it is loaded."""
    package = install.installed_package_dir()
    assert package is not None, "llama-cpp-python is not installed: run `make backend`"
    folder = tmp_path_factory.mktemp("crashing") / "lib"
    shutil.copytree(package / "lib", folder)
    (folder / "libllama.so").unlink()
    compile_trap_library(folder / "libllama.so")
    return folder


def test_installed_library_passes_the_self_test():
    tested = verdict.installed_verdict(refresh=True)
    assert tested is not None
    fingerprint, kept = tested
    assert kept.ok, kept.detail
    assert "F16, Q4_0, Q8_0, Q4_K_S weights" in kept.detail and "Hogwild workers" in kept.detail
    assert verdict.cached_verdict(fingerprint) == kept
    package = install.installed_package_dir()
    assert fingerprint == verdict.fingerprint_dir(package / "lib")


@needs_cc
def test_self_test_names_the_signal(crashing_lib_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    result = verdict.run_self_test(lib_dir=crashing_lib_dir)
    assert not result.ok
    assert result.detail == "the self-test was killed by SIGILL (Illegal instruction)"
    assert list(tmp_path.iterdir()) == []  # the killed child's tiny models went with the parent's folder


def test_non_finite_logits_fail_the_check(tmp_path):
    path = write_synthetic_model(tmp_path / "nan.gguf", "tiny")
    reader = gguf.GGUFReader(str(path), "r+")
    norm = next(t for t in reader.tensors if t.name == "output_norm.weight")
    norm.data[:] = np.nan
    del reader  # flushes the memory map
    assert selftest.decode_check(path) == "non-finite logits after the prompt"
    assert selftest.decode_check(write_synthetic_model(tmp_path / "ok.gguf", "tiny")) is None


@needs_cc
@pytest.mark.parametrize("command", [
    ["run", "What is 2+3?", "-b", "4"],
    ["tui", "What is 2+3?"],
    ["eval", "{dataset}", "--methods", "single", "--budgets", "4", "--results", "{results}"],
    ["bench", "--workers", "1", "--contexts", "1024", "--passes", "2"],
])
def test_every_command_refuses_a_crashing_library_in_one_line(command, crashing_lib_dir, tmp_path):
    dataset = tmp_path / "problems.jsonl"
    dataset.write_text(json.dumps({"question": "What is 2+3?", "answer": "#### 5"}) + "\n")
    model = write_synthetic_model(tmp_path / "tiny.gguf", "tiny")
    args = [a.format(dataset=dataset, results=tmp_path / "results.jsonl") for a in command]
    env = {**os.environ, "LLAMA_CPP_LIB_PATH": str(crashing_lib_dir), "HOGWILD_CACHE_DIR": str(tmp_path / "cache")}
    out = subprocess.run([*HOGWILD, *args, "--model", str(model)], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 1, (out.returncode, out.stdout, out.stderr)
    assert "Traceback" not in out.stderr + out.stdout
    error_lines = [line for line in out.stderr.splitlines() if line.startswith("Error:")]
    assert error_lines == [
        "Error: the llama.cpp library fails its self-test on this CPU: the self-test was killed by SIGILL "
        "(Illegal instruction); rebuild it here with `hogwild build-backend --force` (or `--portable` if that "
        "fails too)"
    ]


@needs_cc
def test_doctor_reports_the_failed_self_test(crashing_lib_dir, tmp_path):
    env = {**os.environ, "LLAMA_CPP_LIB_PATH": str(crashing_lib_dir), "HOGWILD_CACHE_DIR": str(tmp_path / "cache")}
    out = subprocess.run([*HOGWILD, "doctor"], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 1
    assert "self-test FAILED: the self-test was killed by SIGILL (Illegal instruction)" in out.stdout
    assert "Traceback" not in out.stderr
    report = json.loads(subprocess.run([*HOGWILD, "doctor", "--json"], capture_output=True, text=True, env=env,
                                       timeout=300).stdout)
    assert report["self_test"]["ok"] is False and "SIGILL" in report["self_test"]["detail"]


def test_doctor_runs_the_self_test_on_the_installed_library():
    out = subprocess.run([*HOGWILD, "doctor", "--json"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    report = json.loads(out.stdout)
    assert report["self_test"]["ok"] is True and report["library"]["ok"] is True


def crashing_wheel(tmp_path: Path) -> Path:
    """The installed package as a wheel, with the crashing libllama.so in place of the real one."""
    package = install.installed_package_dir()
    wheel = tmp_path / f"llama_cpp_python-{install.LLAMA_CPP_PYTHON_VERSION}-cp3-none-linux_x86_64.whl"
    trap = compile_trap_library(tmp_path / "libllama.so")
    with zipfile.ZipFile(wheel, "w") as archive:
        for path in package.rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts:
                member = f"llama_cpp/{path.relative_to(package).as_posix()}"
                archive.write(trap if member == "llama_cpp/lib/libllama.so" else path, member)
    return wheel


@needs_cc
def test_a_cached_wheel_that_fails_here_is_deleted_not_installed(tmp_path, monkeypatch):
    monkeypatch.setenv("HOGWILD_CACHE_DIR", str(tmp_path / "cache"))
    installed_before = verdict.fingerprint_dir(install.installed_package_dir() / "lib")
    key = bb.make_build_key(bb.list_patches(bb.patch_dir()), "cpu", "90", native=False)
    wheel_dir = bb.cache_dir() / "wheels" / key.digest
    wheel_dir.mkdir(parents=True)
    shutil.move(crashing_wheel(tmp_path), wheel_dir)
    not_an_sdist = tmp_path / "empty.tar.gz"
    with tarfile.open(not_an_sdist, "w:gz"):
        pass
    result = CliRunner().invoke(build_backend_command, ["--portable", "--sdist", str(not_an_sdist)])
    assert result.exit_code == 1
    assert (f"The cached wheel of build {key.digest} fails its self-test on this CPU (the self-test was killed by "
            "SIGILL (Illegal instruction)); deleting it and building again.") in result.output
    assert not wheel_dir.exists()
    assert verdict.fingerprint_dir(install.installed_package_dir() / "lib") == installed_before


FAKE_PYPROJECT = """[build-system]
requires = ["scikit-build-core"]
build-backend = "scikit_build_core.build"

[project]
name = "llama_cpp_python"
version = "{version}"

[tool.scikit-build]
wheel.packages = ["llama_cpp"]
"""
FAKE_INIT = """import ctypes, pathlib
__version__ = "{version}"
ctypes.CDLL(str(pathlib.Path(__file__).parent / "lib" / "libllama.so"))  # loads its library, as the real one does
"""
FAKE_CMAKE = """cmake_minimum_required(VERSION 3.21)
project(trap C)
add_library(llama SHARED trap.c)
install(TARGETS llama LIBRARY DESTINATION llama_cpp/lib)
"""


@needs_cc
def test_a_new_build_that_fails_its_self_test_is_neither_cached_nor_installed(tmp_path, monkeypatch):
    """The whole `hogwild build-backend` path, with a source bundle whose build is a real library that crashes."""
    monkeypatch.setenv("HOGWILD_CACHE_DIR", str(tmp_path / "cache"))
    patches = bb.list_patches(bb.patch_dir())
    version = install.LLAMA_CPP_PYTHON_VERSION
    root = tmp_path / "src" / f"llama_cpp_python-{version}"
    files = {
        "PKG-INFO": f"Metadata-Version: 2.1\nName: llama_cpp_python\nVersion: {version}\n",
        bb.BUNDLE_MARKER: json.dumps({"patches_sha256": bb.patches_sha256(patches)}),
        "pyproject.toml": FAKE_PYPROJECT.format(version=version),
        "CMakeLists.txt": FAKE_CMAKE,
        "trap.c": TRAP_C,
        "llama_cpp/__init__.py": FAKE_INIT.format(version=version),
        f"{bb.LLAMA_CPP_DIR}/CMakeLists.txt": "# the real library is not built here\n",
    }
    for relative, text in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text)
    bundle = tmp_path / "bundle.tar.gz"
    with tarfile.open(bundle, "w:gz") as tar:
        tar.add(root, arcname=root.name)
    installed_before = verdict.fingerprint_dir(install.installed_package_dir() / "lib")
    result = CliRunner().invoke(build_backend_command, ["--force", "--sdist", str(bundle), "--jobs", "1"])
    assert result.exit_code == 1, result.output
    assert ("Error: The new build fails its self-test: the self-test was killed by SIGILL (Illegal instruction); "
            "it was neither cached nor installed.\n  hint: build one without this CPU's own instructions: "
            "hogwild build-backend --portable") in result.output
    assert not any((bb.cache_dir() / "wheels").glob("*/*.whl"))
    assert verdict.fingerprint_dir(install.installed_package_dir() / "lib") == installed_before
