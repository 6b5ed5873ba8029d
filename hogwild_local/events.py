"""What a generation run tells its consumers (the CLI, the TUI, transcripts, the evaluator).

Every event is a small frozen dataclass with a ``type`` tag; ``to_dict`` gives the JSON form used by
``hogwild run --json`` and by transcripts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class StartEvent:
    """The run begins: its configuration and the model."""

    config: dict
    model: dict
    prompt_tokens: int
    type: str = "start"


@dataclass(frozen=True)
class TokenEvent:
    """Text a worker wrote (``forced``: written by the engine, e.g. a step header)."""

    worker: str
    text: str
    pass_: int
    forced: bool = False
    type: str = "token"


@dataclass(frozen=True)
class StepEvent:
    """A worker finished a step; it is now part of the shared history (``worker`` "User" for notes)."""

    worker: str
    step: int
    text: str
    pass_: int
    type: str = "step"


@dataclass(frozen=True)
class CutEvent:
    """The engine cut a worker's unfinished step; ``text`` is what stays of it ("" = all of it was freed).

    ``reason``: ``header`` (the worker began a step header itself: the step ends before it) or ``repeat``
    (the finished step said word for word what a seen step said, and was freed instead of kept).
    """

    worker: str
    text: str
    pass_: int
    reason: str
    type: str = "cut"


@dataclass(frozen=True)
class StatsEvent:
    """Progress after a pass; ``cells_used`` is read from llama.cpp, ``tokens_written`` counted by the engine."""

    pass_: int
    budget: int
    tokens_per_s: float
    worker_tokens_per_s: dict[str, float]
    cells_used: int
    cells_total: int
    tokens_written: int
    elapsed_s: float
    type: str = "stats"


@dataclass(frozen=True)
class SnapshotEvent:
    """The answer the finisher gives after ``budget`` passes (asked mid-run; generation goes on)."""

    budget: int
    answer: str | None
    reason: str  # why there is an answer by now: answer (a worker wrote one) | finisher
    tokens_generated: int
    elapsed_s: float
    type: str = "snapshot"


@dataclass(frozen=True)
class AnswerEvent:
    """The end: the final answer (None if none could be read) and why generation stopped."""

    answer: str | None
    reason: str  # answer | budget | eos | context_full | stopped
    finisher_text: str
    passes: int
    tokens_generated: int
    elapsed_s: float
    votes: dict[str, int] = field(default_factory=dict)
    type: str = "answer"


Event = StartEvent | TokenEvent | StepEvent | CutEvent | StatsEvent | SnapshotEvent | AnswerEvent


def to_dict(event: Event) -> dict:
    """The JSON form of an event (``pass_`` is written ``pass``)."""
    data = asdict(event)
    if "pass_" in data:
        data["pass"] = data.pop("pass_")
    return data
