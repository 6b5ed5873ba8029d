"""The one place where library errors become command-line errors.

Library code raises :class:`~hogwild_local.errors.HogwildError` subclasses and never imports click; a command
built on :class:`Command` (or a group on :class:`Group`) turns one into ``Error: <message>`` and exit status 1,
also when a test invokes the command object directly. Kept apart from ``app.py`` because every command
module imports it and ``app.py`` imports every command module.
"""

from __future__ import annotations

from typing import Any

import click

from ..errors import HogwildError


class Command(click.Command):
    """A click command whose HogwildError is a one-line error (exit 1)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except HogwildError as err:
            raise click.ClickException(str(err)) from None


class Group(click.Group):
    """A click group mapping HogwildError like :class:`Command`; its sub-commands are Commands and Groups."""

    command_class = Command

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except HogwildError as err:
            raise click.ClickException(str(err)) from None


Group.group_class = Group
