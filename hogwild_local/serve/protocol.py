"""The request side of OpenAI's chat completions API: the body a client sends, checked, and what it asks the engine
to run (the conversation and the :class:`~hogwild_local.engine.RunConfig`), plus the errors in OpenAI's shape.

OpenAI's own fields that the engine can honour are read (``temperature``, ``top_p``, ``seed``, ``max_tokens`` /
``max_completion_tokens``: the final answer's token limit); other fields that clients send as a matter of course
(``n``, ``user``, ``tools`` ...) are ignored. Hogwild!'s extension fields: ``workers``, ``layout``, ``budget``,
``method``, ``answer_mode`` and ``hogwild_events`` (also per-worker text in the stream).
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..engine import METHODS, RunConfig
from ..engine.config import ANSWER_MODES
from ..engine.layout import MAX_WORKERS, USER_LAYOUTS


class ApiError(Exception):
    """A request the server refuses or fails: the HTTP status and OpenAI's error object."""

    def __init__(self, status: int, message: str, *, kind: str = "invalid_request_error", code: str | None = None,
                 param: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.kind, self.code, self.param = status, message, kind, code, param
        self.headers = headers or {}

    def body(self) -> dict:
        """``{"error": {"message", "type", "param", "code"}}``, as OpenAI answers."""
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


class TextPart(BaseModel):
    """One part of a message's content given as a list (only text parts: the models here read no images)."""

    type: Literal["text"]
    text: str


class Message(BaseModel):
    """One message of the conversation ("developer" is OpenAI's newer name for a system message)."""

    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.text for part in self.content)
        return self.content or ""


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")

    include_usage: bool = False


class ChatRequest(BaseModel):
    """The body of ``POST /v1/chat/completions``: the fields read, with their types and ranges."""

    model_config = ConfigDict(extra="ignore")

    model: str
    messages: list[Message] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    seed: int | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    # Hogwild! extensions
    workers: int | None = Field(default=None, ge=1, le=MAX_WORKERS)
    layout: Literal[USER_LAYOUTS] | None = None
    budget: int | None = Field(default=None, ge=1)
    method: Literal[METHODS] | None = None
    answer_mode: Literal[ANSWER_MODES] | None = None
    hogwild_events: bool = False


def parse_request(data: object) -> ChatRequest:
    """The checked request; a wrong type or value is a 422 naming the field."""
    try:
        return ChatRequest.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ApiError(422, f"{where}: {first['msg']}" if where else first["msg"], code="invalid_value",
                       param=where or None) from None


def conversation(messages: list[Message]) -> tuple[list[tuple[str, str]], str]:
    """The earlier messages, as (role, text) pairs for the chat template, and the last user message: the task.
    The workers answer the last message, which must be the user's."""
    *earlier, last = messages
    if last.role != "user" or not last.text().strip():
        raise ApiError(400, "the last message must be a user message with text", param="messages")
    history = [("system" if m.role == "developer" else m.role, m.text()) for m in earlier]
    return history, last.text()


def run_config(request: ChatRequest, base: RunConfig) -> RunConfig:
    """What to run for ``request``: the server's configuration with the request's choices over it."""
    sampling = {"temperature": request.temperature, "top_p": request.top_p, "seed": request.seed}
    choices = {"workers": request.workers, "layout": request.layout, "budget": request.budget,
               "method": request.method, "answer": request.answer_mode,
               "finisher_tokens": request.max_completion_tokens or request.max_tokens}
    config = dataclasses.replace(base, **{k: v for k, v in choices.items() if v is not None},
                                 sampling=dataclasses.replace(base.sampling,
                                                              **{k: v for k, v in sampling.items() if v is not None}))
    if config.method == "single":
        config = dataclasses.replace(config, workers=1)
    return config
