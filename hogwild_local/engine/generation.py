"""The Hogwild! generation loop: W workers decoding in lock-step over one shared KV cache.

Read top to bottom: :class:`~.config.RunConfig` says what to run, :func:`~.config.check_model` refuses
what the backend cannot do, and :class:`Generation` runs it, yielding events (``engine/events.py``).

One pass = ONE ``llama_decode`` carrying the next token of every active worker (plus forced text such
as a step header). Every token is stored once; before each pass every worker's view offsets are sent
to the backend, so each worker sees the cache in its own order (``engine/layout.py``). A token
written in a pass is visible to the other workers in that same pass. When a worker ends a step, its
cells move to the end of the shared history with one K-shift and its next step opens with a forced
header. A step longer than ``step_limit`` tokens ends at its next sentence or line end instead, at
twice as many at once (small models may never write the blank line). Two optional remedies for small models that loop:
``end_at_headers`` ends a step where the worker begins to write a step header itself (the header is
cut), ``drop_repeats`` frees a finished step that repeats one the worker has seen word for word instead
of adding it to the history.
When the budget ends without an answer, a final-answer sequence that sees the history and
everyone's unfinished steps decodes greedily after a short "time is up" sentence.
Reasoning models (``engine/thinking.py``): the prompt opens a thinking block where the model expects
one (``think``: auto, on, off), the workers' steps are written inside it, and the finisher closes it
before asking for the answer when it is still open where the finisher writes.

The methods (hogwild and its baselines) are described in ``engine/config.py``. A Generation owns the context
and samplers it opens: close it (``with Generation(...) as gen:``) when its run is over.
"""

from __future__ import annotations

import bisect
import codecs
import threading
import time
from array import array
from collections import Counter
from collections.abc import Generator, Iterator
from dataclasses import asdict

from ..native.context import Context, Token, batches
from ..native.errors import BackendError
from ..native.model import Model
from ..native.sampler import Sampler, SamplingParams
from . import prompts, thinking
from .config import EngineError, Method, RunConfig, check_config, check_model, hogwild_flash_attn, spare_cells
from .events import AnswerEvent, CutEvent, Event, SnapshotEvent, StartEvent, StatsEvent, StepEvent, TokenEvent
from .layout import Layout, LayoutFull, LayoutKind
from .views import enable_views, set_deltas, sync_views
from .worker import Worker


class Generation:
    """One run on one problem. Iterate :meth:`events`; :meth:`stop`, :meth:`pause` and :meth:`add_note`
    may be called from another thread (they take effect between passes)."""

    def __init__(self, model: Model, problem: str, config: RunConfig) -> None:
        check_config(config)
        check_model(model)
        self.model, self.problem, self.config = model, problem, config
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
        """The prompt exactly as written into the common block: the chat template around the rules and problem,
        then the thinking block the mode asks for (:meth:`thinking.Thinking.tail`; nothing for an instruct model
        unless ``think`` is on)."""
        text = self.model.apply_chat_template([("user", prompts.user_message(self.problem, self.config.n_workers))])
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

    def add_note(self, text: str) -> None:
        """A note from the user, entered into the shared history (as a step of "User") before the next pass."""
        with self._lock:
            self._notes.append(text)

    # the run -----------------------------------------------------------------------------------------

    def events(self) -> Iterator[Event]:
        """Run to the end, yielding events as they happen."""
        cfg, model = self.config, self.model
        n = cfg.n_workers
        t0 = time.perf_counter()

        self._prompt = self.prompt_text()
        prompt = model.tokenize(self._prompt, add_special=True)
        headers = [model.tokenize(t) for t in (prompts.OTHERS_HEADER, prompts.MARKER, prompts.OWN_HEADER)]
        # the finisher's prompt depends on the thinking block at the end (see _finish): room for the longer one
        finisher_room = max(len(model.tokenize(prompts.finisher(s))) for s in (False, True)) + cfg.finisher_tokens
        if len(prompt) + sum(map(len, headers)) * n + finisher_room + 8 * n > cfg.n_ctx:
            raise EngineError(f"the prompt ({len(prompt)} tokens) does not fit the context ({cfg.n_ctx}); use a larger --ctx")

        flash_attn = hogwild_flash_attn(cfg.cache_type)
        spare = spare_cells(n, cfg.n_ctx, flash_attn)
        self.ctx = ctx = model.context(n_ctx=cfg.n_ctx + spare, n_seq=n + 1, n_batch=max(512, 64 * n),
                                       cache_type=cfg.cache_type, n_threads=cfg.threads, flash_attn=flash_attn)
        # llama.cpp rounds n_ctx up (600 -> 768 cells): a block may grow as far as the real cache, less the spare
        self._cells = cells_total = ctx.cells_total() - spare
        self.layout = layout = Layout(cfg.layout_kind, n, capacity=cells_total,
                                      header_lengths=tuple(map(len, headers)), finisher_capacity=finisher_room)
        try:
            enable_views(ctx, layout)
        except BackendError as err:
            raise EngineError(f"{model.info.architecture}: {err}") from None

        yield StartEvent(config=_config_dict(cfg), model=_model_dict(model), prompt_tokens=len(prompt),
                         cells_total=self._cells,
                         thinking={"signs": [sign.value for sign in self.thinking.signs],
                                   "block": thinking.block_state(self._prompt)})

        # prefill: the prompt once for everyone, then the shared header texts
        everyone = tuple(range(n))
        self._write(prompt, layout.append_prompt(len(prompt)), everyone, prefill=True)
        for block, text in zip([layout.others_header, *layout.markers, layout.own_header],
                               [headers[0], *[headers[1]] * n, headers[2]]):
            if layout.viewers(block):
                layout.mark_filled(block)
                self._sync_views()
                self._write(text, layout.fill_header(block), layout.viewers(block), prefill=True)
        self._written = {block.id: array("i") for block in layout.blocks}

        self._workers = workers = [Worker(w, Sampler(model, cfg.sampling, seed_offset=w)) for w in range(n)]
        for w in workers:
            yield from self._open_step(w, 0, opener=True)

        reason, answer, passes, generated_since_check = "budget", None, 0, 0
        finished_bodies: dict[int, set[str]] = {}  # per worker: what its finished steps said (to notice repeats)
        t_decode = 0.0
        while passes < cfg.budget:
            self._running.wait()
            if self._stop.is_set():
                reason = "stopped"
                break
            if not (yield from self._apply_notes(ctx, passes, finisher_room)):
                reason = "note_too_long"
                break
            active = [w for w in workers if not w.done]
            if not active:
                reason = "eos"
                break

            # one pass: every active worker's pending tokens, at the end of its own step block
            if ctx.cells_used() + sum(len(w.pending) for w in active) + finisher_room > self._cells:
                reason = "context_full"
                break
            batch, last_index = [], {}
            for w in active:  # a step block is as large as the cache: the check above leaves it room
                viewers = layout.viewers(layout.steps[w.index])
                for i, (tok, pos) in enumerate(zip(w.pending, layout.append(w.index, len(w.pending)))):
                    want = i == len(w.pending) - 1 and not w.ending
                    batch.append(Token(tok, pos, viewers, want))
                last_index[w.index] = len(batch) - 1
            self._sync_views()
            t = time.perf_counter()
            self._decode(batch)
            t_decode += time.perf_counter() - t
            passes += 1
            for w in active:
                self._written[layout.steps[w.index].id].extend(w.pending)

            for w in active:
                if w.ending:  # the step-ending token is in the cache now: move the step into the history
                    step_text = w.step_text
                    body = prompts.step_body(step_text)
                    repeated = bool(body) and body in self._bodies_seen_by(w.index, finished_bodies)
                    if repeated and cfg.drop_repeats:
                        yield self._cut_step(w, 0, passes, "repeat")
                        yield from self._open_step(w, passes, self_check=cfg.check_repeats)
                        continue
                    self._finish_step(w)
                    yield StepEvent(w.name, w.step - 1, step_text, passes)
                    boxed = prompts.extract_boxed(step_text)
                    if boxed and cfg.stop_on_answer and Method(cfg.method).stops_on_answer:
                        answer, reason = boxed, "answer"
                    finished_bodies.setdefault(w.index, set()).add(body)
                    self_check = ((cfg.self_check_every and generated_since_check >= cfg.self_check_every)
                                  or (cfg.check_repeats and repeated))
                    if self_check:
                        generated_since_check = 0
                    yield from self._open_step(w, passes, self_check=bool(self_check))
                    continue
                if w.sampler.has_dry:
                    w.sampler.set_dry_context(self._read_by(w.index))
                tok = w.sampler.sample(ctx, last_index[w.index])
                if model.is_eog(tok):
                    w.done = True
                    w.pending = []
                    boxed = prompts.extract_boxed(w.step_text)
                    if boxed and cfg.stop_on_answer and Method(cfg.method).stops_on_answer:
                        answer, reason = boxed, "answer"
                    continue
                text = w.decoder.decode(model.token_bytes(tok))
                w.ending = prompts.ends_step(w.step_text, text)
                w.step_text += text
                w.pending = [tok]
                w.token_ends.append(len(w.step_text))
                w.generated += 1
                generated_since_check += 1
                yield TokenEvent(w.name, text, passes)
                if cfg.end_at_headers:
                    forged = prompts.forged_header(w.step_text, w.token_ends[0])
                    if forged is not None:
                        yield self._cut_step(w, bisect.bisect_right(w.token_ends, forged), passes, "header")
                if cfg.step_limit and not w.ending and len(w.token_ends) > cfg.step_limit:
                    # at a sentence or line end; twice as long (a loop like "[1] [1] [1]" has neither): at once
                    end = (len(w.step_text) if len(w.token_ends) > 2 * cfg.step_limit
                           else prompts.sentence_end(w.step_text, len(w.step_text) - len(text)))
                    if end is not None:  # keep the token that holds the sentence's end, not one after it
                        yield self._cut_step(w, bisect.bisect_left(w.token_ends, end) + 1, passes, "long")

            elapsed = time.perf_counter() - t0
            generated = sum(w.generated for w in workers)
            yield StatsEvent(
                pass_=passes, budget=cfg.budget,
                tokens_per_s=generated / t_decode if t_decode else 0.0,
                worker_tokens_per_s={w.name: (w.generated / t_decode if t_decode else 0.0) for w in workers},
                cells_used=ctx.cells_used(), cells_total=self._cells,
                tokens_written=self._tokens_written, elapsed_s=elapsed,
            )
            if passes in cfg.snapshots and passes < cfg.budget:
                snap = answer if answer is not None else self._final_answer(ctx, workers)[0]
                yield SnapshotEvent(passes, snap, "answer" if answer is not None else "finisher",
                                    generated, time.perf_counter() - t0)
            if answer is not None:
                break

        votes: dict[str, int] = {}
        finisher_prompt = finisher_text = ""
        if answer is None:
            self._release_views()
            answer, finisher_prompt, finisher_text, votes = self._final_answer(ctx, workers)
        yield AnswerEvent(
            answer=answer, reason=reason, finisher_text=finisher_text, passes=passes,
            tokens_generated=sum(w.generated for w in workers), elapsed_s=time.perf_counter() - t0, votes=votes,
            finisher_prompt=finisher_prompt,
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
        items = [Token(t, p, seq_ids, logits and i == last) for i, (t, p) in enumerate(zip(tokens, positions))]
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

    def _bodies_seen_by(self, worker: int, finished_bodies: dict[int, set[str]]) -> set[str]:
        """The finished steps' bodies this worker can see (its own only if the workers are independent)."""
        if self.layout.kind is LayoutKind.INDEPENDENT:
            return finished_bodies.get(worker, set())
        return set().union(*finished_bodies.values())

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

    def _apply_notes(self, ctx: Context, pass_: int, reserve: int) -> Generator[Event, None, bool]:
        """Write the user's notes into the history. Returns False at the first note that does not fit the cache
        with ``reserve`` cells to spare (the finisher's): that note and any after it are not written."""
        with self._lock:
            notes, self._notes = self._notes, []
        for note in notes:
            text = prompts.note_text(note)
            tokens = self.model.tokenize(text)
            if ctx.cells_used() + len(tokens) + reserve > self._cells:
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

    def _final_answer(self, ctx: Context, workers: list[Worker]) -> tuple[str | None, str, str, dict[str, int]]:
        """The finisher's answer, its prompt and its text (self-consistency: one finisher per worker and a
        majority vote; their prompts and texts are not kept)."""
        if self.config.method == "self-consistency":
            answers = [self._finish(ctx, [w.index])[0] for w in workers]
            votes = dict(Counter(a for a in answers if a is not None))
            return (max(votes, key=votes.get) if votes else None), "", "", votes
        answer, prompt, text = self._finish(ctx, [w.index for w in workers])
        return answer, prompt, text, {}

    def _finisher_prompt(self, workers: list[int]) -> str:
        """The finisher's prompt for what it sees: it closes a thinking block still open there.

        What it sees is the prompt, the history and the given workers' current steps, in that order; the
        tokens are read back with special tokens spelled out, since ``</think>`` may be one.
        """
        blocks = [self._written[self.layout.common.id], *(self._written[self.layout.steps[w].id] for w in workers)]
        # read backwards, a token at a time: only the last tag counts, and a long run has written ~100k tokens
        pieces = (self.model.token_bytes(tok, special=True) for block in reversed(blocks) for tok in reversed(block))
        return prompts.finisher(thinking.ends_inside(pieces, opened=thinking.ends_open(self._prompt)))

    def _finish(self, ctx: Context, workers: list[int]) -> tuple[str | None, str, str]:
        """Greedy final answer from a sequence that sees the history and the given workers' current steps:
        the answer, the prompt the finisher was given, and what it wrote."""
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
        text = ""
        try:
            for _ in range(self.config.finisher_tokens):
                tok = greedy.sample(ctx, ctx.last_batch_size - 1)
                if self.model.is_eog(tok):
                    break
                text += decoder.decode(self.model.token_bytes(tok))
                if prompts.extract_boxed("\\boxed{" + text) is not None:
                    break
                pos = layout.append_finisher(1)[0]
                self._set_deltas(seq, layout.finisher_deltas(workers))
                self._decode([Token(tok, pos, (seq,), True)])
        except LayoutFull:
            pass
        finally:
            greedy.close()
        return prompts.extract_boxed("\\boxed{" + text + ("}" if "}" not in text else "")), text_prompt, text


def _config_dict(cfg: RunConfig) -> dict:
    data = asdict(cfg)
    data["sampling"] = asdict(cfg.sampling)
    return data


def _model_dict(model: Model) -> dict:
    info = model.info
    return {"path": str(model.path), "architecture": info.architecture, "n_params": info.n_params,
            "size_bytes": info.size_bytes, "n_ctx_train": info.n_ctx_train}
