"""Test-wide settings."""

import os

# llama.cpp's idle OpenMP threads spin by default; on a small shared machine that starves the other
# threads of the same test run (the TUI's event loop, subprocesses). Must be set before llama.cpp loads.
os.environ.setdefault("OMP_WAIT_POLICY", "passive")
