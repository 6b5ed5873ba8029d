"""One colour per author, shared by the panes, the history, the status bar and the view-as screen."""

from __future__ import annotations

from ..engine.layout import WORKER_NAMES

# readable on dark and light backgrounds, distinct from each other (Alice, Bob, Carol, ... in order)
WORKER_COLORS = ("#4aa8ff", "#f0a030", "#4cc060", "#c080f0", "#f06070", "#30c0c0", "#d0b000", "#a0a0a0")
USER_COLOR = "#ff60c0"
PROBLEM_COLOR = "#8a8a8a"


def color_of(author: str) -> str:
    """The colour of a worker by name ("Alice", ...), of "User" notes, or grey for anything else."""
    if author in WORKER_NAMES:
        return WORKER_COLORS[WORKER_NAMES.index(author)]
    return USER_COLOR if author == "User" else PROBLEM_COLOR
