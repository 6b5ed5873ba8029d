"""The base of every error a user may see: one line (and a hint line where there is one).

Library code raises subclasses of :class:`HogwildError`; the command line maps them in one place
(``cli/command.py``) to ``Error: <message>`` and exit status 1, so no library module imports click.
"""

from __future__ import annotations


class HogwildError(Exception):
    """A user-facing failure: its text is what the user reads, without a traceback."""
