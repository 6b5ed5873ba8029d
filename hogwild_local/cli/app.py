"""The `hogwild` group and its one registry of commands: every command module is imported here, plainly, so a
broken import fails loudly instead of a command vanishing."""

from __future__ import annotations

import click

from .bench import bench_command
from .build_backend import build_backend_command
from .command import Group
from .doctor import doctor
from .eval import eval_command
from .models import models_group
from .rpc_server import rpc_server
from .run import run
from .serve import serve
from .transcript import transcript
from .tui import tui


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="hogwild-local")
def main() -> None:
    """Hogwild! Inference on local GGUF models: several workers write at once over ONE shared KV cache,
    each seeing the others' tokens as they are written.

    \b
    First steps:
      hogwild build-backend             # build llama.cpp with the Hogwild patch (once)
      hogwild run "What is 17 * 23?"    # 2 workers on the default model
      hogwild tui                       # watch the workers live
      hogwild doctor                    # check the set-up
    """


# the registry: `hogwild --help` lists these (click sorts them by name)
COMMANDS: tuple[click.Command, ...] = (
    run, tui, serve, doctor, models_group, build_backend_command, bench_command, eval_command, transcript,
    rpc_server,
)
for _command in COMMANDS:
    main.add_command(_command)
