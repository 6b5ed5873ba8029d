"""The `hogwild` command line: run, tui, serve, models, doctor, build-backend, bench, eval, transcript.

One module per command, registered in :mod:`.app`. Every command consumes engine events only. Errors are one
line plus a hint (exit 1), usage errors exit 2, Ctrl-C stops generation, still prints the final answer, and
exits 130.
"""

from .app import main

__all__ = ["main"]
