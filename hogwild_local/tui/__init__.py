"""The terminal UI of hogwild-local (``hogwild tui``): live worker panes, history, hints, view-as."""

from .app import HogwildApp, run_tui

__all__ = ["HogwildApp", "run_tui"]
