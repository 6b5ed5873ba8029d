"""Native handles: an object owning a llama.cpp pointer, and Ctrl-C held during a long native call (a leaf)."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator


@contextlib.contextmanager
def interrupt_after_native_call() -> Iterator[None]:
    """Hold Ctrl-C during a long native call and raise it when the call returns.

    Python runs signal handlers only in Python code, and during a model load that is the log callback:
    a KeyboardInterrupt raised there is swallowed by ctypes ("Exception ignored ...") and the load goes
    on as if nothing happened.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # signals are delivered to the main thread only
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt


class NativeHandle:
    """An object owning a llama.cpp pointer: freed once, by close(), a with-block, or garbage collection."""

    ptr = None

    def _free(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Free the native object (idempotent)."""
        if self.ptr:
            self._free()
            self.ptr = None

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()
