"""The TUI driven by Textual's Pilot: the real app, the real SmolLM2-135M, no mocks.

Each test runs the app headless with ``App.run_test()`` inside ``asyncio.run`` (no pytest plugin
needed). The main-screen screenshots in docs/screenshots/ are written here, as SVG and, when
cairosvg is installed, as PNG.
"""

from __future__ import annotations

import asyncio
import dataclasses
import fcntl
import json
import os
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Button, Input, Select

from hogwild_local.engine import RunConfig
from hogwild_local.engine.events import END_REASONS as REASONS
from hogwild_local.engine.events import AnswerEvent, CutEvent, StepEvent, TokenEvent
from hogwild_local.engine.layout import LayoutKind
from hogwild_local.native import SamplingParams
from hogwild_local.tui.answer import AnswerPanel
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
ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "docs" / "screenshots"
SMALL_CTX = dataclasses.replace(CONFIG, n_ctx=512)  # the issue's --ctx 512: the prompt leaves ~300 cells
LONG_HINT = ("Check the numbers again: 48 clips in April, half as many in May, then add both months. " * 14)[:1200]
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
            assert app.phase in ("running", "done")  # resumed: a worker may answer in the first pass after it
            await wait_until(pilot, lambda: ("User", "Half of 48 is 24.") in history.entries, "the hint in the history")
            assert ("User", "**User:** Half of 48 is 24.\n\n") in app.texts.history  # in the common block too
            await wait_until(pilot, lambda: app.stats.pass_ >= 24 or app.phase == "done", "pass 24")
            screenshot(app, "main")

            # stop: the finisher answers and the panel shows why the run ended
            await pilot.press("x")
            await wait_until(pilot, lambda: answer.reason != "", "the final answer")
            assert answer.reason in REASONS and answer.display
            await wait_until(pilot, app.run_done.is_set, "the inference thread to end")

            # save: a path that cannot be expanded is a notification, not a crash
            await pilot.press("w")
            app.screen.query_one(Input).value = "~no-such-user-hogwild/run.jsonl"
            await pilot.press("enter")
            await wait_until(pilot, lambda: any("cannot write" in n.message for n in app._notifications),
                             "the save error")

            # save: the events so far as JSON lines
            path = tmp_path / "run.jsonl"
            await pilot.press("w")
            app.screen.query_one(Input).value = str(path)
            await pilot.press("enter")
            records = [json.loads(line) for line in path.read_text().splitlines()]
            assert records[0]["type"] == "header" and records[0]["problem"] == PROBLEM
            assert len({record["run"] for record in records}) == 1  # one run, its id on every line
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
            app.screen.query_one("#think", Select).value = "off"
            apply = app.screen.query_one("#apply", Button)
            assert apply.region.height and app.screen.region.contains_region(apply.region)  # the dialog fits
            await pilot.click("#apply")
            assert app.config.workers == 3 and app.config.budget == 24 and app.config.sampling.dry_multiplier == 0.8
            assert app.config.think == "off" and app.sub_title.endswith("· thinking off")

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
    records = [json.loads(line) for line in transcript.read_text().splitlines()]
    assert [r["type"] for r in records[:2]] == ["header", "start"] and records[-1]["type"] == "answer"
    assert records[1]["config"]["think"] == "off"


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


def note_tokens(app: HogwildApp, text: str) -> int:
    """Tokens a hint takes in the cache, counted on the note as the engine writes it."""
    return len(app.generation.model.tokenize(f"**User:** {text}\n\n"))


def hint_of(app: HogwildApp, tokens: int) -> str:
    """A hint that takes ``tokens`` tokens in the cache (or one more)."""
    text = "yes"
    while note_tokens(app, text) < tokens:
        text += " yes"
    return text


def error_messages(app: HogwildApp) -> list[str]:
    return [n.message for n in app._notifications if n.severity == "error"]


def test_hint_that_does_not_fit_is_refused_and_the_run_ends_with_an_answer() -> None:
    """At --ctx 512: a 1,200-character hint (more than the common block holds), and one that fits the layout
    but would leave the finisher no cells, are refused with how much fits; a short one joins; the run answers."""
    app = HogwildApp(MODEL, PROBLEM, SMALL_CTX)

    async def session() -> None:
        async with app.run_test(size=(100, 32)) as pilot:
            await wait_until(pilot, lambda: app.stats is not None and app.stats.pass_ >= 2, "a few passes")
            await pilot.press("p")
            await pilot.pause(0.3)  # the pass under way ends: the layout holds still
            layout = app.layout
            common_room = layout.common.capacity - layout.common.length
            assert note_tokens(app, LONG_HINT) > common_room  # the LayoutFull
            # fits the common block and the cache, but leaves 5 cells: the finisher's prompt would not fit
            cache_filler = hint_of(app, SMALL_CTX.n_ctx - layout.live_cells() - 5)
            assert note_tokens(app, cache_filler) <= common_room

            for n, text in enumerate([LONG_HINT, cache_filler], start=1):
                await pilot.press("i")
                app.screen.query_one(Input).value = text
                await pilot.press("enter")
                await wait_until(pilot, lambda n=n: len(error_messages(app)) == n, "the refusal", timeout=10)
                assert isinstance(app.screen, TextDialog)  # kept open with the text, to be shortened
                assert app.screen.query_one(Input).value == text
                message = error_messages(app)[-1]
                assert "\n" not in message and "does not fit" in message and "fit in the free context" in message
                await pilot.press("escape")

            await pilot.press("i")
            app.screen.query_one(Input).value = "Half of 48 is 24."
            await pilot.press("enter")
            assert not isinstance(app.screen, TextDialog)
            await pilot.press("p")
            await wait_until(pilot, lambda: app.phase == "done" and app.run_done.is_set(), "the answer")
            assert app.query_one(AnswerPanel).reason in REASONS
            assert ("User", "Half of 48 is 24.") in app.query_one(HistoryPane).entries

    asyncio.run(session())
    assert app.release()


def test_engine_error_fails_the_run_and_the_app_stays_up() -> None:
    """A note sent past the dialog's check (the engine raises LayoutFull today): the run ends, the app lives on
    and starts the next run."""
    app = HogwildApp(MODEL, PROBLEM, SMALL_CTX)

    async def session() -> None:
        async with app.run_test(size=(100, 32)) as pilot:
            await wait_until(pilot, lambda: app.stats is not None and app.stats.pass_ >= 1, "the first pass")
            app.generation.add_note(LONG_HINT)
            await wait_until(pilot, lambda: app.run_done.is_set() and app.phase in ("failed", "done"), "the end")
            if app.phase == "failed":
                await wait_until(pilot, lambda: error_messages(app), "the error notification", timeout=10)
                message = error_messages(app)[-1]
                assert "\n" not in message and "full" in message and message in app.query_one(StatusBar).plain
            else:  # an engine that ends such a run with the finisher's answer
                assert app.query_one(AnswerPanel).reason in REASONS

            await pilot.press("s")
            await wait_until(pilot, lambda: app.stats is not None and app.stats.pass_ >= 2, "the next run")
            await pilot.press("x")
            await wait_until(pilot, lambda: app.phase == "done" and app.run_done.is_set(), "its answer")

    asyncio.run(session())
    assert app.release()


def test_status_bar_and_answer_agree_on_the_time_after_a_pause() -> None:
    """Paused for a while, then stopped: the status bar ends at the answer's elapsed time (the pause counts in both)."""
    app = HogwildApp(MODEL, PROBLEM, CONFIG)

    async def session() -> None:
        async with app.run_test(size=(100, 32)) as pilot:
            await wait_until(pilot, lambda: app.stats is not None and app.stats.pass_ >= 2, "a few passes")
            await pilot.press("p")
            await pilot.pause(1.5)
            await pilot.press("x")
            await wait_until(pilot, lambda: app.phase == "done" and app.run_done.is_set(), "the answer")
            await pilot.pause(0.1)
            answer = next(e for e in app.events if isinstance(e, AnswerEvent))
            shown = f"{answer.elapsed_s:.1f} s"
            assert shown in str(app.query_one(AnswerPanel).content) and shown in app.query_one(StatusBar).plain

    asyncio.run(session())
    assert app.release()


def test_new_run_resets_the_history_title() -> None:
    """The History title counts the current run's entries: a new run starts at none."""
    app = HogwildApp(MODEL, PROBLEM, CONFIG)

    async def session() -> None:
        async with app.run_test(size=(100, 32)) as pilot:
            history = app.query_one(HistoryPane)
            await wait_until(pilot, lambda: app.layout is not None, "the run")
            await pilot.press("i")
            app.screen.query_one(Input).value = "Half of 48 is 24."
            await pilot.press("enter")
            await wait_until(pilot, lambda: history.entries, "the hint in the history")
            await pilot.press("x")
            await wait_until(pilot, lambda: app.phase == "done" and app.run_done.is_set(), "the answer")
            assert history.border_title == f"History ({len(history.entries)})"
            assert any(who == "User" for who, _ in history.entries)
            await pilot.press("s")
            # the new run may already have its first step (an opener) when the key is handled: what matters is
            # that the first run's entries (its hint) are gone and the title counts the new run's alone
            assert not any(who == "User" for who, _ in history.entries)
            assert history.border_title == (f"History ({len(history.entries)})" if history.entries else "History")
            await pilot.press("x")
            await wait_until(pilot, lambda: app.phase == "done" and app.run_done.is_set(), "the second answer")

    asyncio.run(session())
    assert app.release()


# what Textual writes when it leaves the terminal on a normal quit: mouse tracking off, bracketed paste off,
# the normal screen back, the cursor shown (the "q" case checks that this list is still what it writes)
RESTORE = ("\x1b[?1000l", "\x1b[?1003l", "\x1b[?1006l", "\x1b[?2004l", "\x1b[?1049l", "\x1b[?25h")
# a bug inside the app, injected in a child process: an exception in a key handler
CRASHING_APP = """
import sys
from hogwild_local.cli import main
from hogwild_local.tui import app


class Crashing(app.HogwildApp):
    def action_settings(self) -> None:
        raise RuntimeError("injected fault")


app.HogwildApp = Crashing
main(sys.argv[1:])
"""


def run_in_pty(argv: list[str], act: Callable[[int, subprocess.Popen], None]) -> tuple[int, str, list]:
    """Run ``argv`` on a 100x30 pseudo-terminal; once its screen shows a running run, ``act(master, process)``;
    returns the exit status, everything written to the terminal, and its termios attributes afterwards."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    env = {**os.environ, "TERM": "xterm-256color"}
    process = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, cwd=ROOT, env=env,
                               start_new_session=True)
    os.close(slave)
    output, acted = bytearray(), False
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while time.monotonic() < deadline:
            if not acted and b"running" in output:
                act(master, process)
                acted = True
            if select.select([master], [], [], 0.1)[0]:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not data:
                    break
                output += data
        assert acted, f"the app never showed a running run: {bytes(output[-2000:])!r}"
        status = process.wait(timeout=TIMEOUT_S)
        return status, output.decode("utf-8", "replace"), termios.tcgetattr(master)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(master)


@pytest.mark.parametrize(("how", "status"), [("q", 0), ("SIGTERM", 143), ("SIGINT", 130), ("crash", 1)])
def test_every_exit_restores_the_terminal(how: str, status: int) -> None:
    """hogwild tui on a real pseudo-terminal, ended by q, SIGTERM, SIGINT or an exception inside the app: the
    terminal is restored after the last switch to the alternate screen, and the exit status says how it ended."""
    args = ["tui", PROBLEM, "-m", MODEL, "-w", "2", "--budget", "2000", "--threads", "2"]
    argv = [sys.executable, "-c", CRASHING_APP, *args] if how == "crash" else [sys.executable, "-m", "hogwild_local",
                                                                               *args]

    def act(master: int, process: subprocess.Popen) -> None:
        if how.startswith("SIG"):
            process.send_signal(getattr(signal, how))
        else:
            os.write(master, b"o" if how == "crash" else b"q")

    code, output, attrs = run_in_pty(argv, act)
    assert code == status, output[-2000:]
    after = output[output.rindex("\x1b[?1049h"):]
    assert [seq for seq in RESTORE if seq not in after] == []
    assert attrs[3] & termios.ECHO and attrs[3] & termios.ICANON  # line mode and echo are back


def test_view_as_stays_up_while_the_next_run_starts_and_then_shows_it() -> None:
    """The view-as screen reads the app's latest layout copy: a new run has none at first (the screen keeps
    what it showed), then the new run's, with its own number of workers."""
    three = dataclasses.replace(CONFIG, workers=3, budget=8)
    app = HogwildApp(MODEL, PROBLEM, dataclasses.replace(CONFIG, budget=8))

    async def session() -> None:
        async with app.run_test(size=(100, 32)) as pilot:
            await wait_until(pilot, lambda: app.phase == "done" and app.run_done.is_set(), "the first run")
            await pilot.press("v")
            assert isinstance(app.screen, ViewAsScreen) and app.screen.n_workers == 2
            shown = app.screen.rows
            app.config = three
            await app.begin_run()
            assert app.layout is None
            await app.screen.show_view()  # a refresh before the new run's first layout copy: it keeps its rows
            assert isinstance(app.screen, ViewAsScreen) and app.screen.rows == shown
            await wait_until(pilot, lambda: app.layout is not None and app.layout.n_workers == 3, "the new run")
            await wait_until(pilot, lambda: app.screen.n_workers == 3, "the screen on the new run")
            await pilot.press("left")
            assert app.screen.worker == 2 and app.screen.rows[-1].name == "Carol's step (own)"

    asyncio.run(session())
    assert app.release()
