"""The final answer in each answer mode (``config.AnswerMode``): what a worker's step or the finisher's text
holds as the answer, what the finisher may not write, when it is done, and which part of its text is certain
while it writes.

The finisher's prompt (``prompts.finisher``) ends where the answer begins: inside ``\\boxed{``, before the
first word of prose, or after the opening backticks of a code fence. Prose and code come after a workspace full
of step headers, and small models go on with it ("**Bob [3]:** ..."): there the finisher may not begin a step
header (its next likeliest token is taken instead). A box ends when it closes, code where its fence closes,
prose at the end of text or the token limit. The certain part is what no later token changes; streamed, the
pieces add up to the beginning of the final answer.
"""

from __future__ import annotations

from . import prompts
from .config import AnswerMode

FENCE = "```"


def worker_answer(mode: str, step_text: str) -> str | None:
    """The answer a worker's step gives, which ends the run: a box, in boxed mode; in the other modes the
    finisher always writes the answer, from the whole workspace."""
    return prompts.extract_boxed(step_text) if AnswerMode(mode) is AnswerMode.BOXED else None


class FinalAnswer:
    """The finisher's text in one answer mode, added a token's text at a time."""

    def __init__(self, mode: str) -> None:
        self.mode = AnswerMode(mode)
        self.text = ""  # all the finisher wrote
        self._sent = 0  # the length of the certain text already given out by add()

    def refuses(self, text: str) -> bool:
        """Whether the finisher may not write ``text`` next: in prose and code, a step header's beginning
        ("**Bob" or more; a bare "**" may still open bold text)."""
        if self.mode is AnswerMode.BOXED:
            return False
        after = self.text + text
        start = prompts.partial_header(after)
        return prompts.forged_header(after, 0) is not None or (start is not None and len(after) - start > 2)

    def add(self, text: str) -> str:
        """Take the next token's text; return what became certain with it ("" if nothing did)."""
        self.text += text
        piece = self._certain()[self._sent:]
        self._sent += len(piece)
        return piece

    @property
    def complete(self) -> bool:
        """The answer is whole, so the finisher stops: a box or a code fence closed."""
        if self.mode is AnswerMode.BOXED:
            return prompts.extract_boxed("\\boxed{" + self.text) is not None
        return self.mode is AnswerMode.CODE and self._closing_fence() is not None

    def answer(self) -> str | None:
        """The final answer from what was written (None if there is none: an empty or placeholder box,
        no prose, no code)."""
        text = self.text
        if self.mode is AnswerMode.BOXED:
            return prompts.extract_boxed("\\boxed{" + text + ("}" if "}" not in text else ""))
        if not text.strip():
            return None
        if self.mode is AnswerMode.TEXT:
            return text.strip()
        close = self._closing_fence()
        if close is not None:
            return FENCE + text[:close] + FENCE
        body = text.rstrip("`")  # the token limit came inside the fence: close it
        return FENCE + body + ("" if body.endswith("\n") else "\n") + FENCE

    def _certain(self) -> str:
        """The beginning of the final answer that the text so far fixes (trailing blanks and backticks may
        still change)."""
        text = self.text
        if self.mode is AnswerMode.BOXED or not text.strip():
            return ""  # a box's content counts only once it closes
        if self.mode is AnswerMode.TEXT:
            return text.strip()
        close = self._closing_fence()
        return FENCE + (text[:close] if close is not None else text.rstrip("`"))

    def _closing_fence(self) -> int | None:
        """Where the fence closes in the finisher's text (not on its opening line, which names the language)."""
        line_end = self.text.find("\n")
        close = self.text.find(FENCE, line_end) if line_end >= 0 else -1
        return None if close < 0 else close
