"""Child processes: pip in this interpreter's environment, and the one line of output an error quotes (a leaf)."""

from __future__ import annotations

import subprocess
import sys


def last_line(text: str | None, default: str = "no output") -> str:
    """The last non-blank line of ``text`` (stripped), else ``default``: what an error message quotes."""
    lines = (text or "").strip().splitlines()
    return lines[-1].strip() if lines else default


def run_pip(*args: str, quiet: bool = True) -> subprocess.CompletedProcess[str]:
    """``python -m pip ARGS`` with this interpreter; stderr is captured (text), stdout too unless not ``quiet``
    (then it goes to the terminal: pip's own progress)."""
    return subprocess.run([sys.executable, "-m", "pip", *args], stdout=subprocess.DEVNULL if quiet else None,
                          stderr=subprocess.PIPE, text=True)
