"""The Hogwild! generation loop: W workers decoding in lock-step over one shared KV cache.

Read top to bottom: :class:`~.config.RunConfig` says what to run, :func:`~.config.check_model` refuses
what the backend cannot do, and :class:`Generation` runs it, yielding events (``engine/events.py``).

One pass = ONE ``llama_decode`` carrying the next token of every active worker (plus forced text such
as a step header). Every token is stored once; before each pass every worker's view offsets are sent
to the backend, so each worker sees the cache in its own order (``engine/layout.py``). A token
written in a pass is visible to the other workers in that same pass. When a worker ends a step, its
cells move to the end of the shared history with one K-shift and its next step opens with a forced
header. Optional rules for small models that loop (a step limit, repeats dropped, self-check questions,
steps cut at forged headers, DRY over the worker's view) are hooks the loop calls (``engine/remedies.py``).
When the budget ends without an answer, a final-answer sequence that sees the history and
everyone's unfinished steps decodes greedily after a short "time is up" sentence, in the run's answer mode
(a box, prose or code: ``engine/answers.py``), streaming the answer's text as it becomes certain.
Reasoning models (``engine/thinking.py``): the prompt opens a thinking block where the model expects
one (``think``: auto, on, off), the workers' steps are written inside it, and the finisher closes it
before asking for the answer when it is still open where the finisher writes.

The methods (hogwild and its baselines) are described in ``engine/config.py``. A Generation owns the context
and samplers it opens: close it (``with Generation(...) as gen:``) when its run is over.
"""

from __future__ import annotations

import codecs
import threading
import time
from array import array
from collections import Counter
from collections.abc import Generator, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import TypeVar

import numpy as np

from ..native.context import Context, Token, batches
from ..native.errors import BackendError
from ..native.model import Model
from ..native.sampler import Sampler, SamplingParams
from . import answers, prompts, thinking
from .config import (
    EngineError,
    Method,
    PromptTooLong,
    RunConfig,
    check_config,
    check_model,
    hogwild_flash_attn,
    spare_cells,
)
from .events import (
    AnswerEvent,
    AnswerTextEvent,
    CutEvent,
    Event,
    SnapshotEvent,
    StartEvent,
    StatsEvent,
    StepEvent,
    TokenEvent,
)
from .layout import Layout, LayoutFull, LayoutKind
from .remedies import Remedy, remedies_for
from .views import enable_views, set_deltas, sync_views
from .worker import Worker

T = TypeVar("T")


@dataclass
class _Run:
    """The loop's state during one run of :meth:`Generation.events`."""

    workers: list[Worker]
    remedies: list[Remedy]  # engine/remedies.py: the optional rules, in the order their hooks run
    finisher_room: int  # cells kept free for the finisher
    t0: float  # perf_counter at the start
    passes: int = 0
    t_decode: float = 0.0  # seconds spent in the passes' decodes
    reason: str = "budget"  # why the loop ended (AnswerEvent.reason)
    answer: str | None = None  # a worker's boxed answer that ended the run


class Generation:
    """One run on one problem. Iterate :meth:`events`; :meth:`stop`, :meth:`pause` and :meth:`add_note`
    may be called from another thread (they take effect between passes)."""

    def __init__(self, model: Model, problem: str, config: RunConfig,
                 history: Sequence[tuple[str, str]] = ()) -> None:
        check_config(config)
        check_model(model)
        self.model, self.problem, self.config = model, problem, config
        self.history = tuple(history)  # (role, content) messages before the run's own: a system prompt, earlier turns
        self.thinking = thinking.for_model(model)
        self._prompt = ""  # the prompt text of the run (set when it starts)
        self._stop = threading.Event()
        self._running = threading.Event()
        self._running.set()
        self._notes: list[str] = []
        self._deltas: dict[int, list[int]] = {}
        self._lock = threading.Lock()
        self.layout: Layout | None = None
        self.ctx: Context | None = None
        self._workers: list[Worker] = []  # their samplers are closed with the context
        self._cells = 0  # the cells a run may fill: the cache less its spare cells (spare_cells)
        # per block: the tokens written there, but the prompt's (4 bytes a token: a list takes 36)
        self._written: dict[int, array[int]] = {}
        self._tokens_written = 0  # tokens decoded into the cache and not freed since (each takes one cell)
        # when a list, every cache operation is appended to it (tests replay it against a reference)
        self.trace: list[tuple] | None = None

    def prompt_text(self) -> str:
        """The prompt exactly as written into the common block: the chat template around the history and the
        user turn of rules and problem, then the thinking block the mode asks for (:meth:`thinking.Thinking.tail`;
        nothing for an instruct model unless ``think`` is on)."""
        cfg = self.config
        turn = ("user", prompts.user_message(self.problem, cfg.n_workers, cfg.answer))
        text = self.model.apply_chat_template([*self.history, turn])
        return text + self.thinking.tail(text, self.config.think)

    # resources -----------------------------------------------------------------------------------------

    def close(self) -> None:
        """Free the context and the workers' samplers (idempotent). The layout and what was written stay
        readable; :meth:`events` cannot run again."""
        for w in self._workers:
            w.sampler.close()
        if self.ctx is not None:
            self.ctx.close()

    def __enter__(self) -> Generation:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # control (thread-safe) ---------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop after the current pass; the finisher still runs."""
        self._stop.set()
        self._running.set()

    def pause(self) -> None:
        """Hold before the next pass."""
        self._running.clear()

    def resume(self) -> None:
        """Continue after pause()."""
        self._running.set()

    @property
    def paused(self) -> bool:
        """pause() was called and resume() not yet (the pass under way, if any, still ends)."""
        return not self._running.is_set()

    def add_note(self, text: str) -> None:
        """A note from the user, entered into the shared history (as a step of "User") before the next pass."""
        with self._lock:
            self._notes.append(text)

    # the run -----------------------------------------------------------------------------------------

    def events(self) -> Iterator[Event]:
        """Run to the end, yielding events as they happen: open the cache, prefill, then one pass at a time
        until the budget, an answer, or a reason to stop; the finisher answers when no worker did."""
        t0 = time.perf_counter()
        prompt, headers, finisher_room = self._tokenize_prompt()
        self._open_cache(headers, finisher_room)
        yield self._start_event(len(prompt))
        remedies = remedies_for(self.config, self.layout.kind, self.model.token_texts)
        run = _Run(self._prefill(prompt, headers), remedies, finisher_room, t0)
        for w in run.workers:
            yield from self._open_step(w, 0, opener=True)
        while run.passes < self.config.budget:
            active = yield from self._gate(run)
            if active is None:
                break
            last_index = self._decode_pass(run, active)
            for w in active:
                if w.ending:  # the step-ending token is in the cache now: move the step into the history
                    yield from self._end_step(run, w)
                else:
                    yield from self._next_token(run, w, last_index[w.index])
            yield self._stats(run)
            yield from self._snapshot(run)
            if run.answer is not None:
                break
        yield from self._finish_run(run)

    # phases of the run ---------------------------------------------------------------------------------

    def _tokenize_prompt(self) -> tuple[list[int], list[list[int]], int]:
        """The prompt's tokens, the three header texts' and the finisher's room; refuses a prompt that does not fit."""
        cfg, model = self.config, self.model
        self._prompt = self.prompt_text()
        prompt = model.tokenize(self._prompt, add_special=True)
        headers = [model.tokenize(t) for t in (prompts.OTHERS_HEADER, prompts.MARKER, prompts.OWN_HEADER)]
        # the finisher's prompt depends on the thinking block at the end (see _finish): room for the longer one
        finisher_room = max(len(model.tokenize(prompts.finisher(s, cfg.answer))) for s in (False, True))
        finisher_room += cfg.answer_tokens
        if len(prompt) + sum(map(len, headers)) * cfg.n_workers + finisher_room + 8 * cfg.n_workers > cfg.n_ctx:
            raise PromptTooLong(f"the prompt ({len(prompt)} tokens) does not fit the context ({cfg.n_ctx}); "
                              "use a larger --ctx")
        return prompt, headers, finisher_room

    def _open_cache(self, headers: list[list[int]], finisher_room: int) -> None:
        """Open the context (one sequence per worker and the finisher's) and the layout over its cells."""
        cfg, n = self.config, self.config.n_workers
        flash_attn = hogwild_flash_attn(cfg.cache_type, over_rpc=bool(self.model.rpc))
        spare = spare_cells(n, cfg.n_ctx, flash_attn)
        self.ctx = self.model.context(n_ctx=cfg.n_ctx + spare, n_seq=n + 1, n_batch=max(512, 64 * n),
                                      cache_type=cfg.cache_type, n_threads=cfg.threads, flash_attn=flash_attn)
        # llama.cpp rounds n_ctx up (600 -> 768 cells): a block may grow as far as the real cache, less the spare
        self._cells = self.ctx.cells_total() - spare
        self.layout = Layout(cfg.layout_kind, n, capacity=self._cells,
                             header_lengths=tuple(map(len, headers)), finisher_capacity=finisher_room)
        try:
            enable_views(self.ctx, self.layout)
        except BackendError as err:
            raise EngineError(f"{self.model.info.architecture}: {err}") from None

    def _start_event(self, prompt_tokens: int) -> StartEvent:
        return StartEvent(config=_config_dict(self.config), model=_model_dict(self.model), prompt_tokens=prompt_tokens,
                          cells_total=self._cells,
                          thinking={"signs": [sign.value for sign in self.thinking.signs],
                                    "block": thinking.block_state(self._prompt)})

    def _prefill(self, prompt: list[int], headers: list[list[int]]) -> list[Worker]:
        """Write the prompt once for everyone, then the shared header texts; return the workers."""
        layout, n = self.layout, self.config.n_workers
        self._write(prompt, layout.append_prompt(len(prompt)), tuple(range(n)), prefill=True)
        for block, text in zip([layout.others_header, *layout.markers, layout.own_header],
                               [headers[0], *[headers[1]] * n, headers[2]], strict=True):
            if layout.viewers(block):
                layout.mark_filled(block)
                self._sync_views()
                self._write(text, layout.fill_header(block), layout.viewers(block), prefill=True)
        self._written = {block.id: array("i") for block in layout.blocks}
        self._workers = [Worker(w, Sampler(self.model, self.config.sampling, seed_offset=w)) for w in range(n)]
        return self._workers

    def _gate(self, run: _Run) -> Generator[Event, None, list[Worker] | None]:
        """Between passes: wait while paused, write the user's notes; the workers of the next pass, or None
        (with ``run.reason`` set) when the run ends here."""
        self._running.wait()
        if self._stop.is_set():
            run.reason = "stopped"
            return None
        if not (yield from self._apply_notes(run.passes, run.finisher_room)):
            run.reason = "note_too_long"
            return None
        active = [w for w in run.workers if not w.done]
        if not active:
            run.reason = "eos"
            return None
        if self.ctx.cells_used() + sum(len(w.pending) for w in active) + run.finisher_room > self._cells:
            run.reason = "context_full"
            return None
        return active

    def _decode_pass(self, run: _Run, active: list[Worker]) -> dict[int, int]:
        """One pass: every active worker's pending tokens at the end of its own step block, in one decode.
        Returns, per worker, the batch index of the token whose logits it samples from."""
        layout, batch, last_index = self.layout, [], {}
        for w in active:  # a step block is as large as the cache: the gate's check leaves it room
            viewers = layout.viewers(layout.steps[w.index])
            for i, (tok, pos) in enumerate(zip(w.pending, layout.append(w.index, len(w.pending)), strict=True)):
                batch.append(Token(tok, pos, viewers, i == len(w.pending) - 1 and not w.ending))
            last_index[w.index] = len(batch) - 1
        self._sync_views()
        t = time.perf_counter()
        self._decode(batch)
        run.t_decode += time.perf_counter() - t
        run.passes += 1
        for w in active:
            self._written[layout.steps[w.index].id].extend(w.pending)
        return last_index

    def _end_step(self, run: _Run, w: Worker) -> Iterator[Event]:
        """The worker's step ended: into the history (or freed, when a remedy drops it); open its next step."""
        step_text = w.step_text
        body = prompts.step_body(step_text)
        verdicts = [r.step_ended(w, body) for r in run.remedies]
        if any(v.drop for v in verdicts):
            yield self._cut_step(w, 0, run.passes, "repeat")
            yield from self._open_step(w, run.passes, self_check=any(v.ask for v in verdicts if v.drop))
            return
        self._finish_step(w)
        yield StepEvent(w.name, w.step - 1, step_text, run.passes)
        self._take_answer(run, step_text)
        ask = any(v.ask for v in verdicts)
        for r in run.remedies:
            r.step_kept(w, body, ask)
        yield from self._open_step(w, run.passes, self_check=ask)

    def _next_token(self, run: _Run, w: Worker, index: int) -> Iterator[Event]:
        """Sample the worker's next token from the logits at batch ``index``; the remedies may cut its step."""
        for r in run.remedies:
            r.before_sample(w, self._read_by)
            barred = r.barred(w)
            if barred is not None:
                self.ctx.bar(index, barred)
        tok = w.sampler.sample(self.ctx, index)
        if self.model.is_eog(tok):
            w.done, w.pending = True, []
            self._take_answer(run, w.step_text)
            return
        text = w.decoder.decode(self.model.token_bytes(tok))
        w.ending = prompts.ends_step(w.step_text, text)
        w.step_text += text
        w.pending = [tok]
        w.token_ends.append(len(w.step_text))
        w.generated += 1
        for r in run.remedies:
            r.token_sampled(w)
        yield TokenEvent(w.name, text, run.passes)
        for r in run.remedies:  # each cut lands before the next remedy looks at the step
            cut = r.after_token(w, text)
            if cut is not None:
                yield self._cut_step(w, cut.keep, run.passes, cut.reason)

    def _take_answer(self, run: _Run, step_text: str) -> None:
        """A worker's answer in a step (a box, in boxed mode) ends the run, for the methods that stop on one."""
        answer = answers.worker_answer(self.config.answer, step_text)
        if answer and self.config.stop_on_answer and Method(self.config.method).stops_on_answer:
            run.answer, run.reason = answer, "answer"

    def _stats(self, run: _Run) -> StatsEvent:
        def rate(tokens: int) -> float:
            return tokens / run.t_decode if run.t_decode else 0.0

        return StatsEvent(
            pass_=run.passes, budget=self.config.budget,
            tokens_per_s=rate(sum(w.generated for w in run.workers)),
            worker_tokens_per_s={w.name: rate(w.generated) for w in run.workers},
            cells_used=self.ctx.cells_used(), cells_total=self._cells,
            tokens_written=self._tokens_written, elapsed_s=time.perf_counter() - run.t0,
        )

    def _snapshot(self, run: _Run) -> Iterator[SnapshotEvent]:
        """At the configured passes: the answer so far (a worker's, or what the finisher would say now)."""
        if run.passes in self.config.snapshots and run.passes < self.config.budget:
            snap = run.answer if run.answer is not None else _result(self._final_answer(run.workers))[0]
            yield SnapshotEvent(run.passes, snap, "answer" if run.answer is not None else "finisher",
                                sum(w.generated for w in run.workers), time.perf_counter() - run.t0)

    def _finish_run(self, run: _Run) -> Iterator[Event]:
        """The run's answer: a worker's, or the finisher's when none stopped it (its text streamed as it comes)."""
        answer, votes, finisher_prompt, finisher_text = run.answer, {}, "", ""
        if answer is None:
            self._release_views()
            answer, finisher_prompt, finisher_text, votes = yield from self._final_answer(run.workers)
        yield AnswerEvent(
            answer=answer, reason=run.reason, finisher_text=finisher_text, passes=run.passes,
            tokens_generated=sum(w.generated for w in run.workers), elapsed_s=time.perf_counter() - run.t0,
            votes=votes, finisher_prompt=finisher_prompt,
        )

    # pieces of the loop --------------------------------------------------------------------------------

    def _sync_views(self) -> None:
        sync_views(self.ctx, self.layout, self._deltas)

    def _write(self, tokens: list[int], positions: range, seq_ids: tuple[int, ...], *, prefill: bool = False,
               logits: bool = False) -> None:
        """Decode forced text (``logits``: keep its last token's) in pieces: full batches for the prefill, at a
        small cache; afterwards (a note, the finisher prompt) at most W tokens at a time, as many as a pass.

        With the query-copy attention graph (an f32 cache; passes whose key copies find no room) llama.cpp's
        compute memory grows with tokens x cells (about 1.4 kB per pair on SmolLM2): the finisher's ~20-token
        prompt in one decode, at the run's largest cache, raised RSS by 20 % in a soak. The text is one
        sequence's and nothing else is written meanwhile, so the pieces see exactly what one batch would.
        """
        last = len(tokens) - 1
        items = [Token(t, p, seq_ids, logits and i == last)
                 for i, (t, p) in enumerate(zip(tokens, positions, strict=True))]
        size = self.ctx.n_batch if prefill else self.layout.n_workers
        for batch in batches(items, size):
            self._decode(batch)

    def _decode(self, batch: list[Token]) -> None:
        self.ctx.decode(batch)
        self._tokens_written += len(batch)
        if self.trace is not None:
            deltas = {s: list(d) for s, d in self._deltas.items()}
            logits = {i: self.ctx.logits(i) for i, t in enumerate(batch) if t.logits}
            self.trace.append(("decode", list(batch), deltas, logits))

    def _memory(self, op: str, *args: int) -> None:
        """seq_cp / seq_add / seq_rm on the cache (recorded in the trace)."""
        getattr(self.ctx, op)(*args)
        if self.trace is not None:
            self.trace.append((op, *args))

    def _set_deltas(self, seq: int, deltas: list[int]) -> None:
        set_deltas(self.ctx, seq, deltas, self._deltas)

    def _open_step(self, w: Worker, pass_: int, *, opener: bool = False, self_check: bool = False) -> Iterator[Event]:
        """Queue the forced header of the worker's next step (and the opener or self-check question)."""
        text = prompts.step_header(w.index, w.step)
        if opener and self.layout.n_workers > 1:
            text += prompts.opener(w.index, self.layout.n_workers)
        if self_check:
            text += prompts.SELF_CHECK
        w.pending = self.model.tokenize(text)
        w.step_text = text
        w.step_start = self.layout.steps[w.index].length
        w.token_ends = [len(text)] * len(w.pending)
        for tok in w.pending:
            w.sampler.accept(tok)
        w.decoder.reset()
        yield TokenEvent(w.name, text, pass_, forced=True)
        w.ending = False

    def _cut_step(self, w: Worker, keep: int, pass_: int, reason: str) -> CutEvent:
        """Keep the first ``keep`` tokens of the worker's step and free the rest of its cells.

        ``keep`` = 0 frees the whole step (its next step opens in its place); otherwise the step ends
        right there with a forced blank line (written in the next pass, then the step joins the history).
        ``keep`` may include the pending token (a step too long ends after it).
        """
        while keep and w.token_ends[keep - 1] > w.token_ends[0] and w.step_text[
                w.token_ends[keep - 2]:w.token_ends[keep - 1]].isspace():
            keep -= 1  # blank text before the cut goes too: the forced blank line ends the step
        written = self.layout.steps[w.index].length - w.step_start  # the pending tokens are not in the cache
        freed = self.layout.cut_step(w.index, w.step_start + min(keep, written))
        if len(freed):
            self._memory("seq_rm", -1, freed.start, freed.stop)
            self._tokens_written -= len(freed)
            del self._written[self.layout.steps[w.index].id][-len(freed):]
        w.decoder.reset()
        if keep == 0:
            w.step_text, w.pending, w.token_ends, w.ending = "", [], [], False
        else:
            kept = w.step_text[:w.token_ends[keep - 1]]
            blank = "\n" if kept.endswith("\n") and not kept.endswith("\n\n") else "\n\n"  # a token like ".\n"
            w.step_text = kept + blank
            blank_tokens = self.model.tokenize(blank)
            # a kept token that is not in the cache yet (the one just sampled, ending a sentence) goes with it
            w.pending = w.pending[:max(0, keep - written)] + blank_tokens
            w.token_ends = w.token_ends[:keep] + [len(w.step_text)] * len(blank_tokens)
            w.ending = True
        return CutEvent(w.name, w.step_text, pass_, reason)

    def _read_by(self, worker: int) -> list[int]:
        """The generated tokens the worker sees (history, others' steps, its own), in its view's order."""
        return [tok for block in self.layout.visible_blocks(worker) for tok in self._written[block.id]]

    def _finish_step(self, w: Worker) -> None:
        """Move the finished step to the end of the history (one K-shift), shared with everyone."""
        move = self.layout.finish_step(w.index)
        if move:
            step_tokens = self._written[self.layout.steps[w.index].id]
            self._written[self.layout.common.id] += step_tokens
            del step_tokens[:]
            if self.layout.kind is LayoutKind.STEPWISE:
                for other in range(self.layout.n_workers):
                    if other != w.index:
                        self._memory("seq_cp", w.index, other, move.p0, move.p1)
            self._memory("seq_add", w.index, move.p0, move.p1, move.shift)
        w.step += 1

    def _apply_notes(self, pass_: int, reserve: int) -> Generator[Event, None, bool]:
        """Write the user's notes into the history. Returns False at the first note that does not fit the cache
        with ``reserve`` cells to spare (the finisher's): that note and any after it are not written."""
        with self._lock:
            notes, self._notes = self._notes, []
        for note in notes:
            text = prompts.note_text(note)
            tokens = self.model.tokenize(text)
            if self.ctx.cells_used() + len(tokens) + reserve > self._cells:
                return False
            positions = self.layout.append_note(len(tokens))
            self._written[self.layout.common.id].extend(tokens)
            self._sync_views()
            self._write(tokens, positions, tuple(range(self.layout.n_workers)))
            yield StepEvent("User", 0, text, pass_)
        return True

    def _release_views(self) -> None:
        """Take the history out of every worker's sequence but the first, once the workers are done.

        llama.cpp keeps a node per cell and sequence (``seq_pos``); the finisher's sequence copies the
        history from worker 0 and would add one per history cell. Freed first, the others' nodes are the
        memory the finisher's reuse, so the run's footprint does not grow at its end. Their current steps
        stay: the finisher copies those from each worker's own sequence.
        """
        for w in range(1, self.layout.n_workers):
            self._memory("seq_rm", w, 0, self.layout.common.end)

    def _final_answer(self, workers: list[Worker]) -> Generator[AnswerTextEvent, None,
                                                                tuple[str | None, str, str, dict[str, int]]]:
        """The finisher's answer, its prompt and its text, its text streamed (self-consistency: one finisher per
        worker, not streamed, and a majority vote; their prompts and texts are not kept)."""
        if self.config.method == "self-consistency":
            found = [_result(self._finish([w.index]))[0] for w in workers]
            votes = dict(Counter(a for a in found if a is not None))
            return (max(votes, key=votes.get) if votes else None), "", "", votes
        answer, prompt, text = yield from self._finish([w.index for w in workers])
        return answer, prompt, text, {}

    def _finisher_prompt(self, workers: list[int]) -> str:
        """The finisher's prompt for what it sees: it closes a thinking block still open there.

        What it sees is the prompt, the history and the given workers' current steps, in that order; the
        tokens are read back with special tokens spelled out, since ``</think>`` may be one.
        """
        blocks = [self._written[self.layout.common.id], *(self._written[self.layout.steps[w].id] for w in workers)]
        # read backwards, a token at a time: only the last tag counts, and a long run has written ~100k tokens
        pieces = (self.model.token_bytes(tok, special=True) for block in reversed(blocks) for tok in reversed(block))
        in_thinking = thinking.ends_inside(pieces, opened=thinking.ends_open(self._prompt))
        return prompts.finisher(in_thinking, self.config.answer)

    def _finish(self, workers: list[int]) -> Generator[AnswerTextEvent, None, tuple[str | None, str, str]]:
        """Greedy final answer from a sequence that sees the history and the given workers' current steps, its
        certain text yielded as it grows: the answer, the prompt the finisher was given, and what it wrote."""
        text_prompt = self._finisher_prompt(workers)
        finisher_prompt = self.model.tokenize(text_prompt)
        layout, seq = self.layout, self.layout.n_workers
        old = layout.reset_finisher()
        if len(old):
            self._memory("seq_rm", seq, old.start, old.stop)
            self._tokens_written -= len(old)
        self._memory("seq_rm", seq, 0, layout.common.end)
        self._memory("seq_cp", 0, seq, 0, layout.common.end)
        for w in range(layout.n_workers):
            step = layout.steps[w]
            self._memory("seq_rm", seq, step.start, step.start + step.capacity)
            if w in workers and step.length:
                self._memory("seq_cp", w, seq, step.start, step.end)
        self._set_deltas(seq, layout.finisher_deltas(workers))
        self._write(finisher_prompt, layout.append_finisher(len(finisher_prompt)), (seq,), logits=True)
        greedy = Sampler(self.model, SamplingParams(temperature=0))
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        final = answers.FinalAnswer(self.config.answer)
        try:
            for _ in range(self.config.answer_tokens):
                tok = self._finisher_token(greedy, final)
                if self.model.is_eog(tok):
                    break
                certain = final.add(decoder.decode(self.model.token_bytes(tok)))
                if certain:
                    yield AnswerTextEvent(certain)
                if final.complete:
                    break
                pos = layout.append_finisher(1)[0]
                self._set_deltas(seq, layout.finisher_deltas(workers))
                self._decode([Token(tok, pos, (seq,), True)])
        except LayoutFull:
            pass
        finally:
            greedy.close()
        return final.answer(), text_prompt, final.text


    def _finisher_token(self, greedy: Sampler, final: answers.FinalAnswer) -> int:
        """The finisher's next token: the greedy one, or where the answer mode refuses its text (prose that
        would begin a step header), the likeliest one it takes."""
        index = self.ctx.last_batch_size - 1
        tok = greedy.sample(self.ctx, index)
        if not final.refuses(self._token_text(tok)):
            return tok
        ranked = np.argsort(-self.ctx.logits(index))
        return next(int(t) for t in ranked if not final.refuses(self._token_text(int(t))))

    def _token_text(self, tok: int) -> str:
        return self.model.token_bytes(tok).decode("utf-8", "replace")


def _result(steps: Generator[Event, None, T]) -> T:
    """What a generator returns, run to its end with its events dropped (a finisher whose text is not streamed)."""
    try:
        while True:
            next(steps)
    except StopIteration as end:
        return end.value


def _config_dict(cfg: RunConfig) -> dict:
    data = asdict(cfg)
    data["sampling"] = asdict(cfg.sampling)
    data["finisher_tokens"] = cfg.answer_tokens  # as run: the answer mode's default when none was given
    return data


def _model_dict(model: Model) -> dict:
    info = model.info
    return {"path": str(model.path), "architecture": info.architecture, "n_params": info.n_params,
            "size_bytes": info.size_bytes, "n_ctx_train": info.n_ctx_train}
