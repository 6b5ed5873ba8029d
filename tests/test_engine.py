"""The generation engine against the numpy reference, and end to end on SmolLM2-135M."""

from __future__ import annotations

import numpy as np
import pytest

from hogwild_local.engine import EngineError, Generation, RunConfig, prompts, spare_cells
from hogwild_local.engine.events import StepEvent
from hogwild_local.models import resolve_model
from hogwild_local.native import Model, Sampler, SamplingParams, Token, clear_log
from lockstep import attention_paths
from reference import ReferenceModel
from tiny_gguf import write_tiny_model, write_vocab_only
from trace_replay import TraceReplay
from where import HEAD_DIM, VOCAB, load_model, tolerance

PROBLEM = (
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
    "How many clips did Natalia sell altogether in April and May?"
)


@pytest.fixture(scope="module")
def smollm2() -> Model:
    model = Model(resolve_model("smollm2-135m", progress=False))
    yield model
    model.close()


def write_tiny_speaking(path, vocab):
    """A tiny random llama model with the tokenizer and chat template of GGUF ``vocab``."""
    return write_tiny_model(path, "llama", n_embd=32, n_head=4, n_head_kv=2, n_ff=64, head_dim=HEAD_DIM, seed=3,
                            tokenizer_from=vocab)


@pytest.fixture(scope="module")
def tiny_with_vocab(request, tmp_path_factory):
    """A tiny random llama model that speaks SmolLM2's tokenizer and chat template (HOGWILD_TEST_VOCAB's)."""
    vocab = VOCAB or request.getfixturevalue("smollm2").path
    spec = write_tiny_speaking(tmp_path_factory.mktemp("m") / "tiny-vocab.gguf", vocab)
    model = load_model(spec.path)
    yield spec, model
    model.close()


def test_vocab_only_file_carries_the_tokenizer(smollm2, tmp_path):
    """The GPU run builds tiny_with_vocab from a tokenizer-only copy of SmolLM2: it must speak the same."""
    vocab = write_vocab_only(smollm2.path, tmp_path / "vocab.gguf")
    assert vocab.stat().st_size < 4 * 2**20  # no weights
    spec = write_tiny_speaking(tmp_path / "tiny.gguf", vocab)
    chat = [("user", PROBLEM)]
    with Model(spec.path) as tiny:
        assert tiny.tokenize(PROBLEM) == smollm2.tokenize(PROBLEM)
        assert tiny.apply_chat_template(chat) == smollm2.apply_chat_template(chat)


def replay(spec, trace: list[tuple], block_ranges: list[tuple[int, int, int]]) -> float:
    """Replay the engine's cache operations on the reference; return the worst logit error."""
    ref = ReferenceModel(spec)
    cache = ref.new_cache()
    worst = 0.0
    for _, logits, seen in TraceReplay(block_ranges).run(trace):
        expected = ref.forward(cache, seen)
        for i, got in logits.items():
            worst = max(worst, float(np.abs(got - expected[i]).max()))
    return worst


@pytest.mark.parametrize("layout", ["combined", "stepwise"])
def test_engine_logits_match_reference(tiny_with_vocab, monkeypatch, layout):
    """Every worker's logits on every pass, through step completions, a user note and the finisher."""
    spec, model = tiny_with_vocab
    # random weights rarely write a blank line after a full stop: end every step once it is long enough
    def long_enough(step_text: str, token_text: str) -> bool:
        return len(step_text) > 70

    monkeypatch.setattr(prompts, "ends_step", long_enough)
    cfg = RunConfig(workers=3, layout=layout, budget=24, n_ctx=1024, cache_type="f32", threads=2,
                    sampling=SamplingParams(temperature=1.0, seed=5), stop_on_answer=False)
    gen = Generation(model, "What is 2 + 3?", cfg)
    gen.trace = []
    gen.add_note("Remember to check the units.")
    events = list(gen.events())
    steps = [e for e in events if e.type == "step"]
    assert {e.worker for e in steps} >= {"Alice", "Bob", "Carol", "User"}
    assert any(op == "seq_add" for op, *_ in gen.trace)
    worst = replay(spec, gen.trace, gen.layout.block_ranges())
    print(f"\nmax abs error: engine run {layout}: {worst:.3g}")
    assert worst <= tolerance(1e-4), worst


@pytest.mark.parametrize("layout", ["combined", "independent"])
def test_cut_and_dropped_steps_leave_a_consistent_cache(tiny_with_vocab, monkeypatch, layout):
    """Cutting a step (a forged header) and dropping one (a repeat) free cells that later tokens reuse;
    the logits must still match the reference, and the cache must hold exactly the layout's tokens."""
    spec, model = tiny_with_vocab
    monkeypatch.setattr(prompts, "ends_step", lambda step_text, token_text: len(step_text) > 70)
    # random text never writes "**Bob [": pretend a header starts 12 characters into a step 40 long
    monkeypatch.setattr(prompts, "forged_header",
                        lambda text, start: start + 12 if len(text) > start + 40 else None)
    # and every other step of a worker repeats one it has seen
    bodies = iter(["first", "same", "second", "same"] * 20)
    monkeypatch.setattr(prompts, "step_body", lambda text: next(bodies))
    method = "hogwild" if layout == "combined" else "independent"
    cfg = RunConfig(method=method, workers=2, budget=60, n_ctx=1024, cache_type="f32", threads=2,
                    sampling=SamplingParams(temperature=1.0, seed=5), stop_on_answer=False,
                    end_at_headers=True, drop_repeats=True)
    gen = Generation(model, "What is 2 + 3?", cfg)
    gen.trace = []
    events = list(gen.events())
    cuts = [e for e in events if e.type == "cut"]
    assert {e.reason for e in cuts} == {"header", "repeat"}
    for e in cuts:
        if e.reason == "header":
            header = prompts.step_header(["Alice", "Bob"].index(e.worker), 1).split("[")[0]
            assert e.text.startswith(header) and e.text.endswith("\n\n")
        else:
            assert e.text == ""
    assert any(op == "seq_rm" and args[0] == -1 for op, *args in gen.trace)
    assert gen.ctx.cells_used() == gen.layout.live_cells()
    assert all(e.cells_used == e.tokens_written for e in events if e.type == "stats")  # freed cells are counted
    worst = replay(spec, gen.trace, gen.layout.block_ranges())
    print(f"\nmax abs error: engine run with cuts and drops {layout}: {worst:.3g}")
    assert worst <= tolerance(1e-4), worst


@pytest.mark.parametrize("workers", [2, 4])
def test_smollm2_end_to_end(smollm2, workers):
    """64 passes of real text. SmolLM2-135M often keeps one worker in a single long step for all 64 passes
    (seeds 0, 1, 3 with 2 workers on this problem), and which seeds do so depends on the last bits of the
    attention (the CPU, the patch series): the seeds are tried in turn until the history holds steps of
    several workers. The cache accounting below must hold for every seed tried."""
    for seed in (2, 1, 4, 5, 6, 7):
        cfg = RunConfig(workers=workers, budget=64, n_ctx=4096, threads=2, sampling=SamplingParams(seed=seed),
                        stop_on_answer=False)
        gen = Generation(smollm2, PROBLEM, cfg)
        text: dict[str, str] = {}
        stats, steps, answer, sampled = [], [], None, 0
        for event in gen.events():
            if event.type == "token" and not event.forced:
                text[event.worker] = text.get(event.worker, "") + event.text
                sampled += 1
            elif event.type == "stats":
                stats.append(event)
            elif event.type == "step":
                steps.append(event)
            elif event.type == "answer":
                answer = event
        names = ["Alice", "Bob", "Carol", "Dave"][:workers]
        assert all(len(text.get(name, "").strip()) > 20 for name in names), text
        assert len(stats) == 64 and answer.passes == 64
        # one shared copy of every token: the cache holds exactly what was written
        assert all(s.cells_used == s.tokens_written for s in stats)
        assert gen.ctx.cells_used() == gen.layout.live_cells()
        assert answer.reason == "budget" and answer.tokens_generated == sampled
        if len({s.worker for s in steps}) > 1:
            break
    else:
        pytest.fail("no seed gave a history with steps of more than one worker")


def greedy_run(model: Model, n_ctx: int, cache_type: str) -> list[tuple[str, str, bool]]:
    """Every token event (worker, text, forced) of a greedy 4-worker run of 48 passes."""
    cfg = RunConfig(workers=4, budget=48, n_ctx=n_ctx, cache_type=cache_type, threads=2,
                    sampling=SamplingParams(temperature=0.0), stop_on_answer=False)
    return [(e.worker, e.text, e.forced) for e in Generation(model, PROBLEM, cfg).events() if e.type == "token"]


@pytest.mark.parametrize("cache_type", ["f32", "f16"])
def test_greedy_text_does_not_depend_on_the_context_size(smollm2, cache_type):
    """Keys are rotated at block-local positions, so the step blocks' canonical positions (up to ~5 * n_ctx
    here) never enter a RoPE angle: greedy text at --ctx 131072 is the text at --ctx 4096 (it parted after
    4-17 tokens per worker while keys were rotated at canonical positions). The 131072-cell cache takes
    6 GB in f32, 3 GB in f16."""
    small = greedy_run(smollm2, 4096, cache_type)
    large = greedy_run(smollm2, 131072, cache_type)
    sampled = [t for t in small if not t[2]]
    assert len(sampled) > 4 * 40 and {w for w, _, _ in sampled} == {"Alice", "Bob", "Carol", "Dave"}
    assert large == small


@pytest.mark.parametrize("cache_type, path", [("f16", "flash"), ("f32", "query-copy")])
def test_a_run_takes_flash_attention_unless_the_cache_is_f32(smollm2, cache_type, path):
    """A Hogwild context has flash attention on, and its passes take the patch's key copies in the spare cells
    the engine keeps, unless the cache is f32 (llama.cpp's flash attention would cast it to f16): the paths the
    patch logged at its graph builds up to the end of the run, the finisher's included."""
    cfg = RunConfig(workers=4, budget=24, n_ctx=2048, cache_type=cache_type, threads=2, stop_on_answer=False)
    gen = Generation(smollm2, PROBLEM, cfg)
    events, paths = [], set()
    clear_log()  # forget earlier tests' graph builds
    for event in gen.events():  # the log keeps 64 lines: read it as the run goes
        events.append(event)
        paths |= attention_paths()
        clear_log()
    assert paths == {path}
    assert gen.ctx.cells_total() - events[0].cells_total == spare_cells(4, 2048, flash_attn=cache_type != "f32")


@pytest.mark.parametrize("check_repeats", [False, True])
def test_check_repeats_asks_the_self_check_question(smollm2, check_repeats):
    """Greedy SmolLM2-135M loops ("I'm going to do something." again and again). With check_repeats, a worker
    whose step repeated a finished step word for word opens its next step with the self-check question."""
    cfg = RunConfig(workers=2, budget=128, n_ctx=4096, threads=2, sampling=SamplingParams(temperature=0.0),
                    stop_on_answer=False, check_repeats=check_repeats)
    seen: set[str] = set()
    expect_check: dict[str, bool] = {}
    repeats = checks = 0
    for event in Generation(smollm2, PROBLEM, cfg).events():
        if event.type == "step":
            body = prompts.step_body(event.text)
            expect_check[event.worker] = bool(body) and body in seen
            repeats += expect_check[event.worker]
            seen.add(body)
        elif event.type == "token" and event.forced and event.worker in expect_check:
            asked = prompts.SELF_CHECK in event.text
            assert asked == (check_repeats and expect_check.pop(event.worker)), (event.worker, event.text)
            checks += asked
    assert repeats >= 2, "this greedy run should repeat steps"
    assert checks == (repeats if check_repeats else 0)


def test_drop_repeats_keeps_repeated_steps_out_of_the_history(smollm2):
    """Greedy SmolLM2-135M loops (see above). With drop_repeats a step that repeats a finished one is freed:
    the history holds no step twice, and the worker writes that step again under the same number."""
    cfg = RunConfig(workers=2, budget=128, n_ctx=4096, threads=2, sampling=SamplingParams(temperature=0.0),
                    stop_on_answer=False, drop_repeats=True)
    gen = Generation(smollm2, PROBLEM, cfg)
    bodies, opened, reopen, drops = [], {}, {}, 0
    for event in gen.events():
        if event.type == "step":
            bodies.append(prompts.step_body(event.text))
        elif event.type == "cut":
            assert event.reason == "repeat" and event.text == ""
            reopen[event.worker] = opened[event.worker]
            drops += 1
        elif event.type == "token" and event.forced:
            opened[event.worker] = int(event.text.split("[")[1].split("]")[0])
            if event.worker in reopen:
                assert opened[event.worker] == reopen.pop(event.worker)  # the dropped step's number again
    assert drops >= 2, "this greedy run should repeat steps"
    assert len(bodies) == len(set(bodies)) and len(gen.layout.history) == len(bodies)
    assert gen.ctx.cells_used() == gen.layout.live_cells()


MARKDOWN_PROBLEM = ("Format your work in markdown: start each part with a ### heading and put key numbers in "
                    "**bold**. What is 17 * 23?")


@pytest.mark.parametrize("bar", [False, True])
def test_bar_headers_keeps_header_marks_out_of_the_workers_text(smollm2, bar):
    """Asked for markdown, sampled SmolLM2-135M writes "#" and "**" in its steps (seeds 2 and 3: 10 and 15
    "#", 0 and 5 "**"; "### The other one" and a forged "**Alice [2]:**" in `make demo`-like runs). With
    bar_headers no token holding either is drawn, nor a "*" after a "*": the only marks are the engine's
    forced headers. Each worker's sampled text is checked between its forced pieces."""
    found = 0
    for seed in (2, 3):
        cfg = RunConfig(workers=2, budget=48, n_ctx=4096, threads=2, stop_on_answer=False, finisher_tokens=4,
                        sampling=SamplingParams(temperature=1.0, seed=seed), bar_headers=bar)
        pieces: dict[str, list[str]] = {}
        for event in Generation(smollm2, MARKDOWN_PROBLEM, cfg).events():
            if event.type == "token":
                pieces.setdefault(event.worker, []).append("\0" if event.forced else event.text)
        sampled = [run for texts in pieces.values() for run in "".join(texts).split("\0")]
        assert sum(len(run) for run in sampled) > 100, sampled
        found += sum(run.count("#") + run.count("**") for run in sampled)
    assert (found == 0) if bar else (found > 0), found


def test_bar_is_absolute_for_the_sampler(smollm2):
    """Context.bar makes tokens impossible for any sampler: greedy SmolLM2 continues "The capital of France
    is" with another token once its first choice is barred, and a sampled draw never hits a barred token."""
    prompt = smollm2.tokenize("The capital of France is")
    last = len(prompt) - 1
    with smollm2.context(n_ctx=256, n_threads=2) as ctx:
        ctx.decode([Token(t, i, (0,), i == last) for i, t in enumerate(prompt)])
        with Sampler(smollm2, SamplingParams(temperature=0)) as greedy:
            first = greedy.sample(ctx, last)
            top = np.argsort(ctx.logits(last))[::-1][:20]
            ctx.bar(last, top)
            assert ctx.logits(last)[top].max() == -np.inf
            second = greedy.sample(ctx, last)
            assert second != first and second not in top
        for seed in range(20):
            with Sampler(smollm2, SamplingParams(temperature=2.0, top_k=0, top_p=1.0, min_p=0.0, seed=seed)) as s:
                assert s.sample(ctx, last) not in top


def test_dry_penalizes_repeating_the_context_it_is_given(smollm2):
    """DRY finds repeats in the tokens set_dry_context hands it: greedy SmolLM2 continues "The capital of
    France is" with the same token as without DRY, unless that context already holds those words followed
    by that token."""
    prompt = smollm2.tokenize("The capital of France is")
    last = len(prompt) - 1
    with smollm2.context(n_ctx=256, n_threads=2) as ctx:
        ctx.decode([Token(t, i, (0,), i == last) for i, t in enumerate(prompt)])
        with Sampler(smollm2, SamplingParams(temperature=0)) as plain, \
                Sampler(smollm2, SamplingParams(temperature=0, dry_multiplier=5.0)) as dry:
            first = plain.sample(ctx, last)
            dry.set_dry_context(prompt)
            assert dry.sample(ctx, last) == first
            dry.set_dry_context([*prompt, first, *smollm2.tokenize(". Yes."), *prompt])
            assert dry.sample(ctx, last) != first


def test_dry_reads_what_the_worker_sees(smollm2, monkeypatch):
    """With DRY on, the context each worker's sampler gets is its view: the finished steps in order, the
    other worker's unfinished step, then its own step (the prompt and the fixed header texts left out).
    Text from an event of pass p is written into the cache in pass p + 1."""
    given: list[tuple[int, list[int]]] = []
    monkeypatch.setattr(Sampler, "set_dry_context", lambda self, tokens: given.append((id(self), list(tokens))))
    cfg = RunConfig(workers=2, budget=40, n_ctx=2048, threads=2, stop_on_answer=False,
                    sampling=SamplingParams(seed=3, dry_multiplier=0.8))
    history, steps, owners, checked = "", {"Alice": [], "Bob": []}, {}, 0
    for event in Generation(smollm2, PROBLEM, cfg).events():
        if event.type == "token":
            if event.forced:
                steps[event.worker] = []
            if not event.forced:  # the context was given just before this token was drawn
                key, tokens = given[-1]
                assert owners.setdefault(key, event.worker) == event.worker  # one sampler per worker
                other = "Bob" if event.worker == "Alice" else "Alice"
                written = lambda name, before=event.pass_: "".join(t for p, t in steps[name] if p < before)  # noqa: E731
                text = b"".join(smollm2.token_bytes(t) for t in tokens).decode("utf-8", "replace")
                assert text == history + written(other) + written(event.worker)
                checked += 1
            steps[event.worker].append((event.pass_, event.text))
        elif event.type == "step":
            history += event.text
            steps[event.worker] = []
    assert checked > 40 and history


def test_prompt_longer_than_context(smollm2):
    gen = Generation(smollm2, "word " * 400, RunConfig(workers=2, n_ctx=256, threads=2))
    with pytest.raises(EngineError, match=r"the prompt \(\d+ tokens\) does not fit the context \(256\)"):
        list(gen.events())


def test_a_negative_step_limit_is_refused(smollm2):
    with pytest.raises(EngineError, match=r"^the step limit must be 0 \(none\) or a number of tokens, got -1$"):
        Generation(smollm2, PROBLEM, RunConfig(step_limit=-1))


def test_single_worker_and_self_consistency_run(smollm2):
    for method in ("single", "independent", "self-consistency"):
        cfg = RunConfig(method=method, workers=2, budget=16, n_ctx=2048, threads=2, finisher_tokens=8)
        events = list(Generation(smollm2, PROBLEM, cfg).events())
        answer = events[-1]
        assert answer.type == "answer" and answer.passes == 16
        if method == "self-consistency":
            assert sum(answer.votes.values()) <= 2


@pytest.mark.parametrize(
    "change, message",
    [
        ({"rope_type": -1}, "llama: no RoPE is not supported (needs plain RoPE)"),
        ({"rope_type": 8}, "llama: M-RoPE is not supported (needs plain RoPE)"),
        ({"is_recurrent": True}, "llama: recurrent or hybrid memory cannot share a KV cache between workers"),
        ({"is_hybrid": True}, "llama: recurrent or hybrid memory cannot share a KV cache between workers"),
        ({"n_swa": 512}, "llama: sliding-window attention is not supported yet"),
    ],
)
def test_refusals(smollm2, change, message):
    """What check_model says about architectures the shared cache cannot serve (model facts varied)."""
    from dataclasses import replace
    from types import SimpleNamespace

    from hogwild_local.engine import check_model

    check_model(smollm2)  # the real model passes
    with pytest.raises(EngineError) as err:
        check_model(SimpleNamespace(info=replace(smollm2.info, **change)))
    assert str(err.value) == message


def test_eight_workers_on_a_thirty_layer_model(smollm2):
    """W=8 is 20 blocks: the attention graph must stay within llama.cpp's node budget (it once did not)."""
    events = list(Generation(smollm2, PROBLEM, RunConfig(workers=8, budget=4, n_ctx=2048, threads=2)).events())
    assert {e.worker for e in events if e.type == "token"} == {"Alice", "Bob", "Carol", "Dave", "Eve", "Frank",
                                                               "Grace", "Heidi"}


def test_context_full_mid_generation_still_answers(smollm2):
    """A small context fills up: generation stops with reason context_full, and the finisher still answers."""
    gen = Generation(smollm2, "Count from one to two hundred.", RunConfig(workers=2, budget=2000, n_ctx=512, threads=2))
    events = list(gen.events())
    answer = events[-1]
    assert answer.type == "answer" and answer.reason == "context_full" and answer.passes < 2000
    assert gen.ctx.cells_used() <= events[0].cells_total == 512  # the spare cells for key copies stay free


@pytest.mark.parametrize("words", [3000, 810])
def test_a_note_that_does_not_fit_ends_the_run_with_the_finishers_answer(smollm2, words):
    """A note longer than the context (3000 tokens: LayoutFull once escaped), or one with room in the history
    block but not in the cache (810 of 1024 cells, the prompt and headers holding ~230: llama_decode failed):
    the run ends there, not with an exception, and the finisher still answers."""
    gen = Generation(smollm2, PROBLEM, RunConfig(workers=2, budget=16, n_ctx=1024, threads=2))
    gen.add_note("word " * words)
    events = list(gen.events())
    answer = events[-1]
    assert answer.type == "answer" and answer.reason == "note_too_long" and answer.passes == 0
    assert answer.finisher_text and not any(e.type == "step" for e in events)  # the note was not written
    assert gen.ctx.cells_used() <= gen.ctx.cells_total()


def test_notes_are_counted_and_the_cache_is_as_large_as_llama_cpp_made_it(smollm2):
    """--ctx 520 gives 768 cells: StartEvent says so, and a note that makes the history longer than 520 tokens
    still fits. Notes and the snapshot's finisher are counted: every token is stored once, so cells_used ==
    tokens_written at every stats event."""
    cfg = RunConfig(workers=2, budget=12, n_ctx=520, threads=2, stop_on_answer=False, snapshots=(4,))
    gen = Generation(smollm2, PROBLEM, cfg)
    prompt = len(smollm2.tokenize(gen.prompt_text(), add_special=True))
    gen.add_note("Check the units. " * ((520 - prompt) // 4 + 5))  # 4 tokens each: 20 past 520
    events = list(gen.events())
    start, answer = events[0], events[-1]
    assert start.type == "start" and start.cells_total == 768
    assert gen.ctx.cells_total() == 768 + spare_cells(2, 520, flash_attn=True)  # the key copies' room
    notes = [e for e in events if e.type == "step" and e.worker == "User"]
    assert len(notes) == 1 and start.prompt_tokens + len(smollm2.tokenize(notes[0].text)) > 520
    stats = [e for e in events if e.type == "stats"]
    assert len(stats) == 12 and all(s.cells_used == s.tokens_written for s in stats)
    assert any(e.type == "snapshot" for e in events)
    assert answer.reason == "budget" and answer.passes == 12


@pytest.mark.parametrize("box, answered", [("5", True), ("answer", False), ("", False)])
def test_a_placeholder_box_is_no_answer(smollm2, monkeypatch, box, answered):
    """Small models copy the rules' \\boxed{...} form. A step holding \\boxed{answer} or an empty box does not end
    the run as answered; a real one does (the check can tell). The opener is forced text of each first step."""
    monkeypatch.setattr(prompts, "opener", lambda worker, n_workers: f" We have \\boxed{{{box}}}.")
    cfg = RunConfig(workers=2, budget=48, n_ctx=2048, threads=2, step_limit=24, sampling=SamplingParams(seed=0))
    events = list(Generation(smollm2, PROBLEM, cfg).events())
    end = events[-1]
    assert end.answer is None or not prompts.is_placeholder(end.answer)
    if answered:
        assert end.reason == "answer" and end.answer == box
    else:  # the box reached a finished step, and the run went on
        assert any(f"\\boxed{{{box}}}" in e.text for e in events if e.type == "step")
        assert end.reason == "budget" and end.passes == 48


def long_story_steps(model: Model, limit: int) -> tuple[list[int], list[StepEvent]]:
    """The soak's story prompt, 4 workers, step_limit ``limit``: the size of each step at its "long" cut (tokens,
    its header included, as the engine counts them), and the finished steps. Checks the cache accounting."""
    cfg = RunConfig(workers=4, budget=150, n_ctx=4096, threads=2, stop_on_answer=False, step_limit=limit,
                    sampling=SamplingParams(seed=0))
    size: dict[str, int] = {}
    cuts, steps = [], []
    for event in Generation(model, "Write a long story about a lighthouse.", cfg).events():
        if event.type == "token":
            size[event.worker] = len(model.tokenize(event.text)) if event.forced else size[event.worker] + 1
        elif event.type == "cut":
            assert event.reason == "long" and event.text.endswith("\n\n")
            cuts.append(size[event.worker])
        elif event.type == "step":
            steps.append(event)
        elif event.type == "stats":
            assert event.cells_used == event.tokens_written
    return cuts, steps


def test_step_limit_ends_long_steps(smollm2):
    """The soak's failure: on a story, SmolLM2 workers copy the view's section headers, or loop on "[1] [1] [1]",
    and never end a step, so no work reaches the history. Past step_limit tokens a step ends at its next line or
    sentence end, past twice the limit at once: every worker's steps reach the history. (How many steps run
    long depends on the numerics: 3 of 57 at limit 24 with flash attention, more with the fused kernel.)"""
    limit = 24
    cuts, steps = long_story_steps(smollm2, limit)
    assert len(cuts) >= 2 and len(steps) >= len(cuts) and len({s.worker for s in steps}) == 4
    assert all(limit < n <= 2 * limit + 1 for n in cuts), cuts
    assert any(n < 2 * limit for n in cuts)  # some ended at a sentence or line end


def test_a_step_with_no_sentence_end_ends_at_twice_the_limit(smollm2, monkeypatch):
    monkeypatch.setattr(prompts, "sentence_end", lambda step_text, start: None)
    cuts, steps = long_story_steps(smollm2, 20)
    assert len(cuts) >= 2 and set(cuts) == {41} and len(steps) >= len(cuts)


def test_notes_and_the_finisher_are_decoded_in_pieces_of_a_pass(smollm2):
    """llama.cpp's compute memory grows with tokens x cells: the finisher's ~20-token prompt in one decode, at
    the run's largest cache, raised RSS by 20 % in a soak. A note and the finisher prompt go W tokens at a time."""
    workers = 3
    gen = Generation(smollm2, PROBLEM, RunConfig(workers=workers, budget=6, n_ctx=2048, threads=2))
    gen.trace = []
    note = "Check the units, and say which month had more clips."
    gen.add_note(note)
    events = list(gen.events())
    common, finisher = gen.layout.common, gen.layout.finisher
    prompt = events[0].prompt_tokens
    pieces = {"note": [], "finisher": []}
    for op, *args in gen.trace:
        if op == "decode" and all(prompt <= t.pos < common.end for t in args[0]):
            pieces["note"].append(len(args[0]))
        elif op == "decode" and all(finisher.start <= t.pos < finisher.end for t in args[0]):
            pieces["finisher"].append(len(args[0]))
    assert sum(pieces["note"]) == len(smollm2.tokenize(f"**User:** {note}\n\n")) > workers
    assert sum(pieces["finisher"]) > len(smollm2.tokenize(prompts.FINISHER)) > workers  # its prompt, its answer
    assert max(pieces["note"] + pieces["finisher"]) == workers
    assert events[-1].type == "answer" and events[-1].finisher_text


def test_a_long_step_keeps_the_token_that_ends_its_sentence(smollm2, monkeypatch):
    """SmolLM2 writes "." and "\\n" as two tokens, Qwen2.5 writes ".\\n" as one: a step past the limit may end
    right after the token just sampled, which is not in the cache yet. It must be written with the blank line:
    the history in the cache reads exactly as the finished steps. Here every token past the limit ends one."""
    monkeypatch.setattr(prompts, "sentence_end", lambda step_text, start: len(step_text))
    cfg = RunConfig(workers=2, budget=60, n_ctx=2048, threads=2, step_limit=16, stop_on_answer=False,
                    sampling=SamplingParams(seed=1))
    gen = Generation(smollm2, PROBLEM, cfg)
    events = list(gen.events())
    steps = [e.text for e in events if e.type == "step"]
    assert len(steps) >= 4 and {e.reason for e in events if e.type == "cut"} == {"long"}
    cached = b"".join(smollm2.token_bytes(t) for t in gen._written[gen.layout.common.id]).decode()
    assert cached == "".join(steps)
    assert gen.ctx.cells_used() == gen.layout.live_cells()
