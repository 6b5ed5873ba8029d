"""The code style the project keeps: ruff's checks as configured in pyproject.toml, over the whole repository.

A finding fails the suite (and so CI) with ruff's own report, file and line, so style cannot drift between
sessions. Fix with ``ruff check --fix .`` where ruff offers it, by hand otherwise.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_finds_nothing():
    out = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format", "concise", "."],
                         cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
