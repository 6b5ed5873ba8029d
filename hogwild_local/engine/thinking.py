"""Thinking blocks of reasoning models: whether a model reasons, and what its prompt ends with.

Reasoning models write their reasoning inside ``<think> ... </think>`` and the answer after it. The
Hogwild! workers' steps belong inside that block, so the shared prompt must end with an open one where
the model expects it. llama.cpp's C renderer (``llama_chat_apply_template``, behind
``Model.apply_chat_template``) knows template families only by substrings and writes every family's
plain assistant header: the QwQ and DeepSeek-R1 distill templates, which open ``<think>\\n`` there, and
Qwen3's, which writes an empty block for ``enable_thinking=false``, all lose that part. So the model's
own Jinja template is rendered here (sandboxed) to learn what it writes after the assistant header, and
:meth:`Thinking.tail` gives the text to add after llama.cpp's prompt for each :class:`ThinkMode`.

What the prompt ends with, after the assistant header (the template's own text where it has one):

    model's template                            auto / on          off
    opens a block (QwQ, DeepSeek-R1 distills)   <think>\\n          <think>\\n\\n</think>\\n\\n
    switch (Qwen3's enable_thinking)            <think>\\n          its enable_thinking=false block (the same)
    mentions <think>, or the vocabulary has it  <think>\\n          <think>\\n\\n</think>\\n\\n
    an instruct model (SmolLM2, Qwen2.5)        nothing / <think>\\n  nothing
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

import jinja2
import jinja2.sandbox

if TYPE_CHECKING:
    from ..native.model import Model

OPEN, CLOSE = "<think>", "</think>"
OPENING = OPEN + "\n"  # how a block opens when the template does not say (QwQ's and R1's own text)
EMPTY_BLOCK = f"{OPEN}\n\n{CLOSE}\n\n"  # thinking skipped, as Qwen3's template writes it for enable_thinking=false
CLOSING = f"\n{CLOSE}\n\n"  # closes a block already open, to the same shape as the empty block


class ThinkMode(str, Enum):
    """The user's choice (``--think``): follow the model, or force a thinking block on or off."""

    AUTO = "auto"  # open a block for reasoning models, change nothing for the others
    ON = "on"  # open a block, whatever the model
    OFF = "off"  # reasoning models get an empty, closed block (they answer at once); others nothing


class Sign(str, Enum):
    """Why a model counts as a reasoning model (the reasons are data: :data:`SIGN_TEXT` says each one)."""

    OPENS = "opens"
    SWITCH = "switch"
    MENTIONS = "mentions"
    TOKEN = "token"


SIGN_TEXT = {
    Sign.OPENS: "its chat template opens a thinking block after the assistant header",
    Sign.SWITCH: "its chat template writes an empty thinking block for enable_thinking=false",
    Sign.MENTIONS: f"its chat template handles {OPEN} blocks",
    Sign.TOKEN: f"its vocabulary has a {OPEN} token",
}


@dataclass(frozen=True)
class Thinking:
    """What a model's chat template and vocabulary say about thinking, and so how its prompt ends.

    ``opening`` is the text that opens a block (the template's own where it writes one) and ``skipped`` an
    empty, closed block (the template's own where it can switch thinking off).
    """

    signs: tuple[Sign, ...] = ()
    opening: str = OPENING
    skipped: str = EMPTY_BLOCK

    @property
    def reasoning(self) -> bool:
        """Is this a reasoning model (any sign)?"""
        return bool(self.signs)

    def wants(self, mode: ThinkMode | str) -> bool:
        """Do the workers think inside a block in this mode?"""
        mode = ThinkMode(mode)
        return mode is ThinkMode.ON or (mode is ThinkMode.AUTO and self.reasoning)

    def tail(self, prompt: str, mode: ThinkMode | str) -> str:
        """The text to add after ``prompt`` (rendered up to the assistant header) for ``mode``.

        A prompt that already ends inside an open block gets nothing when thinking is wanted, and the block
        closed when it is not. Otherwise a reasoning model that is to think gets the block opened; one that
        is not, an empty block (a model trained to think first would otherwise begin with ``<think>``
        itself); an instruct model gets nothing unless ``on`` asks for a block.
        """
        if ends_open(prompt):
            return "" if self.wants(mode) else CLOSING
        if self.wants(mode):
            return self.opening
        return self.skipped if self.reasoning else ""

    def describe(self) -> str:
        """One line for people: why this is a reasoning model, or that it is none."""
        if not self.reasoning:
            return "not a reasoning model"
        return "a reasoning model: " + "; ".join(SIGN_TEXT[sign] for sign in self.signs)


def ends_open(prompt: str) -> bool:
    """Does ``prompt`` end right inside a thinking block just opened (only whitespace after ``<think>``)?

    Only the end counts: the user's problem may mention the tags.
    """
    return prompt.rstrip().endswith(OPEN)


def is_open(text: str, *, opened: bool) -> bool:
    """Does ``text`` end inside a thinking block? ``opened``: whether one was open where ``text`` begins.

    The last tag decides: a worker that wrote ``</think>`` has closed the block for everyone after it.
    """
    return ends_inside([text.encode()], opened=opened)


def ends_inside(pieces_from_end: Iterable[bytes], *, opened: bool) -> bool:
    """:func:`is_open` for a text given as its bytes in pieces, from the last piece back to the first.

    Nothing is joined: the search stops at the last tag, holding one piece and a tag's length at a time
    (the finisher reads a whole run's tokens this way).
    """
    tags = OPEN.encode(), CLOSE.encode()
    keep = max(map(len, tags)) - 1  # a tag that starts in a piece may end this far into the next one
    after = b""
    for piece in pieces_from_end:
        window = piece + after[:keep]
        last_open, last_close = window.rfind(tags[0]), window.rfind(tags[1])
        if last_open != last_close:  # a tag in this piece; any later one would have been seen already
            return last_open > last_close
        after = window
    return opened


def block_state(prompt: str) -> str:
    """How a whole prompt ends: "open" (inside a thinking block), "closed" (after one) or "none"."""
    if ends_open(prompt):
        return "open"
    return "closed" if prompt.rstrip().endswith(CLOSE) else "none"


def detect(template: str | None, *, think_token: bool = False) -> Thinking:
    """What ``template`` (a GGUF's ``tokenizer.chat_template``, Jinja) and the vocabulary say about thinking.

    The template is rendered for one user message with the assistant turn opened, once with
    ``enable_thinking`` true and once false. Its thinking text is what its generation prompt writes from
    the first ``<think>`` on: an open block there means the template opens one (QwQ, R1 distills); a closed
    block that only ``enable_thinking=false`` writes means a switch (Qwen3). A template that cannot be
    rendered here tells nothing by rendering; its text and the vocabulary still count.
    """
    signs: list[Sign] = []
    opening, skipped = OPENING, EMPTY_BLOCK
    on, off = (_thinking_text(template, thinking) for thinking in (True, False)) if template else (None, None)
    if on is not None and is_open(on, opened=False):
        signs.append(Sign.OPENS)
        opening = on
    if off is not None and off != on and OPEN in off and not is_open(off, opened=False):
        signs.append(Sign.SWITCH)
        skipped = off
    if template and (OPEN in template or CLOSE in template):
        signs.append(Sign.MENTIONS)
    if think_token:
        signs.append(Sign.TOKEN)
    return Thinking(tuple(signs), opening, skipped)


def for_model(model: Model) -> Thinking:
    """:func:`detect` for a loaded model: its template, and whether its vocabulary holds ``<think>`` as one token."""
    return detect(model.info.chat_template, think_token=len(model.tokenize(OPEN)) == 1)


_PROBE = "PROBE"


def _thinking_text(template: str, enable_thinking: bool) -> str | None:
    """What the template writes after the user's message from its first ``<think>`` on, with the assistant turn
    opened ("" if no tag; None if the template does not render here)."""
    env = jinja2.sandbox.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                                       extensions=["jinja2.ext.loopcontrols"])
    env.globals.update(raise_exception=_raise, strftime_now=lambda fmt: datetime.datetime.now().strftime(fmt))
    try:
        rendered = env.from_string(template).render(
            messages=[{"role": "user", "content": _PROBE}], add_generation_prompt=True, bos_token="", eos_token="",
            enable_thinking=enable_thinking)
    except Exception:  # noqa: BLE001 - a template is foreign code: any failure only means "cannot tell"
        return None
    generation = rendered.rsplit(_PROBE, 1)[-1]  # the end of the user's turn and the assistant header on
    start = generation.find(OPEN)
    return generation[start:] if start >= 0 else ""


def _raise(message: str) -> None:
    raise jinja2.TemplateError(message)
