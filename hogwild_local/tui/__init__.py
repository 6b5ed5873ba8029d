"""The terminal UI of hogwild-local (``hogwild tui``): live worker panes, history, hints, view-as.

``tui.app`` holds the app (it imports textual); ``tui.theme`` holds the worker colours, which the plain
``hogwild run`` output shares without loading textual.
"""
