"""The step-boundary rule, step bodies and answer extraction (pure text, no model)."""

from __future__ import annotations

import pytest

from hogwild_local.engine import prompts


@pytest.mark.parametrize(
    "step, token, ends",
    [
        ("**Bob [2]:** 10 glasses cost $50.", "\n\n", True),
        ("**Bob [2]:** 10 glasses cost $50.\n", "\n", True),  # tokenizers that write the blank line as two tokens
        ("**Bob [2]:** Is it 50?", "\n\n", True),
        ("**Bob [2]:** The cost is **$50.**", "\n\n", True),  # emphasis after the full stop
        ("**Bob [2]:** The cost is", "\n\n", False),  # no sentence end before the blank line
        ("**Bob [2]:** \\[ 10 \\times 5 = 50 \\]", "\n\n", False),  # display math is not a sentence end
        ("**Bob [2]:** ```python\nx = 1.", "\n\n", False),  # inside a code fence
        ("**Bob [2]:** $$ x = 1.", "\n\n", False),  # inside a $$ block
        ("**Bob [2]:** Done.", " and", False),  # no blank line
        ("**Bob [2]:** Done.\n\n", "More", False),  # the blank line came with an earlier token
    ],
)
def test_ends_step(step, token, ends):
    assert prompts.ends_step(step, token) is ends


def test_step_body_ignores_header_self_check_and_spacing():
    assert prompts.step_body("**Bob [3]:** 10 glasses  at $5\n each.\n\n") == "10 glasses at $5 each."
    assert prompts.step_body("**Alice [4]:** " + prompts.SELF_CHECK + "no.\n\n") == "no."
    assert prompts.step_body("**Alice [4]:** " + prompts.SELF_CHECK.strip()) == ""
    assert prompts.step_body("**Alice [4]:** x") != prompts.step_body("**Alice [4]:** y")


@pytest.mark.parametrize(
    "text, answer",
    [
        ("so the answer is \\boxed{18}.", "18"),
        ("\\boxed{\\frac{1}{2}} then \\boxed{3}", "3"),  # the last complete one
        ("\\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),  # nested braces
        ("\\boxed{12", None),  # not closed
        ("no box here", None),
        ("write it as \\boxed{answer}.", None),  # the placeholder small models copy from the rules
        ("\\boxed{ Answer }, \\boxed{\\text{the answer}}, \\boxed{...}, \\boxed{}", None),
        ("\\boxed{7} and then \\boxed{answer}", "7"),  # the last box that holds an answer
        ("\\boxed{answer = 7}", "answer = 7"),  # a real answer that mentions the word
    ],
)
def test_extract_boxed(text, answer):
    assert prompts.extract_boxed(text) == answer


@pytest.mark.parametrize("workers", [1, 3])
def test_the_rules_hold_no_answer(workers):
    """The rules show \\boxed{answer}: a worker or finisher that copies them has not answered."""
    assert "\\boxed{answer}" in prompts.rules(workers)
    assert prompts.extract_boxed(prompts.rules(workers)) is None


@pytest.mark.parametrize(
    "text, start, at",
    [
        ("**Bob [2]:** It was dark.", 23, None),  # a full stop: the sentence may go on ("3.5", "e.g.")
        ("**Bob [2]:** It was dark. The", 25, 25),  # whitespace after it: the end lies before this token
        ("**Bob [2]:** It was dark.\n", 25, 25),  # the newline token completes the sentence end
        ("**Bob [2]:** Pi is 3.14", 21, None),  # a decimal point
        ("**Bob [2]:** \"Go!\" she said", 18, 18),  # closing quotes belong to the sentence
        ("**Bob [2]:** ## Chapter one\n", 27, 28),  # a line end (a heading, a list item) without a full stop
        ("**Bob [2]:** A. B. C", 17, 18),  # the first end at or after the start
    ],
)
def test_sentence_end(text, start, at):
    assert prompts.sentence_end(text, start) == at


@pytest.mark.parametrize(
    "answer, normal",
    [("$1,000.00", "1000"), ("40 \\text{ minutes}", "40"), ("12.5\\%", "12.5"), ("-3", "-3"), ("x", "x"), (None, None)],
)
def test_normalize_number(answer, normal):
    assert prompts.normalize_number(answer) == normal


@pytest.mark.parametrize(
    "text, start, at",
    [
        ("**Bob [2]:** 80 + 50 = 130 **Alice [2]:** The total", 13, 27),  # another worker's header
        ("**Bob [2]:** no\n\n**Bob [3]:", 13, 17),  # its own next step
        ("**Bob [2]:** Done. **User:** hi", 13, 19),  # a user note's header
        ("**Bob [2]:** 1. **Define the cost:** 5 dollars.", 13, None),  # bold text is not a header
        ("**Bob [2]:** Bob said 130.", 13, None),  # a name without the header form
        ("**Bob [2]:** **Dave [", 13, 13),  # detected as soon as "**Name [" is written
        ("**Bob [2]:** text", 0, 0),  # the forced header itself counts when the search starts at 0
    ],
)
def test_forged_header(text, start, at):
    assert prompts.forged_header(text, start) == at
