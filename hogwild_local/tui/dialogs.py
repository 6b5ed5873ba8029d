"""Modal dialogs: one line of text (problem, hint, transcript path) and the run settings."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select

from ..engine import RunConfig
from ..engine.config import ANSWER_MODES
from ..engine.layout import MAX_WORKERS, USER_LAYOUTS
from ..engine.thinking import ThinkMode
from ..models import default_model

DIALOG_CSS = """
{name} {{ align: center middle; }}
{name} > Vertical {{
    width: 90%;
    max-width: 100;
    height: auto;
    border: thick $primary;
    background: $surface;
    padding: 0 1;
}}
{name} .title {{ text-style: bold; width: 1fr; }}
{name} .hint {{ color: $text-muted; width: 1fr; }}
{name} .message {{ color: $error; width: 1fr; }}
"""


class TextDialog(ModalScreen[str | None]):
    """Ask for one line of text; enter returns it (None on escape or when empty).

    ``check`` may refuse a text: it returns why (one line), which is shown as an error notification
    while the dialog stays open with the text, so that it can be shortened; None accepts it.
    """

    DEFAULT_CSS = DIALOG_CSS.format(name="TextDialog")
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, value: str = "", placeholder: str = "",
                 check: Callable[[str], str | None] | None = None) -> None:
        super().__init__()
        self.title_text, self.value, self.placeholder, self.check = title, value, placeholder, check

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.title_text, classes="title")
            yield Input(self.value, placeholder=self.placeholder)
            yield Label("enter: OK · escape: cancel", classes="hint")

    @on(Input.Submitted)
    def submit(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        refusal = self.check(text) if text and self.check is not None else None
        if refusal is not None:
            self.notify(refusal, severity="error", markup=False)
            return
        self.dismiss(text or None)

    def action_cancel(self) -> None:
        self.dismiss(None)


@dataclass(frozen=True)
class Settings:
    """What the settings screen edits: the model and the run configuration."""

    model_spec: str | None
    config: RunConfig


class SettingsScreen(ModalScreen[Settings | None]):
    """Model, workers, layout, answer mode, budget, temperature, seed, DRY and thinking; they apply to the next
    run."""

    DEFAULT_CSS = DIALOG_CSS.format(name="SettingsScreen") + """
    SettingsScreen .row { height: 1; margin-top: 1; }
    SettingsScreen .row > Label { width: 14; }
    SettingsScreen .row > Input, SettingsScreen .row > Select { width: 1fr; }
    SettingsScreen #buttons { height: 1; margin-top: 1; align-horizontal: right; }
    SettingsScreen Button { margin-left: 2; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, settings: Settings) -> None:
        super().__init__()
        self.settings = settings

    def compose(self) -> ComposeResult:
        cfg = self.settings.config
        with Vertical():
            yield Label("Settings (apply to the next run)", classes="title")
            yield _row("model", Input(self.settings.model_spec or "", id="model", compact=True,
                                           placeholder=f"default: {default_model().name}"))
            yield _row("workers", Select([(str(n), n) for n in range(1, MAX_WORKERS + 1)], value=cfg.workers,
                                              allow_blank=False, id="workers", compact=True))
            yield _row("layout", Select([(name, name) for name in USER_LAYOUTS], value=cfg.layout,
                                             allow_blank=False, id="layout", compact=True))
            yield _row("answer", Select([(mode, mode) for mode in ANSWER_MODES], value=cfg.answer,
                                        allow_blank=False, id="answer", compact=True,
                                        tooltip="boxed: a short \\boxed{} answer; text: prose; code: a code block"))
            yield _row("budget", Input(str(cfg.budget), type="integer", id="budget", compact=True))
            yield _row("temperature", Input(str(cfg.sampling.temperature), type="number", id="temperature",
                                                 compact=True))
            yield _row("seed", Input(str(cfg.sampling.seed), type="integer", id="seed", compact=True))
            yield _row("DRY", Input(str(cfg.sampling.dry_multiplier), type="number", id="dry", compact=True,
                                    tooltip="penalty on repeating what the worker sees (0.8 is usual, 0 = off)"))
            yield _row("thinking", Select([(m.value, m.value) for m in ThinkMode], value=cfg.think, allow_blank=False,
                                          id="think", compact=True,
                                          tooltip="auto: a thinking block for reasoning models only; on: always; "
                                                  "off: reasoning models answer without thinking"))
            yield Label("", classes="message", id="error")
            with Horizontal(id="buttons"):
                yield Button("Apply", variant="primary", id="apply", compact=True)
                yield Button("Cancel", id="cancel", compact=True)

    @on(Button.Pressed, "#apply")
    @on(Input.Submitted)
    def apply(self) -> None:
        """Check the numbers and return the new settings."""
        try:
            budget = int(self.query_one("#budget", Input).value)
            temperature = float(self.query_one("#temperature", Input).value)
            seed = int(self.query_one("#seed", Input).value)
            dry = float(self.query_one("#dry", Input).value)
        except ValueError:
            self.query_one("#error", Label).update("budget and seed must be whole numbers, temperature and DRY numbers")
            return
        if budget < 1 or dry < 0:
            self.query_one("#error", Label).update("the budget must be at least 1 pass, DRY at least 0")
            return
        cfg = self.settings.config
        config = replace(cfg, workers=self.query_one("#workers", Select).value,
                         layout=self.query_one("#layout", Select).value, budget=budget,
                         answer=self.query_one("#answer", Select).value,
                         think=self.query_one("#think", Select).value,
                         sampling=replace(cfg.sampling, temperature=temperature, seed=seed, dry_multiplier=dry))
        self.dismiss(Settings(self.query_one("#model", Input).value.strip() or None, config))

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


def _row(label: str, field: Input | Select) -> Horizontal:
    return Horizontal(Label(label), field, classes="row")
