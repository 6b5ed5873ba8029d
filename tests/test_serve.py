"""`hogwild serve` as a client sees it: a real server in a subprocess on a free loopback port, SmolLM2, and the
official ``openai`` package (raw ``httpx`` where a client would not send such a request)."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from hogwild_local.models import resolve_model

HAIKU = [{"role": "user", "content": "Write a haiku about caches"}]
SMALL = {"max_tokens": 16}  # the finisher's limit: runs of a few seconds on two cores


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def server(*args: str) -> Iterator[str]:
    """A `hogwild serve` on SmolLM2 with a budget of 12 passes; yields its base URL and stops it afterwards."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "hogwild_local", "serve", "-m",
                             str(resolve_model("smollm2-135m", progress=False)), "-b", "12", "--threads", "2",
                             "--ctx", "2048", "--port", str(port), *args], stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, proc.stderr.read()
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            assert time.monotonic() < deadline, "the server did not come up"
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture(scope="module")
def transcripts(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("served")


@pytest.fixture(scope="module")
def url(transcripts) -> Iterator[str]:
    with server("--queue-size", "1", "--max-body", "65536", "--transcripts", str(transcripts)) as base:
        yield base


@pytest.fixture
def client(url) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=120)


def stream(client: openai.OpenAI, **kwargs) -> tuple[list[str], str, str, list[dict], object]:
    """A streamed chat: the order of the parts (reasoning, content), the reasoning, the content, the per-worker
    events and the usage of the last chunk."""
    order, reasoning, content, workers, usage = [], "", "", [], None
    for chunk in client.chat.completions.create(model="smollm2-135m", stream=True, **kwargs):
        delta = chunk.choices[0].delta
        extra = delta.model_extra or {}
        for part, text in (("reasoning", extra.get("reasoning_content")), ("content", delta.content)):
            if text:
                order += [part] if not order or order[-1] != part else []
        reasoning += extra.get("reasoning_content") or ""
        content += delta.content or ""
        workers += [extra["hogwild"]] if "hogwild" in extra else []
        usage = chunk.usage or usage
    return order, reasoning, content, workers, usage


def test_health_and_models(url, client):
    assert httpx.get(f"{url}/health").json()["status"] == "ok"
    models = {m.id: m.model_extra["loaded"] for m in client.models.list()}
    assert models["smollm2-135m-instruct"] is True and "qwen2.5-coder-1.5b-instruct" in models


def test_a_two_worker_answer_streams_reasoning_then_content(client):
    order, reasoning, content, workers, usage = stream(client, messages=HAIKU, **SMALL,
                                                       extra_body={"workers": 2, "hogwild_events": True})
    assert order == ["reasoning", "content"]
    assert "**Alice [1]:**" in reasoning and "**Bob [1]:**" in reasoning and content.strip()
    assert {w["worker"] for w in workers} == {"Alice", "Bob"}
    assert usage.prompt_tokens > 0 and usage.model_extra["passes"] == 12
    assert usage.completion_tokens_details.reasoning_tokens <= usage.completion_tokens
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_streamed_and_whole_replies_agree(client):
    greedy = {"messages": HAIKU, "temperature": 0, **SMALL}
    _, reasoning, content, _, usage = stream(client, **greedy)
    whole = client.chat.completions.create(model="smollm2-135m", **greedy)
    message = whole.choices[0].message
    assert (message.content, message.model_extra["reasoning_content"]) == (content, reasoning)
    assert whole.usage.completion_tokens == usage.completion_tokens and whole.choices[0].finish_reason == "stop"


def test_extension_fields_reach_the_engine(client):
    whole = client.chat.completions.create(model="smollm2-135m", messages=HAIKU, **SMALL,
                                           extra_body={"workers": 3, "budget": 4, "method": "hogwild",
                                                       "layout": "contiguous", "answer_mode": "boxed"})
    assert whole.usage.model_extra["passes"] <= 4 and "**Carol [1]:**" in whole.choices[0].message.reasoning_content


def test_system_message_and_earlier_turns_go_into_the_prompt(client, transcripts):
    alone = client.chat.completions.create(model="smollm2-135m", messages=HAIKU, **SMALL, extra_body={"budget": 1})
    history = [{"role": "system", "content": "You answer in French."},
               {"role": "user", "content": "Name a cache."}, {"role": "assistant", "content": "The L1 cache."}]
    turns = client.chat.completions.create(model="smollm2-135m", messages=history + HAIKU, **SMALL,
                                           extra_body={"budget": 1})
    assert turns.usage.prompt_tokens > alone.usage.prompt_tokens + 10
    headers = [json.loads(p.read_text().splitlines()[0]) for p in transcripts.glob("*.jsonl")]
    assert any(h["history"] == [[m["role"], m["content"]] for m in history] and h["problem"] == HAIKU[0]["content"]
               for h in headers)


def error_of(response: httpx.Response) -> dict:
    """OpenAI's error object, all four fields present."""
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    return error


@pytest.mark.parametrize("body, status, code", [
    (b'{"model": "smollm2-135m", "messages": [', 400, "invalid_json"),
    (b'\xff\xfe not json', 400, "invalid_json"),
    (json.dumps({"model": "smollm2-135m", "messages": "hello"}).encode(), 422, "invalid_value"),
    (json.dumps({"model": "smollm2-135m", "messages": HAIKU, "workers": "many"}).encode(), 422, "invalid_value"),
    (json.dumps({"model": "smollm2-135m", "messages": HAIKU, "layout": "spiral"}).encode(), 422, "invalid_value"),
    (json.dumps({"model": "smollm2-135m", "messages": HAIKU, "max_tokens": 0}).encode(), 422, "invalid_value"),
    (json.dumps({"model": "smollm2-135m", "messages": [{"role": "assistant", "content": "hi"}]}).encode(), 400,
     None),
    (json.dumps({"model": "gpt-4o", "messages": HAIKU}).encode(), 404, "model_not_found"),
    (json.dumps({"model": "qwen2.5-coder-1.5b-instruct", "messages": HAIKU}).encode(), 404, "model_not_found"),
    (json.dumps({"model": "smollm2-135m", "messages": [{"role": "user", "content": "word " * 3000}]}).encode(), 400,
     "context_length_exceeded"),
    (json.dumps({"model": "smollm2-135m", "messages": [{"role": "user", "content": "x" * 70000}]}).encode(), 413,
     "request_too_large"),
])
def test_errors_are_openai_json_with_the_right_status(url, body, status, code):
    response = httpx.post(f"{url}/v1/chat/completions", content=body, timeout=60,
                          headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    assert error_of(response)["code"] == code


def test_wrong_paths_and_methods_are_openai_json(url):
    assert error_of(missing := httpx.get(f"{url}/v1/nothing"))["code"] == "not_found" and missing.status_code == 404
    assert httpx.get(f"{url}/v1/chat/completions").status_code == 405


def test_the_openai_client_sees_typed_errors(client):
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-4o", messages=HAIKU)
    with pytest.raises(openai.UnprocessableEntityError):
        client.chat.completions.create(model="smollm2-135m", messages=HAIKU, extra_body={"budget": -1})
    with pytest.raises(openai.BadRequestError, match="does not fit the context"):
        client.chat.completions.create(model="smollm2-135m", messages=[{"role": "user", "content": "word " * 3000}])


def test_a_cancelled_stream_ends_its_run_and_the_next_request_works(client):
    chunks = client.chat.completions.create(model="smollm2-135m", messages=HAIKU, stream=True,
                                            extra_body={"budget": 5000, "hogwild_events": True})
    for n, _ in enumerate(chunks):
        if n == 20:
            break
    chunks.close()  # 5000 passes would take minutes: the next request runs only once this one is abandoned
    started = time.monotonic()
    after = client.chat.completions.create(model="smollm2-135m", messages=HAIKU, **SMALL, extra_body={"budget": 2})
    assert after.choices[0].message.content is not None and time.monotonic() - started < 60


def test_requests_queue_and_a_full_queue_is_503(client):
    long = client.chat.completions.create(model="smollm2-135m", messages=HAIKU, stream=True,
                                          extra_body={"budget": 5000})
    next(iter(long))  # it runs now
    waiting: list = []
    queued = threading.Thread(target=lambda: waiting.append(
        client.chat.completions.create(model="smollm2-135m", messages=HAIKU, **SMALL, extra_body={"budget": 2})))
    queued.start()
    time.sleep(1.5)  # the second request is in the queue (of one place)
    with pytest.raises(openai.APIStatusError) as refused:
        client.chat.completions.create(model="smollm2-135m", messages=HAIKU, **SMALL, extra_body={"budget": 2})
    assert refused.value.status_code == 503 and refused.value.response.headers["retry-after"].isdigit()
    assert refused.value.body["code"] == "server_busy"
    long.close()
    queued.join(timeout=120)
    assert waiting and waiting[0].choices[0].message.content is not None


def test_two_concurrent_requests_both_answer(client):
    answers: list = []
    ask = {"model": "smollm2-135m", "messages": HAIKU, **SMALL, "extra_body": {"budget": 3}}
    threads = [threading.Thread(target=lambda: answers.append(client.chat.completions.create(**ask)))
               for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(answers) == 2 and all(a.usage.model_extra["passes"] == 3 for a in answers)


def test_the_api_key():
    with server("--api-key", "sesame") as base:
        assert httpx.get(f"{base}/health").status_code == 200  # open: for monitors
        for key in ("wrong", None):
            headers = {"authorization": f"Bearer {key}"} if key else {}
            response = httpx.get(f"{base}/v1/models", headers=headers)
            assert response.status_code == 401 and error_of(response)["code"] == "invalid_api_key"
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=f"{base}/v1", api_key="wrong", max_retries=0).models.list()
        keyed = openai.OpenAI(base_url=f"{base}/v1", api_key="sesame", max_retries=0, timeout=120)
        reply = keyed.chat.completions.create(model="smollm2-135m", messages=HAIKU, **SMALL, extra_body={"budget": 2})
        assert reply.choices[0].message.content is not None
