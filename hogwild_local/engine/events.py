"""What a generation run tells its consumers (the CLI, the TUI, transcripts, the evaluator).

Every event is a small frozen dataclass with a ``type`` tag; ``to_dict`` gives the JSON form used by
``hogwild run --json`` and by transcripts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class StartEvent:
    """The run begins: its configuration, the model, and the KV cache's real size.

    ``cells_total``: llama.cpp rounds the requested context (``config["n_ctx"]``) up, e.g. 600 to 768 cells.
    ``thinking``: why the model counts as a reasoning model (``signs``, values of ``thinking.Sign``; empty for
    an instruct model) and how the prompt ends (``block``: "open", "closed" or "none"), for ``config["think"]``.
    """

    config: dict
    model: dict
    prompt_tokens: int
    cells_total: int
    thinking: dict = field(default_factory=dict)
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

    ``reason``: ``header`` (the worker began a step header itself: the step ends before it), ``repeat``
    (the finished step said word for word what a seen step said, and was freed instead of kept) or ``long``
    (the step grew past ``RunConfig.step_limit`` tokens: it ends at this sentence or line end, or right here
    past twice the limit).
    """

    worker: str
    text: str
    pass_: int
    reason: str
    type: str = "cut"


@dataclass(frozen=True)
class StatsEvent:
    """Progress after a pass; ``cells_used`` is read from llama.cpp, ``tokens_written`` counted by the engine.

    ``tokens_written``: tokens the engine wrote into the cache (prompt, headers, notes, steps) less those it
    freed since (cut or dropped steps). Each token is stored once, so it always equals ``cells_used``.
    """

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
class AnswerTextEvent:
    """Text of the final answer as the finisher writes it, once no later token can take it back (prose and code
    answers; a box comes whole with the AnswerEvent). Together these pieces begin the AnswerEvent's ``answer``."""

    text: str
    type: str = "answer_text"


@dataclass(frozen=True)
class AnswerEvent:
    """The end: the final answer and why generation stopped.

    ``answer`` is None when there is none: in boxed mode the finisher wrote no \\boxed{...} with an answer in it
    (an empty box or a placeholder such as \\boxed{answer} does not count), in text or code mode it wrote
    nothing; consumers should say "no answer".

    ``reason``, and who wrote the answer:

    - ``answer``: a worker wrote one in a finished step (or in its last text);
    - ``budget``: the passes were spent; the finisher answered;
    - ``eos``: every worker ended its text; the finisher answered;
    - ``context_full``: the KV cache had no room for another pass; the finisher answered (it has room kept);
    - ``note_too_long``: a note from the user did not fit the room left in the cache, so it was not written
      and the run ended there; the finisher answered;
    - ``stopped``: stopped by the user; the finisher answered.
    """

    answer: str | None
    reason: str
    finisher_text: str
    passes: int
    tokens_generated: int
    elapsed_s: float
    votes: dict[str, int] = field(default_factory=dict)
    finisher_prompt: str = ""  # the text the finisher answered after ("" when none ran, or several voted)
    type: str = "answer"


Event = StartEvent | TokenEvent | StepEvent | CutEvent | StatsEvent | SnapshotEvent | AnswerTextEvent | AnswerEvent

# AnswerEvent.reason as the CLI and the TUI say it (the list above says who answered)
END_REASONS = {
    "answer": "a worker wrote an answer",
    "budget": "the budget was spent; the finisher answered",
    "eos": "every worker ended its text; the finisher answered",
    "context_full": "the context is full (use a larger --ctx); the finisher answered",
    "note_too_long": "the note did not fit the context; the finisher answered",
    "stopped": "stopped by you; the finisher answered",
}


def to_dict(event: Event) -> dict:
    """The JSON form of an event (``pass_`` is written ``pass``)."""
    data = asdict(event)
    if "pass_" in data:
        data["pass"] = data.pop("pass_")
    return data
