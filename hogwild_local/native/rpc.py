"""llama.cpp's RPC backend: offload a model's layers to ggml RPC servers on other machines, or be one.

Every build carries ggml's RPC backend (``native/build.py``). A client names its servers before it loads a
model (``Model(..., rpc=...)``, the commands' ``--rpc HOST:PORT,...``); each server's devices then come first
in llama.cpp's device list, so ``--gpu-layers`` and ``--tensor-split`` place layers on them as on local GPUs.
A server (``hogwild rpc-server``) runs the graphs it is sent on its own best device. The protocol has no
authentication and no encryption: a server must only listen where every peer is trusted.

ggml-rpc aborts the process when a server cannot be reached or stops answering; :func:`add_servers` checks
each address first so that a wrong one is a clear error, and ``library.py``'s abort hook turns a server that
dies mid-run into one line.
"""

from __future__ import annotations

import ctypes
import ipaddress
import os
import socket
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from .errors import BackendError
from .library import DEV_CPU, DEV_GPU, DEV_IGPU, ggml_library, load

DEFAULT_PORT = 50052  # llama.cpp's rpc-server default
CONNECT_TIMEOUT_S = 5.0

_added: list[str] = []  # endpoints whose devices this process registered (ggml cannot forget them)
_lock = threading.Lock()


def parse_endpoints(text: str) -> list[str]:
    """``HOST:PORT[,HOST:PORT...]`` -> the endpoints, each checked; raises BackendError naming the bad one."""
    endpoints = [part.strip() for part in text.split(",") if part.strip()]
    if not endpoints:
        raise BackendError(f"--rpc takes HOST:PORT[,HOST:PORT...], e.g. 192.168.1.20:{DEFAULT_PORT}")
    for endpoint in endpoints:
        host, sep, port = endpoint.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise BackendError(f"--rpc: {endpoint!r} is not HOST:PORT (e.g. 192.168.1.20:{DEFAULT_PORT})")
    return endpoints


def _probe(endpoint: str) -> None:
    """Fail with one line if nothing accepts a connection at ``endpoint`` (ggml-rpc would abort instead)."""
    host, _, port = endpoint.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as err:
        reason = "timed out" if isinstance(err, TimeoutError) else (err.strerror or str(err)).lower()
        raise BackendError(f"cannot reach the RPC server {endpoint}: {reason} "
                           f"(start one there with: hogwild rpc-server --host HOST --port {port})") from None


def add_servers(endpoints: Sequence[str]) -> None:
    """Register the devices of the RPC servers at ``endpoints`` with ggml, for the models loaded after this.

    A process keeps what it registered (ggml has no way to forget a device), so a second call may only
    repeat or extend the same list. Raises BackendError for a server that cannot be reached or has no device.
    """
    load()
    rpc = ggml_library("ggml-rpc")
    ggml = ggml_library()
    with _lock:
        for endpoint in endpoints:
            if endpoint in _added:
                continue
            _probe(endpoint)
            reg = rpc.ggml_backend_rpc_add_server(endpoint.encode())
            if not reg:
                raise BackendError(f"the RPC server {endpoint} offers no device")
            ggml.ggml_backend_register(reg)
            _added.append(endpoint)


def serve(host: str, port: int, *, threads: int | None = None, devices: Sequence[str] = (),
          cache: Path | None = None, on_ready: Callable[[str], None] = print) -> NoReturn:
    """Run a ggml RPC server on ``host:port`` until Ctrl-C (KeyboardInterrupt) or a fatal error (BackendError).

    ``devices``: ggml device names to serve (``hogwild rpc-server --list-devices``); default: every GPU, else
    the CPU (llama.cpp's rpc-server does the same). ``cache``: a folder where the server keeps the large tensors
    it was sent, so a client that loads the same model again sends only their hashes.
    """
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        raise BackendError(f"--host takes an IPv4 address such as 127.0.0.1 or 0.0.0.0, not {host!r}") from None
    load()
    chosen = _server_devices(devices)
    _check_port_free(host, port)
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
    rpc = ggml_library("ggml-rpc")
    array = (ctypes.c_void_p * len(chosen))(*chosen)
    endpoint = f"{host}:{port}".encode()
    cache_arg = str(cache).encode() if cache is not None else None
    n_threads = threads or os.cpu_count() or 1
    # the server loop never returns to Python, so it runs in a thread and Ctrl-C reaches the main one
    server = threading.Thread(target=rpc.ggml_backend_rpc_start_server, daemon=True,
                              args=(endpoint, cache_arg, n_threads, len(chosen), array))
    server.start()
    on_ready(f"hogwild rpc-server listening on {host}:{port} ({', '.join(device_names(chosen))})")
    while server.is_alive():
        server.join(0.5)
    raise BackendError(f"the RPC server on {host}:{port} stopped (its reason is printed above)")


def device_names(devices: Sequence[int]) -> list[str]:
    """``NAME (description)`` of ggml devices."""
    ggml = ggml_library()
    return [f"{ggml.ggml_backend_dev_name(d).decode()} ({ggml.ggml_backend_dev_description(d).decode()})"
            for d in devices]


def local_devices() -> list[int]:
    """Every ggml device of this machine (before any RPC server is added)."""
    load()
    ggml = ggml_library()
    return [ggml.ggml_backend_dev_get(i) for i in range(ggml.ggml_backend_dev_count())]


def _server_devices(names: Sequence[str]) -> list[int]:
    ggml = ggml_library()
    if names:
        found = []
        for name in names:
            dev = ggml.ggml_backend_dev_by_name(name.encode())
            if not dev:
                known = ", ".join(n.split(" ")[0] for n in device_names(local_devices()))
                raise BackendError(f"no device {name!r} here (devices: {known})")
            found.append(dev)
        return found
    every = local_devices()
    gpus = [d for d in every if ggml.ggml_backend_dev_type(d) in (DEV_GPU, DEV_IGPU)]
    cpus = [d for d in every if ggml.ggml_backend_dev_type(d) == DEV_CPU]
    return gpus or cpus[:1]


def _check_port_free(host: str, port: int) -> None:
    """ggml only prints "Failed to create server socket"; say which port and why before it tries."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as ggml's server socket does
    try:
        probe.bind((host, port))
    except OSError as err:
        raise BackendError(f"cannot listen on {host}:{port}: {(err.strerror or str(err)).lower()}") from None
    finally:
        probe.close()
