"""The status bar: run phase, pass / budget with a progress bar, tokens/s, cache cells, elapsed time."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Label, ProgressBar

from ..engine.events import StatsEvent
from .theme import color_of


class StatusBar(Horizontal):
    """One line at the bottom; :meth:`show_stats` is called at most once per UI tick."""

    DEFAULT_CSS = """
    StatusBar { height: 1; background: $boost; }
    StatusBar Label { padding: 0 1; height: 1; }
    StatusBar #phase { text-style: bold; color: $text; background: $panel; }
    StatusBar #phase.-loading, StatusBar #phase.-paused { background: $warning-darken-2; }
    StatusBar #phase.-running { background: $success-darken-2; }
    StatusBar #phase.-stopping, StatusBar #phase.-failed { background: $error-darken-2; }
    StatusBar #phase.-done { background: $primary-darken-2; }
    StatusBar #pass { padding: 0 0 0 1; }
    StatusBar ProgressBar { width: 11; }
    StatusBar ProgressBar Bar { width: 10; margin-left: 1; }
    StatusBar #rates { width: 1fr; color: $text-muted; text-wrap: nowrap; text-overflow: ellipsis; }
    """

    def compose(self) -> ComposeResult:
        yield Label("idle", id="phase")
        yield Label("pass -", id="pass")
        yield ProgressBar(total=1, show_percentage=False, show_eta=False, id="budget")
        yield Label("", id="rates")

    def set_phase(self, phase: str) -> None:
        """idle, loading, running, paused, stopping, done or failed."""
        label = self.query_one("#phase", Label)
        label.update(phase)
        label.set_classes(f"-{phase}")

    def show_message(self, text: str) -> None:
        """A line of text in place of the rates (e.g. "loading model ...")."""
        self.query_one("#rates", Label).update(text)

    def reset(self, budget: int) -> None:
        """A new run: no pass yet. The pass label gets the width of its longest text, once."""
        label = self.query_one("#pass", Label)
        label.styles.width = len(f"pass {budget}/{budget}") + 1
        label.update(f"pass 0/{budget}")
        self.query_one("#budget", ProgressBar).update(total=budget, progress=0)

    def show_stats(self, stats: StatsEvent) -> None:
        """Progress after the latest pass."""
        # fixed widths (see reset): these updates repaint the bar without a layout pass
        self.query_one("#pass", Label).update(f"pass {stats.pass_}/{stats.budget}", layout=False)
        self.query_one("#budget", ProgressBar).update(total=stats.budget, progress=stats.pass_)
        rates = Text(f"{_rate(stats.tokens_per_s)} tok/s · cells {stats.cells_used}/{stats.cells_total}"
                     f" · {stats.elapsed_s:.1f} s ·")  # per-worker rates last: they are cropped first
        for worker, rate in stats.worker_tokens_per_s.items():
            rates.append(f" {worker[0]}", style=f"bold {color_of(worker)}")
            rates.append(f" {_rate(rate)}")
        self.query_one("#rates", Label).update(rates, layout=False)

    @property
    def plain(self) -> str:
        """The bar's text without styles (for tests and screen readers)."""
        return " ".join(str(label.render()) for label in self.query(Label))


def _rate(value: float) -> str:
    """Tokens per second with as many digits as are worth reading."""
    return f"{value:.0f}" if value >= 10 else f"{value:.1f}"
