"""`hogwild rpc-server` children on 127.0.0.1, for measuring and testing the RPC backend on one machine
(scripts/rpc_bench.py, tests/test_rpc.py)."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

HOGWILD = [sys.executable, "-m", "hogwild_local"]


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def rpc_servers(count: int, threads: int = 1, timeout: float = 60.0) -> Iterator[list[str]]:
    """``count`` servers with ``threads`` threads each on free loopback ports; yields their endpoints once each
    accepts connections, and kills them on exit. Raises RuntimeError (with its stderr) for one that exits."""
    procs: list[subprocess.Popen] = []
    endpoints = []
    try:
        for _ in range(count):
            port = free_port()
            procs.append(subprocess.Popen([*HOGWILD, "rpc-server", "--port", str(port), "--threads", str(threads)],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
            endpoints.append(f"127.0.0.1:{port}")
        for proc, endpoint in zip(procs, endpoints, strict=True):
            _wait_listening(proc, endpoint, timeout)
        yield endpoints
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def _wait_listening(proc: subprocess.Popen, endpoint: str, timeout: float) -> None:
    host, _, port = endpoint.rpartition(":")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"rpc-server {endpoint} exited {proc.returncode}: {proc.stderr.read()}")
        with contextlib.suppress(OSError), socket.create_connection((host, int(port)), timeout=1):
            return
        time.sleep(0.2)
    raise RuntimeError(f"rpc-server {endpoint} did not listen within {timeout} s")
