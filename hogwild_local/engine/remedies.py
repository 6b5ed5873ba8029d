"""Remedies: optional rules that steer small models out of loops, as hooks the generation loop calls.

The loop (``engine/generation.py``) knows when a token is about to be sampled, was sampled, and when a
step ended; it does not know the rules. Each remedy here is one rule with the hooks it needs (the others
are no-ops), enabled by one :class:`~.config.RunConfig` field; :func:`remedies_for` lists the enabled
ones in the order they run. A remedy may keep state across workers (the self-check counter is shared).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from . import prompts
from .config import RunConfig
from .layout import LayoutKind
from .worker import Worker


@dataclass(frozen=True)
class Cut:
    """End the worker's step after its first ``keep`` tokens (``reason`` names the rule, as CutEvent says it)."""

    keep: int
    reason: str


@dataclass(frozen=True)
class StepVerdict:
    """What a remedy says of a step that just ended: ``drop`` frees it instead of adding it to the history;
    ``ask`` puts the self-check question at the start of the worker's next step."""

    drop: bool = False
    ask: bool = False


class Remedy:
    """A rule with hooks; each hook does nothing unless a rule overrides it."""

    def before_sample(self, w: Worker, read_by: Callable[[int], list[int]]) -> None:
        """Just before the worker's next token is sampled (``read_by(i)``: the tokens worker i sees, in order)."""

    def barred(self, w: Worker) -> np.ndarray | None:
        """Token ids the worker may not draw next (None: no bar)."""
        return None

    def token_sampled(self, w: Worker) -> None:
        """The worker sampled a token that is not end-of-generation (it is on ``w.step_text`` now)."""

    def after_token(self, w: Worker, text: str) -> Cut | None:
        """After the sampled token's ``text`` joined the step: a cut ends the step there."""
        return None

    def step_ended(self, w: Worker, body: str) -> StepVerdict:
        """The worker's step (``body``: its text without the header) ended, before it joins the history."""
        return StepVerdict()

    def step_kept(self, w: Worker, body: str, asked: bool) -> None:
        """The step joined the history; ``asked``: the worker's next step opens with the self-check question."""


class DryContext(Remedy):
    """DRY penalises repeating what the worker reads, so its sampler is given the tokens in the worker's view order."""

    def before_sample(self, w: Worker, read_by: Callable[[int], list[int]]) -> None:
        if w.sampler.has_dry:
            w.sampler.set_dry_context(read_by(w.index))


class Repeats(Remedy):
    """A step whose body repeats a finished step word for word: freed (``drop``) and/or answered with the
    self-check question (``ask``). Workers see each other's finished steps, unless they are independent."""

    def __init__(self, drop: bool, ask: bool, independent: bool) -> None:
        self.drop, self.ask, self.independent = drop, ask, independent
        self.bodies: dict[int, set[str]] = {}  # per worker: what its finished steps said

    def _seen_by(self, worker: int) -> set[str]:
        if self.independent:
            return self.bodies.get(worker, set())
        return set().union(*self.bodies.values())

    def step_ended(self, w: Worker, body: str) -> StepVerdict:
        repeated = bool(body) and body in self._seen_by(w.index)
        return StepVerdict(drop=self.drop and repeated, ask=self.ask and repeated)

    def step_kept(self, w: Worker, body: str, asked: bool) -> None:
        self.bodies.setdefault(w.index, set()).add(body)


class SelfCheckEvery(Remedy):
    """The self-check question after every ``every`` generated tokens (all workers' together), at the next
    step a worker opens; any self-check question asked restarts the count."""

    def __init__(self, every: int) -> None:
        self.every, self.count = every, 0

    def token_sampled(self, w: Worker) -> None:
        self.count += 1

    def step_ended(self, w: Worker, body: str) -> StepVerdict:
        return StepVerdict(ask=self.count >= self.every)

    def step_kept(self, w: Worker, body: str, asked: bool) -> None:
        if asked:
            self.count = 0


class EndAtHeaders(Remedy):
    """A worker that starts writing a step header itself ends its step there (the forged header is cut)."""

    def after_token(self, w: Worker, text: str) -> Cut | None:
        forged = prompts.forged_header(w.step_text, w.token_ends[0])
        return None if forged is None else Cut(bisect.bisect_right(w.token_ends, forged), "header")


class BarHeaders(Remedy):
    """Workers never write the marks the engine's headers are made of (``prompts.HEADER_MARKS``: "#", "**"):
    every token that holds one is barred, and after a "*" also every token that starts with one (two tokens
    must not make "**" either). Their own text then cannot pass for a section or step header."""

    def __init__(self, texts: Sequence[str]) -> None:
        marked = [t for t, x in enumerate(texts) if any(m in x for m in prompts.HEADER_MARKS)]
        self.always = np.array(marked, np.int64)
        self.after_star = np.union1d(marked, [t for t, x in enumerate(texts) if x.startswith("*")]).astype(np.int64)

    def barred(self, w: Worker) -> np.ndarray:
        return self.after_star if w.step_text.endswith("*") else self.always


class StepLimit(Remedy):
    """A step longer than ``limit`` tokens ends at its next sentence or line end; at twice as many, at once
    (a loop like "[1] [1] [1]" has neither)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit

    def after_token(self, w: Worker, text: str) -> Cut | None:
        if w.ending or len(w.token_ends) <= self.limit:
            return None
        end = (len(w.step_text) if len(w.token_ends) > 2 * self.limit
               else prompts.sentence_end(w.step_text, len(w.step_text) - len(text)))
        # keep the token that holds the sentence's end, not one after it
        return None if end is None else Cut(bisect.bisect_left(w.token_ends, end) + 1, "long")


def remedies_for(cfg: RunConfig, layout_kind: LayoutKind, token_texts: Callable[[], Sequence[str]]) -> list[Remedy]:
    """The remedies the configuration enables, in the order their hooks run (a cut ends the step, so
    after a header cut the step limit no longer applies); ``token_texts``: the model's vocabulary, read
    only by a remedy that needs it."""
    remedies: list[Remedy] = []
    if cfg.bar_headers:
        remedies.append(BarHeaders(token_texts()))
    if cfg.sampling.dry_multiplier > 0:
        remedies.append(DryContext())
    if cfg.drop_repeats or cfg.check_repeats:
        remedies.append(Repeats(cfg.drop_repeats, cfg.check_repeats, layout_kind is LayoutKind.INDEPENDENT))
    if cfg.self_check_every > 0:
        remedies.append(SelfCheckEvery(cfg.self_check_every))
    if cfg.end_at_headers:
        remedies.append(EndAtHeaders())
    if cfg.step_limit > 0:
        remedies.append(StepLimit(cfg.step_limit))
    return remedies
