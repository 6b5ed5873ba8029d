"""Thinking blocks: detection from the chat template, the prompt per mode, the finisher, answers, the option.

The models are tiny random-weight GGUFs that speak SmolLM2's tokenizer and carry the chat templates of
QwQ-32B, the DeepSeek-R1 distills, Qwen3 and Qwen2.5-Coder (``chat_templates``), or SmolLM2's own.
"""

from __future__ import annotations

import json

import jinja2
import pytest

from chat_templates import DEEPSEEK_R1_DISTILL, QWEN3, QWEN25_CODER, QWQ_32B
from hogwild_local.engine import EngineError, Generation, RunConfig, prompts, thinking
from hogwild_local.engine.events import AnswerEvent, StartEvent
from hogwild_local.engine.thinking import Sign
from hogwild_local.measure.results import compatible_settings
from hogwild_local.models import resolve_model
from hogwild_local.native import Model, SamplingParams
from test_cli import hogwild
from tiny_gguf import write_tiny_model
from where import VOCAB

TEMPLATES = {"qwq-32b": QWQ_32B, "deepseek-r1-distill": DEEPSEEK_R1_DISTILL, "qwen3": QWEN3,
             "qwen2.5-coder": QWEN25_CODER, "smollm2": None}  # None: the vocabulary's own template
REASONING = ("qwq-32b", "deepseek-r1-distill", "qwen3")
INSTRUCT = ("qwen2.5-coder", "smollm2")
SIGNS = {"qwq-32b": (Sign.OPENS, Sign.MENTIONS), "deepseek-r1-distill": (Sign.OPENS, Sign.MENTIONS),
         "qwen3": (Sign.SWITCH, Sign.MENTIONS), "qwen2.5-coder": (), "smollm2": ()}
CHATML = "<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n"  # llama.cpp's chatml: no system prompt
HEADERS = {name: CHATML for name in TEMPLATES} | {"deepseek-r1-distill": "<｜User｜>{}<｜Assistant｜>"}
ENDS = {  # what the prompt ends with, after the assistant header, per mode
    name: {"auto": "<think>\n", "on": "<think>\n", "off": "<think>\n\n</think>\n\n"} if name in REASONING
    else {"auto": "", "on": "<think>\n", "off": ""} for name in TEMPLATES
}
BLOCKS = {"<think>\n": "open", "<think>\n\n</think>\n\n": "closed", "": "none"}
PROBLEM = "What is 2 + 3?"
MODES = ("auto", "on", "off")


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Model]:
    """One tiny model per template."""
    vocab = VOCAB or resolve_model("smollm2-135m", progress=False)
    folder = tmp_path_factory.mktemp("templates")
    loaded = {}
    for name, template in TEMPLATES.items():
        spec = write_tiny_model(folder / f"{name}.gguf", "llama", n_embd=32, n_head=4, n_head_kv=2, n_ff=64, seed=3,
                                tokenizer_from=vocab, chat_template=template)
        loaded[name] = Model(spec.path)
    yield loaded
    for model in loaded.values():
        model.close()


def config(mode: str, **changes) -> RunConfig:
    return RunConfig(think=mode, workers=2, budget=6, n_ctx=1024, threads=2, sampling=SamplingParams(seed=7),
                     **changes)


def user_message() -> str:
    return prompts.user_message(PROBLEM, 2)


# --------------------------------------------------------------------------------------------------
# detection and the prompt


@pytest.mark.parametrize("name", TEMPLATES)
def test_detected_signs(models, name):
    """QwQ and the R1 distills open a block, Qwen3 has a switch, the instruct models show no sign."""
    found = thinking.for_model(models[name])
    assert found.signs == SIGNS[name]
    assert found.reasoning == (name in REASONING)
    assert found.describe().startswith("a reasoning model: " if name in REASONING else "not a reasoning model")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", TEMPLATES)
def test_prompt_per_mode(models, name, mode):
    """The exact prompt: llama.cpp's rendering of the template, then the mode's thinking text."""
    text = Generation(models[name], PROBLEM, config(mode)).prompt_text()
    assert text == HEADERS[name].format(user_message()) + ENDS[name][mode]


@pytest.mark.parametrize("name", INSTRUCT)
@pytest.mark.parametrize("mode", ["auto", "off"])
def test_instruct_prompts_are_unchanged(models, name, mode):
    """For an instruct model only --think on changes the prompt: auto and off give the template's rendering,
    byte for byte, as before thinking modes existed."""
    model = models[name]
    before = model.apply_chat_template([("user", user_message())])
    assert Generation(model, PROBLEM, config(mode)).prompt_text() == before


@pytest.mark.parametrize(("name", "mode", "enable_thinking", "model_writes"), [
    ("qwq-32b", "auto", None, ""),
    ("deepseek-r1-distill", "auto", None, ""),
    ("qwen3", "off", False, ""),
    ("qwen3", "auto", None, "<think>\n"),  # Qwen3 opens the block itself when thinking: we open it for it
])
def test_prompt_is_what_the_model_template_writes(models, name, mode, enable_thinking, model_writes):
    """The template rendered by Jinja itself (as transformers does) gives the same prompt: what llama.cpp's
    renderer left out of the generation prompt is back."""
    variables = {} if enable_thinking is None else {"enable_thinking": enable_thinking}
    own = jinja2.Environment(trim_blocks=True, lstrip_blocks=True).from_string(TEMPLATES[name]).render(
        messages=[{"role": "user", "content": user_message()}], add_generation_prompt=True, bos_token="",
        **variables)
    assert Generation(models[name], PROBLEM, config(mode)).prompt_text() == own + model_writes


def test_detection_without_a_rendering():
    """No template, one that does not render, one that only mentions the tag; a <think> token in the vocabulary."""
    assert thinking.detect(None).signs == ()
    assert thinking.detect("{% if %}").signs == ()
    assert thinking.detect("{{ raise_exception('no') }} <think>").signs == (Sign.MENTIONS,)
    assert thinking.detect(QWEN25_CODER, think_token=True).signs == (Sign.TOKEN,)
    found = thinking.detect(None, think_token=True)
    assert found.tail("x", "auto") == "<think>\n" and found.tail("x", "off") == "<think>\n\n</think>\n\n"


@pytest.mark.parametrize(("prompt", "mode", "tail"), [
    ("<|im_start|>assistant\n<think>\n", "auto", ""),  # the renderer opened the block: not twice
    ("<|im_start|>assistant\n<think>\n", "off", "\n</think>\n\n"),  # off closes it
    ("Explain <think> tags<|im_end|>\n<|im_start|>assistant\n", "auto", "<think>\n"),  # a tag in the problem
])
def test_a_block_the_renderer_opened(prompt, mode, tail):
    assert thinking.detect(QWQ_32B).tail(prompt, mode) == tail


def test_an_unknown_mode_is_one_line(models):
    with pytest.raises(EngineError, match="^unknown thinking mode 'maybe'; choose one of auto, on, off$"):
        Generation(models["qwq-32b"], PROBLEM, config("maybe"))


# --------------------------------------------------------------------------------------------------
# a real run, the finisher


def run(model: Model, cfg: RunConfig, notes: tuple[str, ...] = ()) -> tuple[StartEvent, AnswerEvent, str]:
    """Run to the end; the start and answer events and everything the workers wrote."""
    gen = Generation(model, PROBLEM, cfg)
    for note in notes:
        gen.add_note(note)
    events = list(gen.events())
    written = "".join(getattr(e, "text", "") for e in events if e.type in ("token", "step"))
    return events[0], events[-1], written


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", TEMPLATES)
def test_generation_with_each_template(models, name, mode):
    """A few passes and the finisher: it closes the block the workers wrote in, and only then."""
    start, answer, written = run(models[name], config(mode))
    block = BLOCKS[ENDS[name][mode]]
    assert start.thinking == {"signs": [s.value for s in SIGNS[name]], "block": block}
    assert start.config["think"] == mode
    assert answer.type == "answer" and answer.reason == "budget" and answer.passes == 6
    assert thinking.OPEN not in written and thinking.CLOSE not in written  # random text wrote no tag
    assert answer.finisher_prompt == prompts.finisher(in_thinking=block == "open")


@pytest.mark.parametrize(("notes", "closes"), [
    ((), True),
    (("We are done thinking.\n</think>",), False),  # closed in the history: the finisher asks plainly
    (("</think>", "Again: <think>"), True),  # the last tag decides
])
def test_the_finisher_follows_the_last_tag(models, notes, closes):
    _, answer, _ = run(models["qwq-32b"], config("auto"), notes)
    assert answer.finisher_prompt == prompts.finisher(in_thinking=closes)
    assert (thinking.CLOSE in answer.finisher_prompt) == closes


def test_finisher_prompts():
    assert prompts.finisher(in_thinking=False) == prompts.FINISHER
    assert prompts.FINISHER == "\n\nTime is up. Putting together what we found, the final answer is \\boxed{"
    assert prompts.finisher(in_thinking=True) == (
        "\n\nTime is up.\n</think>\n\nPutting together what we found, the final answer is \\boxed{")


# --------------------------------------------------------------------------------------------------
# answers and steps inside a thinking block


@pytest.mark.parametrize(("text", "answer"), [
    ("<think>\nSo 2 + 3 = 5, the answer is \\boxed{5}.", "5"),  # inside an open block
    ("<think>\nMaybe \\boxed{6}? No.\n</think>\n\nThe answer is \\boxed{5}.", "5"),  # after it wins
    ("<think>\nIt is \\boxed{5}.\n</think>\n\nSee above.", "5"),  # inside a closed block
    ("<think>\n\n</think>\n\n\\boxed{answer}", None),  # a placeholder is no answer
])
def test_answers_inside_and_after_thinking(text, answer):
    assert prompts.extract_boxed(text) == answer


def test_a_closing_tag_in_a_step():
    """A worker's </think> is text like any other: it ends no step by itself, its step ends at the next full
    sentence, and the tag decides whether the finisher is inside the block."""
    step = "**Alice [3]:** So the total is 72.\n</think>"
    assert not prompts.ends_step(step, "\n\n")  # a tag is no sentence end: the answer follows in this step
    step += "\n\nThe total is \\boxed{72}."
    assert prompts.ends_step(step, "\n\n")
    assert prompts.step_body(step).startswith("So the total is 72. </think> The total")
    assert prompts.extract_boxed(step) == "72"
    assert not thinking.is_open(step, opened=True) and thinking.is_open("more thoughts", opened=True)


@pytest.mark.parametrize("text", [
    "", "plain words", "<think>\nopen", "a</think>b", "<think>x</think>", "</think><think>", "<think></think><think>y",
    "x</thi", "nk>", "<<think>>", "</think></think>"])
@pytest.mark.parametrize("opened", [False, True])
def test_reading_the_tags_backwards_in_pieces(text, opened):
    """The finisher reads a long run's tokens backwards without joining them: the same verdict as reading
    the whole text, however the text is cut into pieces (tags split over pieces included)."""
    last_open, last_close = text.rfind("<think>"), text.rfind("</think>")
    expected = opened if last_open == last_close else last_open > last_close  # the last tag decides
    assert thinking.is_open(text, opened=opened) == expected
    data = text.encode()
    for size in (1, 2, 3, 7, len(data) or 1):
        pieces = [data[i:i + size] for i in range(0, len(data), size)]
        assert thinking.ends_inside(reversed(pieces), opened=opened) == expected


def test_block_states():
    assert thinking.block_state("...assistant\n<think>\n") == "open"
    assert thinking.block_state("...assistant\n<think>\n\n</think>\n\n") == "closed"
    assert thinking.block_state("...assistant\n") == "none"


# --------------------------------------------------------------------------------------------------
# the option, and results files from before it


@pytest.mark.parametrize(("args", "mode", "block"), [
    ([], "auto", "open"),
    (["--think"], "on", "open"),  # alone, last: on
    (["--think", "off"], "off", "closed"),
])
def test_think_option(models, args, mode, block):
    out = hogwild("run", PROBLEM, "-m", str(models["qwq-32b"].path), "-b", "2", "--threads", "2", "--ctx", "1024",
                  "--json", *args)
    assert out.returncode == 0, out.stderr
    start = json.loads(out.stdout.splitlines()[0])
    assert start["config"]["think"] == mode and start["thinking"]["block"] == block


def test_think_note_and_bad_value(models):
    path = str(models["qwq-32b"].path)
    out = hogwild("run", PROBLEM, "-m", path, "-b", "1", "--threads", "2", "--ctx", "1024")
    assert out.returncode == 0, out.stderr
    assert ("(thinking: the prompt opens a thinking block for the workers: its chat template opens a thinking "
            "block after the assistant header; its chat template handles <think> blocks; --think off skips it)"
            in out.stderr.splitlines())
    bad = hogwild("run", PROBLEM, "--think", "maybe")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.splitlines()[-1] == ("Error: Invalid value for '--think': 'maybe' is not one of 'auto', 'on', "
                                           "'off' (--think alone means on: put it after the problem, or write "
                                           "--think on)")
    before = hogwild("run", "--think", PROBLEM)  # --think alone, before the problem, takes it as its value
    assert before.returncode == 2 and "put it after the problem" in before.stderr.splitlines()[-1]


@pytest.mark.parametrize(("recorded", "now"), [(False, "auto"), (True, "on"), ("off", "off")])
def test_results_files_from_before_the_modes(recorded, now):
    """A results file that recorded the old flag pools with runs in the mode that writes the same prompt
    on the instruct models those files hold."""
    assert compatible_settings({"think": recorded})["think"] == now
