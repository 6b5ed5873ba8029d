"""Where a measurement comes from: the commit, the machine, its load, the model file and the native build.

Bench and eval record the same facts the same way (one git lookup, one CPU name from ``native.install.cpu_info``,
one file hash from ``models.sha256_file``), so their reports can be read side by side.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from pathlib import Path

from ..models import installed, load_manifest, sha256_file
from ..native.install import PACKAGE_PARENT, cpu_info, installed_build_info
from ..native.library import library_info


def git_commit() -> str | None:
    """``git rev-parse --short HEAD`` of the checkout this package runs from, ``-dirty`` when tracked files are
    modified; None outside a checkout (an installed wheel) or without git."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=PACKAGE_PARENT, capture_output=True,
                                text=True, timeout=10, check=False)
        if commit.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=PACKAGE_PARENT,
                               capture_output=True, text=True, timeout=10, check=False)
        return commit.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def cpu_name() -> str:
    """The CPU's model name (the ``model name`` of /proc/cpuinfo), else ``platform.processor()`` or the machine type."""
    for line in cpu_info().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def load_average() -> tuple[float, float, float] | None:
    """The 1-, 5- and 15-minute load averages (None where the OS has none): timings mean little on a busy machine."""
    try:
        return os.getloadavg()
    except (AttributeError, OSError):
        return None


def machine_name() -> str:
    """One line for a bench report: the NVIDIA GPUs nvidia-smi names, if any, then the CPU and its cores."""
    cpu = f"{cpu_name()} ({os.cpu_count()} cores)"
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run([smi, "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                                 text=True, timeout=10, check=False)
            gpus = [g.strip() for g in out.stdout.splitlines() if g.strip()]
            if gpus:
                return f"{', '.join(gpus)}; {cpu}"
        except (OSError, subprocess.SubprocessError):
            pass
    return cpu


def machine_record() -> dict:
    """The machine as a results header records it: CPU, cores, memory, OS, Python, load, OpenMP/library env."""
    memory = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory = f"{int(line.split()[1]) / 2**20:.1f} GiB"
                break
    except OSError:
        pass
    load = load_average()  # other jobs on the machine slow the wall times
    env = {k: os.environ[k] for k in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "LLAMA_CPP_LIB_PATH") if k in os.environ}
    return {"cpu": cpu_name(), "cores": os.cpu_count(), "memory": memory, "os": platform.platform(),
            "python": platform.python_version(), "hostname": platform.node(),
            "load_average": [round(x, 2) for x in load] if load else None, "env": env}


def model_record(path: Path) -> dict:
    """Path, size and sha256 of the model file (from the manifest when it is a manifest model, else hashed)."""
    path = Path(path)
    sha = None
    try:
        for entry in load_manifest():
            found = installed(entry)
            if found is not None and found.resolve() == path.resolve():
                sha = entry.sha256
                break
    except Exception:  # a broken manifest must not stop a measurement: hash the file instead
        sha = None
    return {"path": str(path), "name": path.name, "size_bytes": path.stat().st_size, "sha256": sha or sha256_file(path)}


def backend_record() -> dict:
    """Which native build ran. Sampled text depends on it: another build (another CPU's SIMD kernels under a
    native build) rounds floats differently, and one changed token changes the rest of a run."""
    info, build = library_info(), installed_build_info() or {}
    return {"version": info.get("version"), "build": build.get("key"), "cmake_args": build.get("cmake_args"),
            "cpu": build.get("cpu"), "system_info": info.get("system_info")}
