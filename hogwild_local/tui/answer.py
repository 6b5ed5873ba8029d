"""The final-answer panel: hidden during a run, shown with the answer and why the run ended."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from ..engine.events import END_REASONS, AnswerEvent


class AnswerPanel(Static):
    """Answer, reason, and the run's totals."""

    DEFAULT_CSS = """
    AnswerPanel {
        display: none;
        height: auto;
        max-height: 12;
        border: heavy $success;
        border-title-style: bold;
        padding: 0 1;
    }
    AnswerPanel.-shown { display: block; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.border_title = "Final answer"
        self.answer: str | None = None
        self.reason = ""

    def show_answer(self, event: AnswerEvent) -> None:
        """Show the end of a run."""
        self.answer, self.reason = event.answer, event.reason
        text = Text.assemble(("Answer: ", "bold"), (event.answer or "(none found)", "bold green"),
                             "  ", ("reason: ", "bold"), f"{event.reason} ({END_REASONS.get(event.reason, '')})")
        totals = f"\n{event.passes} passes · {event.tokens_generated} tokens · {event.elapsed_s:.1f} s"
        if event.votes:
            totals += " · votes " + ", ".join(f"{a}: {n}" for a, n in event.votes.items())
        text.append(totals, style="dim")
        self.update(text)
        self.add_class("-shown")

    def clear(self) -> None:
        """Hide the panel (a new run starts)."""
        self.answer, self.reason = None, ""
        self.remove_class("-shown")
