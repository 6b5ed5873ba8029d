"""The TUI driven by Textual's Pilot: the real app, the real SmolLM2-135M, no mocks.

Each test runs the app headless with ``App.run_test()`` inside ``asyncio.run`` (no pytest plugin
needed). The main-screen screenshots in docs/screenshots/ are written here, as SVG and, when
cairosvg is installed, as PNG.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Button, Input, Select

from hogwild_local.backend import SamplingParams
from hogwild_local.engine import RunConfig
from hogwild_local.events import CutEvent, StepEvent, TokenEvent
from hogwild_local.layout import LayoutKind
from hogwild_local.tui.answer import REASONS, AnswerPanel
from hogwild_local.tui.app import SAMPLE_PROBLEM, HogwildApp
from hogwild_local.tui.blocks import BlockTexts
from hogwild_local.tui.dialogs import SettingsScreen, TextDialog
from hogwild_local.tui.panes import HistoryPane, WorkerGrid
from hogwild_local.tui.status import StatusBar
from hogwild_local.tui.view_as import ViewAsScreen

# as run_tui does: idle OpenMP threads must not spin beside the UI thread. This takes effect only if
# llama.cpp is not loaded yet (this file run alone, or the variable set in the environment or a conftest).
os.environ.setdefault("OMP_WAIT_POLICY", "passive")

MODEL = "smollm2-135m"
CONFIG = RunConfig(workers=2, budget=48, threads=2, n_ctx=2048, sampling=SamplingParams(seed=1))
PROBLEM = ("Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
           "How many clips did Natalia sell altogether in April and May?")
SCREENSHOTS = Path(__file__).resolve().parents[1] / "docs" / "screenshots"
TIMEOUT_S = 120.0  # generous: the machine may be shared; a quiet run needs a few seconds


async def wait_until(pilot: Pilot, condition: Callable[[], bool], what: str, timeout: float = TIMEOUT_S) -> None:
    """Let the app run until ``condition()`` holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        await pilot.pause(0.05)


def screenshot(app: HogwildApp, name: str) -> None:
    """With HOGWILD_SCREENSHOTS=1 (regenerating the docs), save the screen as docs/screenshots/NAME.svg,
    and NAME.png if cairosvg is available."""
    if not os.environ.get("HOGWILD_SCREENSHOTS"):
        return
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    svg = app.save_screenshot(f"{name}.svg", path=str(SCREENSHOTS))
    try:
        import cairosvg  # optional, only for the docs' PNG copies
    except ImportError:
        return
    # cairosvg takes only the first font family, and Fira Code is rarely installed: use a common monospace font
    text = Path(svg).read_text(encoding="utf-8").replace("Fira Code", "DejaVu Sans Mono")
    cairosvg.svg2png(bytestring=text.encode(), write_to=str(SCREENSHOTS / f"{name}.png"), output_width=1600)


def test_session_start_pause_view_hint_stop_save(tmp_path: Path) -> None:
    """One run through every key: start, pause, view as, hint, resume, stop, save."""
    app = HogwildApp(MODEL, PROBLEM, CONFIG, autostart=False)

    async def session() -> None:
        async with app.run_test(size=(100, 32)) as pilot:
            grid, history = app.query_one(WorkerGrid), app.query_one(HistoryPane)
            status, answer = app.query_one(StatusBar), app.query_one(AnswerPanel)

            def sampled(name: str) -> bool:
                return any(isinstance(e, TokenEvent) and e.worker == name and not e.forced for e in app.events)

            # start: tokens stream into both panes, the status bar shows passes and cells
            await pilot.press("s")
            await wait_until(pilot, lambda: app.stats is not None and app.stats.pass_ >= 4
                             and sampled("Alice") and sampled("Bob"), "a few passes with sampled tokens")
            assert all(pane.text.strip() for pane in grid.panes.values())
            assert "pass " in status.plain and f"cells {app.stats.cells_used}/" in status.plain

            # pause: the pass number stops advancing
            await pilot.press("p")
            assert app.phase == "paused"
            await pilot.pause(0.3)  # the pass under way when p was pressed completes
            paused_at = app.stats.pass_
            await pilot.pause(0.8)
            assert app.stats.pass_ == paused_at

            # view as Alice: her blocks in her order, her own step last; right arrow -> Bob
            await pilot.press("v")
            assert isinstance(app.screen, ViewAsScreen)
            rows = app.screen.rows
            assert [row.name for row in rows] == [
                "prompt + history", "header: the others' steps", "Bob's step", "marker after Bob's step",
                "header: own step", "Alice's step (own)"]
            assert PROBLEM in rows[0].text and rows[-1].text.startswith("**Alice [")
            assert [row.view.start for row in rows] == [0, *[row.view.stop for row in rows[:-1]]]
            await pilot.pause(0.1)
            screenshot(app, "view-as")
            await pilot.press("right")
            assert app.screen.worker == 1 and app.screen.rows[-1].name == "Bob's step (own)"
            assert str(app.screen.query_one("#view-title").render()).startswith("View as Bob:")
            await pilot.press("escape")
            assert not isinstance(app.screen, ViewAsScreen)

            # a hint (queued while paused), then resume: it enters the history as "User"
            await pilot.press("i")
            assert isinstance(app.screen, TextDialog)
            app.screen.query_one(Input).value = "Half of 48 is 24."
            await pilot.press("enter")
            await pilot.press("p")
            assert app.phase == "running"
            await wait_until(pilot, lambda: ("User", "Half of 48 is 24.") in history.entries, "the hint in the history")
            assert ("User", "**User:** Half of 48 is 24.\n\n") in app.texts.history  # in the common block too
            await wait_until(pilot, lambda: app.stats.pass_ >= 24 or app.phase == "done", "pass 24")
            screenshot(app, "main")

            # stop: the finisher answers and the panel shows why the run ended
            await pilot.press("x")
            await wait_until(pilot, lambda: answer.reason != "", "the final answer")
            assert answer.reason in REASONS and answer.display
            await wait_until(pilot, app.run_done.is_set, "the inference thread to end")

            # save: the events so far as JSON lines
            path = tmp_path / "run.jsonl"
            await pilot.press("w")
            app.screen.query_one(Input).value = str(path)
            await pilot.press("enter")
            records = [json.loads(line) for line in path.read_text().splitlines()]
            assert records[0] == {"type": "header", "problem": PROBLEM}
            types = [record["type"] for record in records]
            assert types[1] == "start" and types[-1] == "answer" and "step" in types and "token" in types

    asyncio.run(session())
    assert app.release()


def test_small_terminal_three_workers_from_settings(tmp_path: Path) -> None:
    """At 80x24: settings -> 3 workers, a run to the end of its budget; panes, history, answer, status fit.

    The run also goes to a --transcript file, written as it happens.
    """
    transcript = tmp_path / "auto.jsonl"
    app = HogwildApp(MODEL, PROBLEM, CONFIG, transcript, autostart=False)

    async def session() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("o")
            assert isinstance(app.screen, SettingsScreen)
            app.screen.query_one("#workers", Select).value = 3
            app.screen.query_one("#budget", Input).value = "24"
            app.screen.query_one("#dry", Input).value = "0.8"
            apply = app.screen.query_one("#apply", Button)
            assert apply.region.height and app.screen.region.contains_region(apply.region)  # the dialog fits
            await pilot.click("#apply")
            assert app.config.workers == 3 and app.config.budget == 24 and app.config.sampling.dry_multiplier == 0.8

            await pilot.press("s")
            await wait_until(pilot, lambda: app.phase == "done" and app.run_done.is_set(), "the run to end")
            await pilot.pause(0.2)
            screenshot(app, "main-80x24")
            answer = app.query_one(AnswerPanel)
            assert answer.reason in REASONS
            screen, status = app.screen.region, app.query_one(StatusBar)
            assert status.region.height == 1 and screen.contains_region(status.region)
            panes = list(app.query_one(WorkerGrid).panes.values())
            assert len(panes) == 3
            for widget in [*panes, app.query_one(HistoryPane), answer]:
                assert widget.region.height >= 3 and screen.contains_region(widget.region), widget

    asyncio.run(session())
    assert app.release()
    types = [json.loads(line)["type"] for line in transcript.read_text().splitlines()]
    assert types[:2] == ["header", "start"] and types[-1] == "answer"


def test_no_problem_opens_the_sample_dialog() -> None:
    """Without a problem the app asks for one, prefilled with the sample; escape leaves it idle."""
    app = HogwildApp(MODEL, None, CONFIG)

    async def session() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            assert isinstance(app.screen, TextDialog)
            assert app.screen.query_one(Input).value == SAMPLE_PROBLEM
            await pilot.press("escape")
            assert app.phase == "idle" and not isinstance(app.screen, TextDialog)

    asyncio.run(session())


def test_bad_model_is_a_one_line_notification() -> None:
    """A model that cannot be found: an error notification and a failed phase, no traceback."""
    app = HogwildApp("/nonexistent/model.gguf", PROBLEM, CONFIG)

    async def session() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            # notify() posts a message: the notification lands a moment after the phase changes
            await wait_until(pilot, lambda: app.phase == "failed" and len(app._notifications) > 0, "the failure",
                             timeout=20)
            messages = [n.message for n in app._notifications]
            assert len(messages) == 1 and "model file not found" in messages[0] and "\n" not in messages[0]

    asyncio.run(session())
    assert app.return_code in (None, 0)


@pytest.mark.parametrize("kind", [LayoutKind.COMBINED, LayoutKind.CONTIGUOUS])
def test_block_texts_follow_the_layout(kind: LayoutKind) -> None:
    """Finished steps join the common block only where the layout moves them; notes always do."""
    texts = BlockTexts("PROMPT", kind)
    for event in [TokenEvent("Alice", "**Alice [1]:** ", 0, forced=True), TokenEvent("Alice", "One.\n\n", 1),
                  StepEvent("Alice", 1, "**Alice [1]:** One.\n\n", 2), StepEvent("User", 0, "**User:** hi\n\n", 2),
                  TokenEvent("Alice", "**Alice [2]:** ", 2, forced=True)]:
        texts.add(event)
    if kind is LayoutKind.COMBINED:
        assert [a for a, _ in texts.history] == ["Alice", "User"]
        assert texts.steps["Alice"] == "**Alice [2]:** "
    else:
        assert [a for a, _ in texts.history] == ["User"]
        assert texts.steps["Alice"] == "**Alice [1]:** One.\n\n**Alice [2]:** "


@pytest.mark.parametrize("kind", [LayoutKind.COMBINED, LayoutKind.CONTIGUOUS])
def test_block_texts_follow_cuts(kind: LayoutKind) -> None:
    """A cut replaces the current step's text only; earlier steps kept in the block (contiguous) stay."""
    texts = BlockTexts("PROMPT", kind)
    for event in [TokenEvent("Bob", "**Bob [1]:** ", 0, forced=True), TokenEvent("Bob", "One.\n\n", 1),
                  StepEvent("Bob", 1, "**Bob [1]:** One.\n\n", 2),
                  TokenEvent("Bob", "**Bob [2]:** ", 2, forced=True), TokenEvent("Bob", "8 **Alice [", 3),
                  CutEvent("Bob", "**Bob [2]:** 8\n\n", 3, "header")]:
        texts.add(event)
    earlier = "" if kind is LayoutKind.COMBINED else "**Bob [1]:** One.\n\n"
    assert texts.steps["Bob"] == earlier + "**Bob [2]:** 8\n\n"
    texts.add(CutEvent("Bob", "", 4, "repeat"))
    assert texts.steps["Bob"] == earlier
