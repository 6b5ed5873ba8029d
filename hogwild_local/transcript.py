"""Transcripts: every event of a run appended as JSON Lines while it happens, and a Markdown rendering.

Each line is flushed, so a crash or Ctrl-C loses at most the pass in flight. Token events are merged per
pass and worker to keep files small; the rendering rebuilds each worker's text from them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO

from .events import Event, to_dict


class TranscriptWriter:
    """Append events to a JSONL file as they come (tokens of one pass and worker are merged into one line)."""

    def __init__(self, path: str | Path, header: dict | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[str] = self.path.open("a", encoding="utf-8")
        self._tokens: dict[str, dict] = {}
        if header:
            self._write({"type": "header", **header})

    def write(self, event: Event) -> None:
        """Record one event."""
        data = to_dict(event)
        if data["type"] == "token":
            key = data["worker"]
            held = self._tokens.get(key)
            if held and held["pass"] == data["pass"] and held["forced"] == data["forced"]:
                held["text"] += data["text"]
                return
            if held:
                self._write(held)
            self._tokens[key] = data
            return
        if data["type"] in ("stats", "step", "cut", "answer"):
            self._flush_tokens()
        self._write(data)

    def _flush_tokens(self) -> None:
        for held in self._tokens.values():
            self._write(held)
        self._tokens.clear()

    def _write(self, data: dict) -> None:
        self._file.write(json.dumps(data, ensure_ascii=False) + "\n")
        self._file.flush()

    def close(self) -> None:
        """Write what is held and close the file."""
        if not self._file.closed:
            self._flush_tokens()
            self._file.close()

    def __enter__(self) -> TranscriptWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_events(path: str | Path) -> list[dict]:
    """All records of a JSON Lines file written as a run goes (a transcript, eval results); a truncated last
    line, from a crash, is skipped."""
    records = []
    for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


class NotATranscript(ValueError):
    """The file holds no run: it was not written by `hogwild run --transcript` (or the TUI)."""


def render_markdown(path: str | Path) -> str:
    """A readable Markdown account of a transcript: setup, the shared history, unfinished steps, the answer."""
    records = read_events(path)
    if not any(rec.get("type") == "start" for rec in records):
        raise NotATranscript(f"{path}: not a hogwild transcript (no run starts in it)")
    out: list[str] = []
    current: dict[str, str] = {}
    for rec in records:
        kind = rec.get("type")
        if kind == "header":
            out.append(f"# Hogwild! run: {rec.get('problem', '')[:80]}\n")
            out.append(f"**Problem.** {rec.get('problem', '')}\n")
        elif kind == "start":
            cfg, model = rec["config"], rec["model"]
            out.append(
                f"- model: `{Path(model['path']).name}` ({model['architecture']})\n"
                f"- method: {cfg['method']}, workers: {cfg['workers']}, layout: {cfg['layout']}, "
                f"budget: {cfg['budget']} passes, seed: {cfg['sampling']['seed']}\n"
            )
            out.append("## Shared history (in completion order)\n")
        elif kind == "token":
            current[rec["worker"]] = current.get(rec["worker"], "") + rec["text"]
        elif kind == "step":
            out.append(rec["text"].strip() + "\n")
            current.pop(rec["worker"], None)
        elif kind == "cut":
            current[rec["worker"]] = rec["text"]
            if rec["reason"] == "repeat":
                out.append(f"*({rec['worker']}'s step repeated a finished one word for word and was dropped.)*\n")
        elif kind == "answer":
            unfinished = {w: t for w, t in current.items() if t.strip()}
            if unfinished:
                out.append("## Unfinished steps at the end\n")
                out += [t.strip() + "\n" for t in unfinished.values()]
            out.append(
                f"## Answer\n\n**{rec['answer']}** (stopped by: {rec['reason']}; {rec['passes']} passes, "
                f"{rec['tokens_generated']} tokens, {rec['elapsed_s']:.1f} s)\n"
            )
    return "\n".join(out)
