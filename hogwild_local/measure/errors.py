"""The measurements' one-line error (a bad data set, an incompatible results file, an unreadable option value)."""

from __future__ import annotations

from ..errors import HogwildError


class EvalError(HogwildError):
    """A one-line user-facing error of an evaluation; the command line shows its text without a traceback."""
