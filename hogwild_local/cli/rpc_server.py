"""`hogwild rpc-server`: lend this machine's device to a hogwild (or llama.cpp) client on another one."""

from __future__ import annotations

from pathlib import Path

import click

from ..native.rpc import DEFAULT_PORT
from .command import Command
from .options import threads_option


@click.command("rpc-server", cls=Command)
@click.option("--host", default="127.0.0.1", show_default=True,
              help="IPv4 address to listen on (0.0.0.0: every interface).")
@click.option("--port", "-p", type=click.IntRange(1, 65535), default=DEFAULT_PORT, show_default=True)
@click.option("--device", "devices", multiple=True, metavar="NAME",
              help="Serve this ggml device (repeatable; see --list-devices). Default: every GPU, else the CPU.")
@click.option("--cache", "use_cache", is_flag=True,
              help="Keep the large tensors clients send in a folder, so a model loads faster the next time.")
@threads_option
@click.option("--list-devices", is_flag=True, help="List this machine's devices and exit.")
def rpc_server(host: str, port: int, devices: tuple[str, ...], use_cache: bool, threads: int | None,
               list_devices: bool) -> None:
    """Run a ggml RPC server: clients started with `--rpc HOST:PORT` put layers on this machine's device.

    The protocol has NO authentication and NO encryption: anyone who can reach the port can run code on
    this machine's device and read what it holds. Listen on 127.0.0.1 (the default), or on a network where
    every machine is trusted.

    \b
    Examples:
      hogwild rpc-server --host 0.0.0.0          # on the machine with the GPU (gpu-box)
      hogwild run --rpc gpu-box:50052 -ngl -1 "What is 17 * 23?"   # on the laptop: every layer there
      hogwild rpc-server --list-devices
    Stop it with Ctrl-C.
    """
    from ..native.install import cache_dir
    from ..native.rpc import device_names, local_devices, serve

    if list_devices:
        for line in device_names(local_devices()):
            click.echo(line)
        return

    def ready(line: str) -> None:
        click.echo(line, err=True)
        if host != "127.0.0.1":
            click.echo(f"warning: listening on {host}: the RPC protocol has no authentication; every machine that "
                       "can reach this port can use this device", err=True)

    cache = Path(cache_dir()).parent / "rpc" if use_cache else None
    try:
        serve(host, port, threads=threads, devices=devices, cache=cache, on_ready=ready)
    except KeyboardInterrupt:
        click.echo("rpc-server stopped", err=True)
