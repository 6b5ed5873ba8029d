"""Tests of hogwild_local.native.build that run in seconds (no compiler involved).

They use a small fake llama-cpp-python sdist; the functions under test are the
ones the real build and bundle commands call.
"""

from __future__ import annotations

import difflib
import os
import platform
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from hogwild_local.cli.build_backend import build_backend_command
from hogwild_local.native import build as bb
from hogwild_local.native import install
from hogwild_local.native.errors import BuildError
from hogwild_local.native.library import build_status

KV_CACHE = "src/llama-kv-cache.cpp"
KV_LINES = [f"int line_{n} = {n};\n" for n in range(1, 31)]


def make_patch(path: str, old: list[str], new: list[str]) -> str:
    """A `git diff`-style patch turning ``old`` into ``new`` at ``path``."""
    body = difflib.unified_diff(old, new, f"a/{path}", f"b/{path}", n=3)
    return f"diff --git a/{path} b/{path}\n" + "".join(body)


def edited(lines: list[str], changes: dict[int, str]) -> list[str]:
    """``lines`` with 1-based line numbers replaced by ``changes``."""
    return [changes.get(number, line) for number, line in enumerate(lines, start=1)]


def make_fake_sdist(parent: Path, version: str = bb.LLAMA_CPP_PYTHON_VERSION) -> Path:
    """A tree shaped like the llama-cpp-python sdist, with a few files per folder."""
    root = parent / f"llama_cpp_python-{version}"
    files = {
        "PKG-INFO": f"Metadata-Version: 2.1\nName: llama_cpp_python\nVersion: {version}\n",
        "pyproject.toml": "[project]\nname = 'llama_cpp_python'\n",
        "CMakeLists.txt": "project(llama_cpp)\n",
        "README.md": "readme\n",
        ".gitignore": "lib/\n",
        ".git/HEAD": "ref: refs/heads/main\n",
        ".github/workflows/ci.yml": "on: push\n",
        "docs/index.md": "docs\n",
        "examples/high_level_api/x.py": "print()\n",
        "docker/Dockerfile": "FROM x\n",
        "llama_cpp/__init__.py": f'__version__ = "{version}"\n',
        "tests/test_llama.py": "def test(): pass\n",
        "vendor/llama.cpp/.git": "gitdir: ../../.git/modules/vendor/llama.cpp\n",
        "vendor/llama.cpp/CMakeLists.txt": "project(llama)\n",
        "vendor/llama.cpp/LICENSE": "MIT\n",
        f"vendor/llama.cpp/{KV_CACHE}": "".join(KV_LINES),
        "vendor/llama.cpp/include/llama.h": "// llama.h\n",
        "vendor/llama.cpp/common/common.cpp": "// common\n",
        "vendor/llama.cpp/cmake/common.cmake": "# cmake\n",
        "vendor/llama.cpp/vendor/nlohmann/json.hpp": "// json\n",
        "vendor/llama.cpp/gguf-py/gguf/__init__.py": "\n",
        "vendor/llama.cpp/models/ggml-vocab-llama.gguf": "GGUF",
        "vendor/llama.cpp/docs/build.md": "docs\n",
        "vendor/llama.cpp/tools/mtmd/CMakeLists.txt": "# mtmd\n",
        "vendor/llama.cpp/tests/test-backend-ops.cpp": "// test\n",
        "vendor/llama.cpp/examples/simple/simple.cpp": "// example\n",
        "vendor/llama.cpp/media/logo.png": "png",
        "vendor/llama.cpp/benches/bench.md": "bench\n",
        "vendor/llama.cpp/convert_hf_to_gguf.py": "# convert\n",
        "vendor/llama.cpp/ggml/CMakeLists.txt": "# ggml\n",
        "vendor/llama.cpp/ggml/src/CMakeLists.txt": "# ggml src\n",
        "vendor/llama.cpp/ggml/src/ggml.c": "// ggml\n",
        "vendor/llama.cpp/ggml/src/ggml-cpu/ggml-cpu.c": "// cpu\n",
        "vendor/llama.cpp/ggml/src/ggml-cuda/ggml-cuda.cu": "// cuda\n",
        "vendor/llama.cpp/ggml/src/ggml-metal/ggml-metal.m": "// metal\n",
        "vendor/llama.cpp/ggml/src/ggml-blas/ggml-blas.cpp": "// blas\n",
        "vendor/llama.cpp/ggml/src/ggml-rpc/ggml-rpc.cpp": "// rpc\n",
        "vendor/llama.cpp/ggml/src/ggml-vulkan/ggml-vulkan.cpp": "// vulkan\n",
        "vendor/llama.cpp/ggml/src/ggml-opencl/ggml-opencl.cpp": "// opencl\n",
        "vendor/llama.cpp/ggml/src/ggml-sycl/ggml-sycl.cpp": "// sycl\n",
    }
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def make_tarball(root: Path, dest: Path) -> Path:
    with tarfile.open(dest, "w:gz") as tar:
        tar.add(root, arcname=root.name)
    return dest


def write_patches(folder: Path, patches: dict[str, str]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in patches.items():
        (folder / name).write_text(text)
    return bb.list_patches(folder)


GOOD_PATCH = make_patch(KV_CACHE, KV_LINES, edited(KV_LINES, {3: "int line_3 = 300;\n"}))
# Hunk 1 applies; hunk 2 expects line 20 to read differently than it does.
BAD_PATCH = make_patch(
    KV_CACHE,
    edited(KV_LINES, {20: "int line_20 = -1;\n"}),
    edited(KV_LINES, {8: "int line_8 = 800;\n", 20: "int line_20 = 2000;\n"}),
)


def test_build_key_follows_patch_bytes(tmp_path: Path) -> None:
    patches = write_patches(tmp_path / "p", {"0001-a.patch": GOOD_PATCH, "0002-b.patch": "x\n"})
    key = bb.make_build_key(patches, "cpu", "90")
    assert bb.make_build_key(patches, "cpu", "90") == key
    assert bb.make_build_key(patches, "cpu", "90").digest == key.digest

    (tmp_path / "p" / "0002-b.patch").write_bytes(b"y\n")
    changed = bb.make_build_key(patches, "cpu", "90")
    assert changed.patches_sha256 != key.patches_sha256
    assert changed.digest != key.digest


def test_build_key_covers_every_patch_of_the_series(tmp_path: Path) -> None:
    """The key changes when a patch of the series is added, removed or renamed (the name fixes the order)."""
    folder = tmp_path / "p"
    two = write_patches(folder, {"0001-a.patch": GOOD_PATCH, "0002-b.patch": "x\n"})
    key = bb.make_build_key(two, "cpu", "90").digest
    three = write_patches(folder, {"0003-c.patch": "z\n"})
    assert [p.name for p in three] == ["0001-a.patch", "0002-b.patch", "0003-c.patch"]
    assert bb.make_build_key(three, "cpu", "90").digest != key
    (folder / "0003-c.patch").unlink()
    assert bb.make_build_key(bb.list_patches(folder), "cpu", "90").digest == key
    (folder / "0002-b.patch").rename(folder / "0000-b.patch")
    assert bb.make_build_key(bb.list_patches(folder), "cpu", "90").digest != key


def test_patch_in_format_patch_form_applies(tmp_path: Path) -> None:
    """The shipped series is written by `git format-patch`: a mail header and message before the diff."""
    header = ("From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001\n"
              "From: someone <someone@example.com>\nDate: Wed, 2 Dec 2026 01:41:46 +0000\n"
              "Subject: [PATCH 1/2] kv-cache : a change\n\nWhy it is made.\n---\n"
              " src/llama-kv-cache.cpp | 2 +-\n 1 file changed, 1 insertion(+), 1 deletion(-)\n\n")
    patches = write_patches(tmp_path / "p", {"0001-a.patch": header + GOOD_PATCH})
    root = make_fake_sdist(tmp_path / "src")
    bb.apply_patches(root, patches)
    assert "int line_3 = 300;" in (root / bb.LLAMA_CPP_DIR / KV_CACHE).read_text()


def test_shipped_series_is_described_patch_by_patch() -> None:
    """Every shipped patch has its section in the patches README, in the order the patches apply."""
    names = [p.name for p in bb.list_patches(bb.patch_dir())]
    assert names and all(name[:4].isdigit() for name in names)
    readme = (bb.patch_dir() / "README.md").read_text()
    sections = [line for line in readme.splitlines() if line.startswith("## 0")]
    assert [line[3:7] for line in sections] == [name[:4] for name in names]
    for name in names:
        assert f"`{name}`" in readme


def test_build_key_follows_backend_options(tmp_path: Path) -> None:
    patches = write_patches(tmp_path / "p", {"0001-a.patch": GOOD_PATCH})
    cpu = bb.make_build_key(patches, "cpu", "90")
    assert bb.make_build_key(patches, "cpu", "86").digest == cpu.digest  # arch only for cuda
    native = bb.make_build_key(patches, "cpu", "90", native=True)
    assert native.digest != cpu.digest
    assert "-DGGML_NATIVE=ON" in native.cmake_args and "-DGGML_NATIVE=OFF" in cpu.cmake_args
    assert native.cpu == bb.cpu_identity() and cpu.cpu is None  # a native wheel is tied to this CPU
    cuda90 = bb.make_build_key(patches, "cuda", "90")
    assert cuda90.digest != cpu.digest
    assert bb.make_build_key(patches, "cuda", "86").digest != cuda90.digest
    assert "-DCMAKE_CUDA_ARCHITECTURES=90" in cuda90.cmake_args
    assert "-DLLAVA_BUILD=OFF" in cuda90.cmake_args
    for backend in bb.BACKENDS:  # every build can offload to, and serve as, `hogwild rpc-server`
        assert "-DGGML_RPC=ON" in bb.make_build_key(patches, backend, "90").cmake_args


@pytest.mark.skipif(platform.machine() != "x86_64", reason="AMX is an x86-64 extension")
def test_builds_tuned_for_this_machine_leave_amx_out(tmp_path: Path) -> None:
    """ggml's AMX matmul killed every process on an AMX Xeon VM: no build tuned for the build machine has it."""
    import shlex

    def flags(backend: str, native: bool) -> list[str]:
        return shlex.split(bb.cmake_args(backend, "90", native))  # as scikit-build-core splits CMAKE_ARGS

    no_amx = "-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
    for backend, native in (("cpu", True), ("cuda", False), ("vulkan", False)):
        assert f"-DCMAKE_C_FLAGS={no_amx}" in flags(backend, native)
        assert f"-DCMAKE_CXX_FLAGS={no_amx}" in flags(backend, native)
    assert not any("amx" in flag for flag in flags("cpu", False))  # portable: GGML_AMX_* stay off by default
    assert not any("amx" in flag for flag in shlex.split(bb.cmake_args("cpu", "90", True, amx=True)))  # --amx


def test_patches_apply_in_name_order(tmp_path: Path) -> None:
    second = make_patch(KV_CACHE, edited(KV_LINES, {3: "int line_3 = 300;\n"}),
                        edited(KV_LINES, {3: "int line_3 = 301;\n"}))
    patches = write_patches(tmp_path / "p", {"0002-second.patch": second,
                                             "0001-first.patch": GOOD_PATCH})
    assert [p.name for p in patches] == ["0001-first.patch", "0002-second.patch"]
    root = make_fake_sdist(tmp_path / "src")
    bb.apply_patches(root, patches)
    assert "int line_3 = 301;" in (root / bb.LLAMA_CPP_DIR / KV_CACHE).read_text()


def test_patch_applies_inside_an_enclosing_git_repo(tmp_path: Path) -> None:
    # Inside a repository, plain `git apply` skips paths outside the current
    # folder and exits 0; the build must still patch the tree.
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    root = make_fake_sdist(tmp_path / "deep" / "src")
    patches = write_patches(tmp_path / "p", {"0001-a.patch": GOOD_PATCH})
    bb.apply_patches(root, patches)
    assert "int line_3 = 300;" in (root / bb.LLAMA_CPP_DIR / KV_CACHE).read_text()


def test_rejected_patch_names_file_and_hunk(tmp_path: Path) -> None:
    root = make_fake_sdist(tmp_path / "src")
    patches = write_patches(tmp_path / "p", {"0001-good.patch": GOOD_PATCH,
                                             "0002-bad.patch": BAD_PATCH})
    with pytest.raises(BuildError) as failure:
        bb.apply_patches(root, patches)
    message = str(failure.value)
    assert "0002-bad.patch" in message
    assert f"hunk #2 (@@ -17,7 +17,7 @@) of {KV_CACHE} is rejected" in message
    assert "0001-good.patch" not in message.splitlines()[0]


def test_rejected_patch_fails_the_command_without_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tarball = make_tarball(make_fake_sdist(tmp_path / "src"), tmp_path / "sdist.tar.gz")
    write_patches(tmp_path / "p", {"0001-bad.patch": BAD_PATCH})
    monkeypatch.setattr(bb, "PATCH_DIR", tmp_path / "p")
    monkeypatch.setenv("HOGWILD_CACHE_DIR", str(tmp_path / "cache"))
    result = CliRunner().invoke(
        build_backend_command, ["--bundle", str(tmp_path / "out"), "--sdist", str(tarball)]
    )
    assert result.exit_code == 1
    assert "Patch 0001-bad.patch does not apply" in result.output
    assert f"of {KV_CACHE} is rejected" in result.output
    assert "Traceback" not in result.output
    assert not list((tmp_path / "out").glob("*.tar.gz"))


def test_garbage_patch_is_reported(tmp_path: Path) -> None:
    root = make_fake_sdist(tmp_path / "src")
    patches = write_patches(tmp_path / "p", {"0001-empty.patch": ""})
    with pytest.raises(BuildError, match="Patch 0001-empty.patch does not apply"):
        bb.apply_patches(root, patches)


def test_prune_keeps_what_the_build_needs(tmp_path: Path) -> None:
    root = make_fake_sdist(tmp_path / "src")
    bb.prune_source_tree(root, bb.BUNDLE_BACKENDS)
    llama = root / bb.LLAMA_CPP_DIR
    kept = ["PKG-INFO", "pyproject.toml", "CMakeLists.txt", "README.md", ".gitignore",
            "llama_cpp/__init__.py", "tests/test_llama.py",
            f"{bb.LLAMA_CPP_DIR}/{KV_CACHE}", f"{bb.LLAMA_CPP_DIR}/include/llama.h",
            f"{bb.LLAMA_CPP_DIR}/common/common.cpp", f"{bb.LLAMA_CPP_DIR}/cmake/common.cmake",
            f"{bb.LLAMA_CPP_DIR}/vendor/nlohmann/json.hpp", f"{bb.LLAMA_CPP_DIR}/LICENSE",
            f"{bb.LLAMA_CPP_DIR}/gguf-py/gguf/__init__.py", f"{bb.LLAMA_CPP_DIR}/ggml/src/ggml.c"]
    for relative in kept:
        assert (root / relative).is_file(), relative
    for backend in ("cpu", "cuda", "metal", "vulkan", "blas", "rpc"):
        assert (llama / "ggml" / "src" / f"ggml-{backend}").is_dir(), backend
    dropped = [".git", ".github", "docs", "examples", "docker"]
    dropped += [f"{bb.LLAMA_CPP_DIR}/{name}" for name in
                (".git", "models", "docs", "tools", "tests", "examples", "media", "benches",
                 "convert_hf_to_gguf.py", "ggml/src/ggml-opencl", "ggml/src/ggml-sycl")]
    for relative in dropped:
        assert not (root / relative).exists(), relative


def test_prune_without_backend_list_keeps_every_backend(tmp_path: Path) -> None:
    root = make_fake_sdist(tmp_path / "src")
    bb.prune_source_tree(root, None)
    ggml_src = root / bb.LLAMA_CPP_DIR / "ggml" / "src"
    assert (ggml_src / "ggml-opencl").is_dir()
    assert not (root / bb.LLAMA_CPP_DIR / "models").exists()


def test_bundle_is_patched_once_and_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOGWILD_CACHE_DIR", str(tmp_path / "cache"))
    tarball = make_tarball(make_fake_sdist(tmp_path / "src"), tmp_path / "sdist.tar.gz")
    patches = write_patches(tmp_path / "p", {"0001-good.patch": GOOD_PATCH})
    bundle = bb.write_bundle(tmp_path / "out", patches, tarball)
    with tarfile.open(bundle) as tar:
        names = tar.getnames()
    top = f"llama_cpp_python-{bb.LLAMA_CPP_PYTHON_VERSION}"
    assert f"{top}/{bb.BUNDLE_MARKER}" in names
    assert not any(".git" in Path(name).parts for name in names)

    # Building from the bundle must not apply the (already applied) patch again.
    root = bb.prepare_source(bundle, patches, tmp_path / "work1")
    assert "int line_3 = 300;" in (root / bb.LLAMA_CPP_DIR / KV_CACHE).read_text()

    other = write_patches(tmp_path / "q", {"0001-other.patch": GOOD_PATCH.replace("300", "7")})
    with pytest.raises(BuildError, match="other llama.cpp patches"):
        bb.prepare_source(bundle, other, tmp_path / "work2")


def test_sdist_of_another_version_is_refused(tmp_path: Path) -> None:
    tarball = make_tarball(make_fake_sdist(tmp_path / "src", "0.3.1"), tmp_path / "old.tar.gz")
    (tmp_path / "work").mkdir()
    with pytest.raises(BuildError, match="holds llama-cpp-python 0.3.1"):
        bb.extract_sdist(tarball, tmp_path / "work")


def test_backend_status_reports_the_installed_patched_build() -> None:
    """The suite runs on the patched library it built (`make test`): doctor's facts say exactly that."""
    import llama_cpp

    status = build_status()
    assert status["importable"] is True, status["error"]
    assert status["error"] is None
    assert status["version"] == bb.LLAMA_CPP_PYTHON_VERSION and status["version_ok"] is True
    assert status["patched"] is True
    lib = Path(status["lib_path"])
    assert lib.is_file() and lib.name.startswith("libllama")
    assert lib.parent == install.library_dir(install.installed_package_dir())
    marker = install.installed_build_info()
    assert marker is not None, "the installed llama-cpp-python is not one `hogwild build-backend` built"
    assert status["build_key"] == marker["key"] and re.fullmatch(r"[0-9a-f]{16}", status["build_key"])
    assert status["backend"] in ("cpu", "cuda", "metal", "vulkan", "hip")
    # every build has the RPC backend, which makes llama.cpp's own "supports GPU offload" true everywhere
    assert llama_cpp.llama_supports_rpc() and llama_cpp.llama_supports_gpu_offload()
    if not os.environ.get("HOGWILD_TEST_GPU_LAYERS"):  # the suite's CPU build (the GPU runs set it)
        assert status["backend"] == "cpu"
        assert status["gpu_offload"] is False  # doctor looks for a local GPU device instead
    else:
        assert status["gpu_offload"] is True


def test_backend_status_of_a_library_without_the_patch() -> None:
    """A libllama without the Hogwild symbols is importable but not patched (doctor says so, no crash)."""
    code = (
        "import llama_cpp.llama_cpp as L\n"
        "class Stock: pass\n"
        "stock = Stock()\n"
        "for n in ('llama_backend_init', 'llama_log_set', 'llama_supports_gpu_offload', 'llama_print_system_info'):\n"
        "    setattr(stock, n, getattr(L._lib, n))\n"
        "stock._name = L._lib._name\n"
        "L._lib = stock\n"
        "from hogwild_local.native.library import build_status\n"
        "s = build_status()\n"
        "print(s['importable'], s['patched'], s['version_ok'])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["True", "False", "True"]


def test_print_lib_path_prints_the_installed_library_folder() -> None:
    result = CliRunner().invoke(build_backend_command, ["--print-lib-path"])
    assert result.exit_code == 0, result.output
    assert result.output == f"{install.installed_package_dir() / 'lib'}\n"
    assert any(Path(result.output.strip()).glob("libllama.*"))


def test_print_lib_path_without_llama_cpp_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bb, "installed_package_dir", lambda: None)
    result = CliRunner().invoke(build_backend_command, ["--print-lib-path"])
    assert result.exit_code == 1
    assert result.output == "Error: llama-cpp-python is not installed.\n  hint: run `hogwild build-backend`.\n"


def test_a_vulkan_build_without_its_sdk_stops_at_once_saying_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No Vulkan headers and no glslc: one error before anything is downloaded or compiled, naming both and the
    packages; the other backends need neither."""
    monkeypatch.setenv("VULKAN_SDK", str(tmp_path))  # no include/vulkan/vulkan.h in it
    monkeypatch.setenv("PATH", str(tmp_path))  # no glslc on it
    monkeypatch.setenv("HOGWILD_CACHE_DIR", str(tmp_path / "cache"))
    result = CliRunner().invoke(build_backend_command, ["--backend", "vulkan"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    first, hint = result.output.strip().split("\n")
    assert first == "Error: A Vulkan build needs the Vulkan headers and glslc, not found here."
    assert "sudo apt-get install libvulkan-dev glslc spirv-headers" in hint
    assert not (tmp_path / "cache" / "sdist").exists()  # refused before the download
    bb.check_backend_sdk("cpu")
