"""The one place where library errors become command-line errors.

Library code raises :class:`~hogwild_local.errors.HogwildError` subclasses and never imports click; a command
built on :class:`Command` (or a group on :class:`Group`) turns one into ``Error: <message>`` and exit status 1,
also when a test invokes the command object directly. A Command also keeps the arguments it was given, so a
report can record the command as typed (:func:`command_line`). Kept apart from ``app.py`` because every command
module imports it and ``app.py`` imports every command module.
"""

from __future__ import annotations

import shlex
from typing import Any

import click

from ..errors import HogwildError


class Command(click.Command):
    """A click command whose HogwildError is a one-line error (exit 1), and which keeps its own arguments as
    given (:func:`command_line`)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta[_ARGS] = tuple(args)
        return super().parse_args(ctx, args)

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

_ARGS = "hogwild_local.args"  # the key of a command's own arguments in ``click.Context.meta``


def command_line(ctx: click.Context) -> str:
    """The running command as typed, for a report: its path (``hogwild bench``, or ``python -m
    hogwild_local.measure.bench`` as click names a module run) and its own arguments, shell-quoted."""
    return shlex.join([*ctx.command_path.split(), *ctx.meta.get(_ARGS, ())])
