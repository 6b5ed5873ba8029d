"""The HTTP application (Starlette): OpenAI's ``POST /v1/chat/completions`` and ``GET /v1/models``, and
``GET /health``, over one :class:`~.runner.Runner`.

Every error is OpenAI's JSON error object with a fitting status, never a traceback: 400 malformed JSON, a
conversation that does not end with a user message, or a prompt longer than the context
(``context_length_exceeded``); 401 a missing or wrong API key; 404 an unknown model or path; 413 a body over
the size limit; 422 a field of the wrong type or out of range; 503 a full queue (with ``Retry-After``); 500 a
failure while generating. Streams are Server-Sent Events that end with ``data: [DONE]``.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import sys
import time
import traceback
from collections.abc import AsyncIterator
from dataclasses import dataclass

from sse_starlette.sse import EventSourceResponse
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..engine import EngineError, RunConfig
from ..engine.config import PromptTooLong
from ..engine.events import Event
from ..errors import HogwildError
from .protocol import ApiError, ChatRequest, conversation, parse_request, run_config
from .reply import Reply
from .runner import Finished, Job, QueueFull, Runner

RETRY_AFTER_S = 10  # what a refused client is told to wait: about one short run on a small model
POLL_S = 0.25  # how often a request that has no response yet looks whether its client is still there


@dataclass(frozen=True)
class Settings:
    """What the server offers and accepts."""

    model_id: str  # the loaded model's name, as /v1/models lists it
    model_names: frozenset[str]  # every name a request may give for it (id, manifest aliases, file name)
    manifest: tuple[str, ...]  # the manifest's models, listed too (not loaded: requests for them are refused)
    config: RunConfig  # what a request runs unless it chooses otherwise
    api_key: str | None = None
    max_body_bytes: int = 1 << 20


def create_app(runner: Runner, settings: Settings) -> Starlette:
    """The application serving ``runner``'s model."""

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "model": settings.model_id, "waiting": runner.waiting})

    async def models(request: Request) -> Response:
        _authorize(request, settings)
        names = [settings.model_id, *(m for m in settings.manifest if m != settings.model_id)]
        return JSONResponse({"object": "list", "data": [
            {"id": name, "object": "model", "created": 0, "owned_by": "hogwild-local",
             "loaded": name == settings.model_id} for name in names]})

    async def chat(request: Request) -> Response:
        _authorize(request, settings)
        chat_request = parse_request(_json(await _body(request, settings.max_body_bytes)))
        _check_model(chat_request, settings)
        history, problem = conversation(chat_request.messages)
        try:
            job = runner.submit(problem, history, run_config(chat_request, settings.config))
        except QueueFull:
            raise ApiError(503, f"busy: a generation runs and {runner.queue_size} wait; retry later",
                           kind="server_error", code="server_busy",
                           headers={"Retry-After": str(RETRY_AFTER_S)}) from None
        reply = Reply(settings.model_id, lambda text: len(runner.model.tokenize(text)), chat_request.hogwild_events)
        try:
            first = await _next(job, request)
            if isinstance(first, Finished) and first.error is not None:
                raise _failure(first.error)
        except BaseException:
            job.cancel()
            raise
        if chat_request.stream:
            return EventSourceResponse(_stream(job, reply, first), ping=15)
        try:
            message = first
            while not isinstance(message, Finished):
                reply.deltas(message)
                message = await _next(job, request)
        finally:
            job.cancel()  # a client gone mid-run: abandon it (nothing happens to a job that has ended)
        if message.error is not None:
            raise _failure(message.error)
        return JSONResponse(reply.completion())

    routes = [Route("/health", health), Route("/v1/models", models),
              Route("/v1/chat/completions", chat, methods=["POST"])]
    handlers = {ApiError: _api_error, HTTPException: _http_error, Exception: _internal_error}
    return Starlette(routes=routes, exception_handlers=handlers)


# the request --------------------------------------------------------------------------------------------

def _authorize(request: Request, settings: Settings) -> None:
    if settings.api_key is None:
        return
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(key.strip().encode(), settings.api_key.encode()):
        raise ApiError(401, "a valid API key is needed (Authorization: Bearer KEY)", code="invalid_api_key")


async def _body(request: Request, limit: int) -> bytes:
    """The body, refused (413) as soon as it is known to be over ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    too_large = ApiError(413, f"the request body is larger than {limit} bytes", code="request_too_large")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_large
    return bytes(body)


def _json(body: bytes) -> object:
    try:
        return json.loads(body)
    except ValueError as err:  # also text that is not UTF-8
        raise ApiError(400, f"the body is not valid JSON: {err}", code="invalid_json") from None


def _check_model(chat_request: ChatRequest, settings: Settings) -> None:
    if chat_request.model in settings.model_names:
        return
    why = "is not loaded" if chat_request.model in settings.manifest else "does not exist"
    raise ApiError(404, f"the model {chat_request.model!r} {why}; this server runs {settings.model_id!r}",
                   code="model_not_found", param="model")


async def _next(job: Job, request: Request) -> Event | Finished:
    """The job's next message, while its client is there; a client gone cancels the job (and this request)."""
    while True:
        try:
            return await asyncio.wait_for(job.messages.get(), POLL_S)
        except asyncio.TimeoutError:
            if await request.is_disconnected():
                job.cancel()
                raise ApiError(499, "the client closed the request", code="client_closed") from None


async def _stream(job: Job, reply: Reply, first: Event) -> AsyncIterator[str]:
    """The reply as SSE data lines. A client that goes cancels this generator (sse-starlette), and the job."""
    try:
        yield json.dumps(reply.chunk({"role": "assistant", "content": ""}))
        message: Event | Finished = first
        while not isinstance(message, Finished):
            for delta in reply.deltas(message):
                yield json.dumps(reply.chunk(delta))
            message = await job.messages.get()
        if message.error is not None:  # the status has been sent: the error comes as the stream's last event
            yield json.dumps(_failure(message.error).body())
        else:
            yield json.dumps(reply.chunk({}, finish_reason="stop"))
        yield "[DONE]"
    finally:
        job.cancel()


def _failure(error: Exception) -> ApiError:
    """The API error for what ended a generation."""
    if isinstance(error, PromptTooLong):
        return ApiError(400, str(error), code="context_length_exceeded", param="messages")
    if isinstance(error, EngineError):
        return ApiError(400, str(error))
    if isinstance(error, HogwildError):
        return ApiError(500, str(error), kind="server_error")
    return ApiError(500, "internal error while generating (the server's log has the details)", kind="server_error")


# the errors, in OpenAI's shape ------------------------------------------------------------------------------

async def _api_error(request: Request, err: Exception) -> Response:
    assert isinstance(err, ApiError)
    return JSONResponse(err.body(), status_code=err.status, headers=err.headers)


async def _http_error(request: Request, err: Exception) -> Response:
    assert isinstance(err, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(err.status_code)
    return await _api_error(request, ApiError(err.status_code, f"{request.method} {request.url.path}: {err.detail}",
                                              code=code, headers=dict(err.headers or {})))


async def _internal_error(request: Request, err: Exception) -> Response:
    print(f"{time.strftime('%H:%M:%S')} internal error on {request.url.path}:", file=sys.stderr)
    traceback.print_exception(err)
    return JSONResponse(ApiError(500, "internal error (the server's log has the details)",
                                 kind="server_error").body(), status_code=500)
