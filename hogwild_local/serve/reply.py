"""The response side: one request's engine events as OpenAI chat completion deltas, streamed as chunks or
gathered into one completion (the same deltas either way).

- The workers' shared work is ``reasoning_content`` (as llama.cpp's server, vLLM and LM Studio send a model's
  reasoning): each step as it joins the shared history, its ``**Name [k]:**`` header first, and when the workers
  stop, the steps they had not finished (the finisher reads those too).
- The final answer is ``content``, streamed as the finisher writes it (a boxed answer comes whole).
- With ``hogwild_events``, every piece of worker text also comes as ``hogwild: {worker, text}`` (``cut: true``
  where the engine cut the worker's step back to ``text``), for clients that show one pane per worker.
- The last chunk has ``finish_reason`` and ``usage``: prompt tokens, completion tokens (the workers' and the
  finisher's), of them the workers' as ``completion_tokens_details.reasoning_tokens``, and ``passes``.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable

from ..engine.events import Event


class Reply:
    """The answer to one chat request, built event by event."""

    def __init__(self, model_id: str, count_tokens: Callable[[str], int], worker_events: bool) -> None:
        self.id = f"chatcmpl-{secrets.token_hex(12)}"
        self.created = int(time.time())
        self.model_id, self.count_tokens, self.worker_events = model_id, count_tokens, worker_events
        self.reasoning = ""
        self.content = ""
        self.usage: dict | None = None
        self.hogwild: dict = {}  # the run's end, said in the last chunk and the completion
        self._steps: dict[str, str] = {}  # each worker's step in flight
        self._prompt_tokens = 0

    def deltas(self, event: Event) -> list[dict]:
        """The deltas that ``event`` adds to the reply (none for most events)."""
        out: list[dict] = []
        if event.type == "start":
            self._prompt_tokens = event.prompt_tokens
        elif event.type in ("token", "cut"):
            step = self._steps.get(event.worker, "")
            self._steps[event.worker] = step + event.text if event.type == "token" else event.text
            if self.worker_events:
                out.append({"hogwild": {"worker": event.worker, "text": event.text}
                            | ({"cut": True} if event.type == "cut" else {})})
        elif event.type == "step":
            self._steps.pop(event.worker, None)
            out.append(self._reasoning(event.text))
        elif event.type == "answer_text":
            out += [self._unfinished_steps(), self._content(event.text)]
        elif event.type == "answer":
            out.append(self._unfinished_steps())
            answer = event.answer or ""
            rest = answer[len(self.content):] if answer.startswith(self.content) else ""
            if rest:
                out.append(self._content(rest))
            finisher = self.count_tokens(event.finisher_text) if event.finisher_text else 0
            completion = event.tokens_generated + finisher
            self.usage = {"prompt_tokens": self._prompt_tokens, "completion_tokens": completion,
                          "total_tokens": self._prompt_tokens + completion,
                          "completion_tokens_details": {"reasoning_tokens": event.tokens_generated},
                          "passes": event.passes}
            self.hogwild = {"reason": event.reason, "passes": event.passes,
                            "elapsed_s": round(event.elapsed_s, 3)}
        return [d for d in out if d]

    def _unfinished_steps(self) -> dict:
        """The workers' steps in flight when they stopped (once: the finisher's text comes after them)."""
        unfinished = "".join(step.rstrip() + "\n\n" for step in self._steps.values() if step.strip())
        self._steps.clear()
        return self._reasoning(unfinished)

    def _reasoning(self, text: str) -> dict:
        self.reasoning += text
        return {"reasoning_content": text} if text else {}

    def _content(self, text: str) -> dict:
        self.content += text
        return {"content": text} if text else {}

    # the two shapes of a reply ----------------------------------------------------------------------------

    def chunk(self, delta: dict, finish_reason: str | None = None) -> dict:
        """One ``chat.completion.chunk`` carrying ``delta``; the last one (``finish_reason`` set) also the usage."""
        chunk = {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model_id,
                 "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]}
        if finish_reason is not None:
            chunk |= {"usage": self.usage, "hogwild": self.hogwild}
        return chunk

    def completion(self) -> dict:
        """The whole ``chat.completion``, once every event has been through :meth:`deltas`."""
        message = {"role": "assistant", "content": self.content, "reasoning_content": self.reasoning}
        return {"id": self.id, "object": "chat.completion", "created": self.created, "model": self.model_id,
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                "usage": self.usage, "hogwild": self.hogwild}
