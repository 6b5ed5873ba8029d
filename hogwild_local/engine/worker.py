"""One worker's state between passes (its own file: the loop and its helpers share it without a cycle)."""

from __future__ import annotations

import codecs
from dataclasses import dataclass, field

from ..native.sampler import Sampler
from .layout import WORKER_NAMES


@dataclass
class Worker:
    """One worker's state between passes."""

    index: int
    sampler: Sampler
    decoder: codecs.IncrementalDecoder = field(default_factory=lambda: codecs.getincrementaldecoder("utf-8")("replace"))
    pending: list[int] = field(default_factory=list)  # tokens to write in the next pass
    step: int = 1
    step_text: str = ""
    step_start: int = 0  # where the step begins in the worker's step block (later than 0 if steps stay put)
    token_ends: list[int] = field(default_factory=list)  # per token of the step: its end in step_text
    ending: bool = False  # the pending token ends the step
    done: bool = False
    generated: int = 0

    @property
    def name(self) -> str:
        return WORKER_NAMES[self.index]
