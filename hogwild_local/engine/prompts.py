"""The project's prompt text, the step-boundary rule, and answer extraction.

All text here is our own. Facts that carry over from the paper: workers are named, write at the same
time into one shared workspace, see each other's unfinished steps under section headers, each step opens
with a forced "**Name [k]:** " header, the first worker breaks ties, and a periodic forced question asks
a worker whether it is duplicating someone else's work.
"""

from __future__ import annotations

import re

from .config import AnswerMode
from .layout import WORKER_NAMES
from .thinking import CLOSE

# what the engine's own headers are made of (the section headers below, the step headers' "**"): with
# RunConfig.bar_headers the workers cannot draw a token holding one
HEADER_MARKS = ("#", "**")
# section headers shown inside every worker's view (shared cells, written once)
OTHERS_HEADER = "\n\n### Shared workspace: the others are writing these steps right now\n"
MARKER = " <...>\n"
OWN_HEADER = "\n\n### Your own step (continue it)\n"

SELF_CHECK = "Quick check: is someone else already doing what I am about to do? (yes/no): "

_TIME_UP = "\n\nTime is up."
_FOUND = "Putting together what we found,"
# what the finisher writes after, per answer mode: the answer itself follows at once
_LEADS = {
    AnswerMode.BOXED: f"{_FOUND} the final answer is \\boxed{{",
    AnswerMode.TEXT: f"{_FOUND} here is the final answer.\n\n",
    AnswerMode.CODE: f"{_FOUND} here is the final code.\n\n```",
}
FINISHER = f"{_TIME_UP} {_LEADS[AnswerMode.BOXED]}"  # the boxed final-answer prompt where no thinking block is open


def finisher(in_thinking: bool, mode: str = AnswerMode.BOXED.value) -> str:
    """The final-answer prompt of the answer ``mode``, written after everything the finisher sees.

    Inside an open thinking block (``in_thinking``) it closes the block before asking: a reasoning model
    gives its answer after ``</think>``, so the answer it starts there is the answer, not one more thought.
    Where no block is open (instruct models, thinking off, or a worker closed it) it is one line on.
    """
    opening = f"\n{CLOSE}\n\n" if in_thinking else " "
    return f"{_TIME_UP}{opening}{_LEADS[AnswerMode(mode)]}"


# per answer mode: how a lone worker is asked to work, and the team rules' last line
_SOLO = {
    AnswerMode.BOXED: "Solve the problem below. Think step by step, separating steps with a blank line, "
                      "and give the final answer as \\boxed{answer}.",
    AnswerMode.TEXT: "Work on the task below. Think step by step, separating steps with a blank line; "
                     "when time is up, the final answer is written for the reader in plain prose from your steps.",
    AnswerMode.CODE: "Work on the task below. Think step by step, separating steps with a blank line; "
                     "when time is up, the final answer is written as one fenced code block from your steps.",
}
_LAST_RULE = {
    AnswerMode.BOXED: "When the team has the answer, write it once as \\boxed{answer}.",
    AnswerMode.TEXT: "Work towards one answer; when time is up, it is written for the reader in plain prose "
                     "from this workspace.",
    AnswerMode.CODE: "Work towards one piece of code; when time is up, it is written as one fenced code block "
                     "from this workspace.",
}


def rules(n_workers: int, mode: str = AnswerMode.BOXED.value) -> str:
    """The collaboration rules for ``n_workers`` workers and the answer ``mode`` (one worker gets plain
    step-by-step instructions)."""
    mode = AnswerMode(mode)
    if n_workers == 1:
        return _SOLO[mode]
    names = list(WORKER_NAMES[:n_workers])
    listed = ", ".join(names[:-1]) + f" and {names[-1]}"
    what = "solving one problem" if mode is AnswerMode.BOXED else "working on one task"
    return (
        f"You are {listed}: {n_workers} assistants {what} together, at the same time, "
        "in one shared workspace.\n"
        "- Everyone writes in short steps separated by a blank line; each step starts with its author's "
        "name, like **Bob [2]:**.\n"
        "- Finished steps of everyone appear in order above. The steps the others are writing at this very "
        "moment appear under the workspace header, cut off with <...>; they keep changing.\n"
        "- Read the others' work before you write. Do not repeat what someone else is already doing: "
        "if you notice duplicated work, switch to a part nobody has covered, or check someone's result.\n"
        f"- Split the work early. If two of you disagree on who does what, {names[0]} decides.\n"
        f"- {_LAST_RULE[mode]}"
    )


def user_message(problem: str, n_workers: int, mode: str = AnswerMode.BOXED.value) -> str:
    """The user turn of the run: rules, then the problem (a task, in the modes that are not boxed)."""
    label = "Problem" if AnswerMode(mode) is AnswerMode.BOXED else "Task"
    return f"{rules(n_workers, mode)}\n\n{label}:\n{problem.strip()}"


STEP_HEADER = re.compile(r"^\*\*\w+ \[\d+\]:\*\*\s*")  # a step's forced opening, "**Bob [2]:** "


def step_body(step_text: str) -> str:
    """A finished step's own words: without its forced header and self-check question, whitespace collapsed.

    Two steps with the same body say the same thing word for word (small models loop like that).
    """
    body = STEP_HEADER.sub("", step_text.strip())
    body = body.removeprefix(SELF_CHECK.strip())
    return " ".join(body.split())


# a step header, or a user note's, as a worker might start to write one itself ("**Bob [", "**User:")
_HEADER_START = re.compile(r"\*\*(?:(?:" + "|".join(WORKER_NAMES) + r")\s*\[|User:)")


def forged_header(step_text: str, start: int) -> int | None:
    """Where, at or after ``start``, the step text begins a step header of its own (None if it does not).

    Only the engine writes step headers; small models imitate them, going on to write another worker's
    step (or their own next one) inside the current step.
    """
    match = _HEADER_START.search(step_text, start)
    return match.start() if match else None


_HEADER_OPENINGS = tuple(f"**{name} [" for name in WORKER_NAMES) + ("**User:",)


def partial_header(text: str) -> int | None:
    """Where ``text`` ends with the beginning of a step header that the next token may complete ("... **Bo"),
    or None: text there is not certain yet to stay."""
    for start in range(max(0, len(text) - max(map(len, _HEADER_OPENINGS))), len(text)):
        if text[start] == "*" and any(opening.startswith(text[start:]) for opening in _HEADER_OPENINGS):
            return start
    return None


# the author line that opens a step or a user note, "**Alice [2]:** " or "**User:** " (what a pane hides)
AUTHOR_HEADER = re.compile(r"^\*\*[^*\n]+\*\*\s*")


def note_text(note: str) -> str:
    """A user's note as it enters the shared history (as a step of "User")."""
    return f"**User:** {note.strip()}\n\n"


def step_header(worker: int, step: int) -> str:
    """The forced opening of a worker's step, e.g. "**Alice [1]:** "."""
    return f"**{WORKER_NAMES[worker]} [{step}]:** "


def opener(worker: int, n_workers: int) -> str:
    """The forced text of a worker's first step, after its header."""
    if n_workers == 1:
        return ""
    if worker == 0:
        return "Let me propose how we split this:"
    return "Hi, I'm here."


# --------------------------------------------------------------------------------------------------
# step boundaries

SENTENCE_ENDS = (".", "?", "!", "。", "？", "！", "…", "؟", "।", "܂")
CLOSERS = ")]}*_\"'`»”’"


def in_open_block(text: str) -> bool:
    """True if ``text`` ends inside an unclosed ``` code fence or $$ math block."""
    return text.count("```") % 2 == 1 or text.count("$$") % 2 == 1


def ends_step(step_text: str, token_text: str) -> bool:
    """Does the token just sampled end the worker's step?

    Rule: the token completes a blank line ("\\n\\n"; some tokenizers write it as two "\\n" tokens), the step
    text before that blank line ends a sentence (closing brackets, quotes or emphasis after the full stop are
    allowed), and we are not inside an open code fence or $$ block.
    """
    text = step_text + token_text
    if "\n\n" not in text[max(0, len(step_text) - 1):]:  # the blank line must be completed by this token
        return False
    before = text.rsplit("\n\n", 1)[0].rstrip()
    if not before or in_open_block(before):
        return False
    return before.rstrip(CLOSERS).endswith(SENTENCE_ENDS)


# a line end, or a sentence end (closers allowed) that whitespace follows: "3.5" and "e.g.," do not end here
_SENTENCE_END = re.compile("\n|[" + re.escape("".join(SENTENCE_ENDS)) + "][" + re.escape(CLOSERS) + "]*(?=\\s)")


def sentence_end(step_text: str, start: int) -> int | None:
    """Where, at or after ``start``, the first sentence or line of the step text ends (None if none does yet).

    An over-long step ends there even without a blank line (the engine's step limit). A sentence end is only
    known once the whitespace after it is written, so the end found may lie just before ``start``'s token.
    """
    for match in _SENTENCE_END.finditer(step_text, max(0, start - len(CLOSERS) - 1)):
        if match.end() >= start:
            return match.end()
    return None


# --------------------------------------------------------------------------------------------------
# answers

_BOXED = re.compile(r"\\boxed\{")
# what a box holds when a model copied the rules' \boxed{answer} (small models do) or a form like \boxed{...}
# instead of answering: compared in lower case, \text{} removed
PLACEHOLDERS = frozenset({"", "...", "…", "answer", "the answer", "your answer", "final answer", "the final answer"})


def is_placeholder(content: str) -> bool:
    """Is this box content a placeholder copied from the instructions, not an answer?"""
    return re.sub(r"\\text\{([^{}]*)\}", r"\1", content).strip().lower() in PLACEHOLDERS


def extract_boxed(text: str) -> str | None:
    """The content of the last complete \\boxed{...} in ``text`` that holds an answer (nested braces allowed),
    or None. Empty boxes and placeholders such as \\boxed{answer} are not answers."""
    answer = None
    for match in _BOXED.finditer(text):
        depth, start = 1, match.end()
        for i in range(start, len(text)):
            if text[i] == "{":
                depth += 1
            elif text[i] == "}":
                depth -= 1
                if depth == 0:
                    content = text[start:i].strip()
                    if not is_placeholder(content):
                        answer = content
                    break
    return answer


def normalize_number(answer: str | None) -> str | None:
    """A canonical form for comparing numeric answers ("$1,000.00" -> "1000"); other text stripped."""
    if answer is None:
        return None
    text = answer.replace(",", "").replace("$", "").replace("\\%", "").replace("%", "").strip()
    text = re.sub(r"\\text\{[^}]*\}", "", text).strip()
    match = re.search(r"-?\d+(?:\.\d+)?", text)
    if not match:
        return text
    value = float(match.group())
    return str(int(value)) if value == int(value) else str(value)
