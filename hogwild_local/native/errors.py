"""The native layer's user-facing errors (all :class:`~hogwild_local.errors.HogwildError`)."""

from __future__ import annotations

from ..errors import HogwildError


class BackendError(HogwildError):
    """A user-facing failure of the backend: one line, with a hint where there is one."""


class UnpatchedLibraryError(BackendError):
    """llama-cpp-python is missing, the wrong version, built without the Hogwild patch, or fails its self-test."""


class LibraryError(HogwildError):
    """The llama.cpp library cannot be used here: one line saying why and what to run."""


class BuildError(HogwildError):
    """Building or installing the backend failed: one line saying what went wrong, one saying what to do."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message, hint)
        self.message, self.hint = message, hint

    def __str__(self) -> str:
        return f"{self.message}\n  hint: {self.hint}"
