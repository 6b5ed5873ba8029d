"""Answer modes without a model: the rules and finisher prompt of each mode, and how the finisher's text
becomes the answer (what it may not write, when it is done, the certain pieces it streams)."""

from __future__ import annotations

import pytest

from hogwild_local.engine import RunConfig, prompts
from hogwild_local.engine.answers import FinalAnswer, worker_answer
from hogwild_local.engine.config import ANSWER_MODES, EngineError, check_config


def test_boxed_prompts_are_unchanged():
    """Boxed is eval's mode: its rules and finisher are the ones earlier results were measured with."""
    assert prompts.rules(2) == prompts.rules(2, "boxed")
    assert prompts.rules(2).endswith("- When the team has the answer, write it once as \\boxed{answer}.")
    assert prompts.user_message("2+2?", 1).endswith("\\boxed{answer}.\n\nProblem:\n2+2?")
    assert prompts.finisher(False) == prompts.finisher(False, "boxed") == prompts.FINISHER


@pytest.mark.parametrize("workers", [1, 3])
@pytest.mark.parametrize("mode, says", [("text", "plain prose"), ("code", "fenced code block")])
def test_the_rules_fit_the_mode(workers, mode, says):
    rules = prompts.rules(workers, mode)
    assert says in rules and "boxed" not in rules
    assert prompts.user_message("Write a haiku.", workers, mode).endswith("\n\nTask:\nWrite a haiku.")


@pytest.mark.parametrize("in_thinking", [False, True])
def test_each_finisher_ends_where_its_answer_begins(in_thinking):
    text, code = prompts.finisher(in_thinking, "text"), prompts.finisher(in_thinking, "code")
    assert text.endswith("final answer.\n\n") and code.endswith("final code.\n\n```")
    assert ("</think>" in text) is in_thinking and ("</think>" in code) is in_thinking


def test_answer_tokens_default_per_mode_unless_given():
    assert [RunConfig(answer=mode).answer_tokens for mode in ANSWER_MODES] == [16, 512, 1024]
    assert RunConfig(answer="text", finisher_tokens=40).answer_tokens == 40
    with pytest.raises(EngineError, match="unknown answer mode"):
        check_config(RunConfig(answer="poem"))


def written(mode: str, pieces: list[str]) -> tuple[FinalAnswer, str]:
    """The finisher writing ``pieces`` one token at a time; the answer state and the text it streamed."""
    final, streamed = FinalAnswer(mode), ""
    for piece in pieces:
        assert not final.complete
        streamed += final.add(piece)
    return final, streamed


def test_prose_streams_without_trailing_blanks_and_is_stripped():
    final, streamed = written("text", ["\n", "Caches", " keep", " what", "\n\n", "we", " need", ".\n"])
    assert final.answer() == "Caches keep what\n\nwe need."
    assert streamed == final.answer() and not final.complete  # prose ends at EOS or the token limit


@pytest.mark.parametrize("before, piece, refused", [
    ("The cache.\n", "**", False),  # a bare "**" may open bold text
    ("The cache.\n**", "Bob", True),  # a step header begins
    ("The cache.\n**", "Bold", False),
    ("The cache. ", "**Alice [", True),
    ("The cache. ", "**User:", True),
])
def test_prose_may_not_begin_a_step_header(before, piece, refused):
    final, _ = written("text", [before])
    assert final.refuses(piece) is refused
    assert not FinalAnswer("boxed").refuses(piece)


def test_code_ends_at_its_closing_fence():
    final, streamed = written("code", ["python", "\n", "x = ", "1", "\n`", "``"])
    assert final.complete and final.answer() == "```python\nx = 1\n```"
    assert final.answer().startswith(streamed) and streamed == "```python\nx = 1\n"


def test_code_cut_by_the_token_limit_is_closed():
    final, streamed = written("code", ["\n", "print(1)", "`"])
    assert final.answer() == "```\nprint(1)\n```" and final.answer().startswith(streamed)


def test_a_box_comes_whole():
    final, streamed = written("boxed", ["4", "2"])
    assert streamed == "" and final.add("}.") == "" and final.complete and final.answer() == "42"
    assert FinalAnswer("boxed").answer() is None and FinalAnswer("text").answer() is None


def test_only_a_boxed_run_ends_at_a_workers_box():
    assert worker_answer("boxed", "so \\boxed{7}") == "7"
    assert worker_answer("text", "so \\boxed{7}") is None
