"""The Hogwild! TUI: watch W workers write into one shared KV cache, steer them, and look inside.

Inference runs in a thread worker (:func:`hogwild_local.tui.runner.run_generation`) that puts every record into a
queue; a timer drains the queue 25 times a second and updates the widgets in one batch, so the UI
stays responsive however fast the model writes. The app owns the run's state (events received,
block texts, phase); widgets only show what they are given.
"""

from __future__ import annotations

import asyncio
import dataclasses
import queue
import signal
import threading
import time
from pathlib import Path
from typing import ClassVar

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.reactive import reactive
from textual.widgets import Footer, Header

from ..engine import Generation, RunConfig
from ..engine.events import AnswerEvent, CutEvent, Event, StartEvent, StatsEvent, StepEvent, TokenEvent
from ..engine.layout import WORKER_NAMES, Layout
from ..engine.prompts import note_text
from ..engine.thinking import ThinkMode
from ..engine.transcript import TranscriptError, TranscriptWriter, write_events
from .answer import AnswerPanel
from .blocks import BlockTexts
from .dialogs import Settings, SettingsScreen, TextDialog
from .hints import refusal
from .panes import HistoryPane, WorkerGrid
from .runner import Failed, Finished, LayoutChanged, Loading, ModelCache, Notice, Record, Started, run_generation
from .status import StatusBar
from .view_as import ViewAsScreen

SAMPLE_PROBLEM = (
    "A baker makes 24 muffins in the morning and twice as many in the afternoon. "
    "She sells 50 muffins and gives 10 to her neighbours. How many muffins does she have left?"
)
TICK_S = 1 / 25  # how often the queue is drained into the widgets
MAX_RECORDS_PER_TICK = 5000  # keeps one tick short even after a burst
ACTIVE_PHASES = ("loading", "running", "paused", "stopping")
QUIT_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class HogwildApp(App[int]):
    """Worker panes, history, status bar and answer panel for one Hogwild! run at a time."""

    TITLE = "Hogwild!"
    ENABLE_COMMAND_PALETTE = False
    CSS = """
    Screen { layout: vertical; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("s", "start", "Start"),
        Binding("p", "pause", "Pause"),
        Binding("p", "resume", "Resume"),
        Binding("x", "stop", "Stop"),
        Binding("i", "hint", "Hint"),
        Binding("v", "view_as", "View as"),
        Binding("n", "new_problem", "New"),
        Binding("o", "settings", "Settings"),
        Binding("w", "save", "Save"),
        Binding("q", "quit", "Quit"),
    ]

    phase: reactive[str] = reactive("idle")

    def __init__(self, model_spec: str | None, problem: str | None, config: RunConfig,
                 transcript: Path | None = None, *, autostart: bool = True, models: ModelCache | None = None) -> None:
        super().__init__()
        self.model_spec, self.problem, self.config = model_spec, problem, config
        self.transcript, self.autostart = transcript, autostart
        self.inbox: queue.SimpleQueue[Record] = queue.SimpleQueue()
        self.models = models or ModelCache()
        self.run_problem = problem or ""  # the problem of the current run (n may change self.problem meanwhile)
        self.events: list[Event] = []  # everything received in the current run (the transcript)
        self.generation: Generation | None = None
        self.layout: Layout | None = None  # the latest copy the engine thread sent (LayoutChanged)
        self.texts: BlockTexts | None = None
        self.run_config = config  # the configuration of the current run (settings apply to the next)
        self.cancel = threading.Event()
        self.abandon = threading.Event()
        self.run_done = threading.Event()
        self.run_done.set()
        self.stats: StatsEvent | None = None
        self.shown_stats: StatsEvent | None = None  # the stats on screen: a message shown since is not overwritten
        self.start_after_run = False
        self.queued_hints: list[int] = []  # tokens of each hint sent to the engine but not yet in the history

    def compose(self) -> ComposeResult:
        yield Header(icon="◇")
        yield WorkerGrid(id="workers")
        yield HistoryPane(id="history")
        yield AnswerPanel(id="answer")
        yield StatusBar(id="status")
        yield Footer()

    async def on_mount(self) -> None:
        self.sub_title = self._describe(self.config)
        await self.query_one(WorkerGrid).set_workers(list(WORKER_NAMES[:self.config.n_workers]))
        self.set_interval(TICK_S, self.drain)
        if self.problem and self.autostart:
            await self.begin_run()
        elif self.problem:
            await self.query_one(HistoryPane).clear(self.problem)
            self.query_one(StatusBar).show_message("press s to start")
        else:
            self.action_new_problem()

    def on_unmount(self) -> None:
        self._stop_run()

    # the run ----------------------------------------------------------------------------------------

    async def begin_run(self) -> None:
        """Reset the panes and start a run of the current problem and settings in a thread."""
        if not self.run_done.is_set():  # the last run's thread still holds its transcript's lock: start after it
            self.start_after_run = True
            return
        cfg, self.run_config, self.run_problem = self.config, self.config, self.problem
        self.events, self.generation, self.layout, self.texts = [], None, None, None
        self.stats, self.queued_hints = None, []
        self.cancel, self.abandon, self.run_done = threading.Event(), threading.Event(), threading.Event()
        await self.query_one(WorkerGrid).set_workers(list(WORKER_NAMES[:cfg.n_workers]))
        await self.query_one(HistoryPane).clear(self.problem)
        self.query_one(AnswerPanel).clear()
        self.query_one(StatusBar).reset(cfg.budget)
        self.sub_title = self._describe(cfg)
        self.phase = "loading"
        self.run_in_thread(self.model_spec, self.problem, cfg, self.cancel, self.abandon, self.run_done,
                           self._open_transcript())

    def _open_transcript(self) -> TranscriptWriter | None:
        """The --transcript file, appended to by every run (None if not asked for, or not writable)."""
        if self.transcript is None:
            return None
        try:
            return TranscriptWriter(self.transcript, {"problem": self.problem})
        except TranscriptError as err:  # one line naming the file and why (unwritable, held by another run)
            self.notify(str(err), severity="error", markup=False)
            return None

    @work(thread=True, group="generation")
    def run_in_thread(self, model_spec: str | None, problem: str, config: RunConfig, cancel: threading.Event,
                      abandon: threading.Event, done: threading.Event, writer: TranscriptWriter | None) -> None:
        """Load the model and run the generation off the UI thread (records go to the inbox)."""
        try:
            run_generation(self.inbox, self.models, model_spec, problem, config, cancel, abandon, writer)
        finally:
            done.set()

    def drain(self) -> None:
        """Take what the inference thread produced since the last tick and show it in one batch."""
        handled = 0
        while handled < MAX_RECORDS_PER_TICK:
            try:
                record = self.inbox.get_nowait()
            except queue.Empty:
                break
            self.handle(record)
            handled += 1
        if handled:
            self._show_stats()
            self.query_one(WorkerGrid).flush()

    def _show_stats(self) -> None:
        """Show the latest stats in the status bar and under the panes, if they are new."""
        if self.stats is None or self.stats is self.shown_stats:
            return
        self.shown_stats = self.stats
        self.query_one(StatusBar).show_stats(self.stats)
        self.query_one(WorkerGrid).set_rates(self.stats.worker_tokens_per_s)

    def handle(self, record: Record) -> None:
        """Account for one record of the inference thread (widgets that re-render per tick are flushed later)."""
        status = self.query_one(StatusBar)
        if isinstance(record, Loading):
            status.show_message(f"loading model {record.model} ...")
        elif isinstance(record, Started):
            self.generation = record.generation
            self.texts = BlockTexts(record.prompt, self.run_config.layout_kind)
            if self.phase == "loading":
                self.phase = "running"
            status.show_message("prefilling the prompt ...")
        elif isinstance(record, Failed):
            self._show_stats()  # now, so that the next tick does not write over the message
            self.notify(record.message, title="Error", severity="error", markup=False)
            status.show_message(record.message)
            self.phase = "failed"
        elif isinstance(record, Notice):
            self.notify(record.message, severity="warning", markup=False)
        elif isinstance(record, LayoutChanged):
            first = self.layout is None
            self.layout = record.layout
            if first:
                self.refresh_bindings()  # view-as applies from now on
        elif isinstance(record, Finished):
            self._end_run()
        else:
            self.events.append(record)
            if self.texts is not None:
                self.texts.add(record)
            self._show_event(record)

    def _show_event(self, event: Event) -> None:
        if isinstance(event, TokenEvent):
            self.query_one(WorkerGrid).add(event.worker, event.text, event.forced)
        elif isinstance(event, CutEvent):
            self.query_one(WorkerGrid).cut(event.worker, event.text)
        elif isinstance(event, StepEvent):
            if event.worker == "User" and self.queued_hints:
                self.queued_hints.pop(0)  # in the layout now: no longer counted twice
            self.query_one(HistoryPane).add_step(event.worker, event.step, event.text)
        elif isinstance(event, StatsEvent):
            self.stats = event
        elif isinstance(event, StartEvent):
            self.sub_title = self._describe(self.run_config, Path(event.model["path"]).stem)
        elif isinstance(event, AnswerEvent):
            if self.stats is not None:  # one clock: the status bar ends at the answer's time (pauses, finisher)
                self.stats = dataclasses.replace(self.stats, elapsed_s=event.elapsed_s)
            self.query_one(AnswerPanel).show_answer(event)
            self.phase = "done"

    def _end_run(self) -> None:
        """The thread is done: settle the phase, start a queued run."""
        if self.phase in ACTIVE_PHASES:  # cancelled while the model was loading
            self.phase = "idle"
            self.query_one(StatusBar).show_message("stopped before the run began")
        if self.start_after_run:
            self.start_after_run = False
            self.call_later(self.begin_run)

    def _stop_run(self) -> None:
        """Stop the current run after its pass (or skip it if the model is still loading)."""
        self.cancel.set()
        if self.generation is not None and not self.abandon.is_set():  # stop() would run the finisher after all
            self.generation.stop()

    def quit_on_signal(self, signum: int) -> None:
        """SIGTERM or SIGINT: leave as q does, but without the finisher, and exit with 128 + the signal number."""
        self.abandon.set()
        if self.generation is not None:
            self.generation.resume()  # a paused engine must reach the end of a pass for the runner to leave it
        self.exit(return_code=128 + signum)

    def release(self, timeout: float = 60.0) -> bool:
        """Wait for the inference thread to end (after a stop it only runs the finisher), then free the model.

        Returns False if the thread was still running after ``timeout`` seconds (the model is kept then).
        """
        self._stop_run()
        if not self.run_done.wait(timeout):
            return False
        self.models.close()
        return True

    # keys -------------------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Which keys apply now: None greys a key out in the footer, False hides it."""
        active = self.phase in ACTIVE_PHASES
        if action == "start":
            return None if active else True
        if action == "pause":
            return {"running": True, "paused": False}.get(self.phase)
        if action == "resume":
            return self.phase == "paused"
        if action == "stop":
            return True if self.phase in ("loading", "running", "paused") else None
        if action == "hint":
            return True if self.phase in ("running", "paused") else None
        if action == "view_as":
            return True if self.layout is not None else None
        if action == "save":
            return True if self.events else None
        return True

    def watch_phase(self, phase: str) -> None:
        self.query_one(StatusBar).set_phase(phase)
        self.refresh_bindings()

    async def action_start(self) -> None:
        """Start a run (asks for a problem first if there is none)."""
        if not self.problem:
            self.action_new_problem()
        else:
            await self.begin_run()

    def action_pause(self) -> None:
        """Hold the workers before their next pass."""
        self.generation.pause()
        self.phase = "paused"

    def action_resume(self) -> None:
        """Let the workers continue."""
        self.generation.resume()
        self.phase = "running"

    def action_stop(self) -> None:
        """Stop generating; the finisher still writes the final answer."""
        self._stop_run()
        self.phase = "stopping"
        self.query_one(StatusBar).show_message("stopping: the finisher is writing the answer ...")

    def action_new_problem(self) -> None:
        """Ask for a problem and run it (stopping the current run first)."""
        self.push_screen(TextDialog("New problem", self.problem or SAMPLE_PROBLEM), self._new_problem)

    async def _new_problem(self, problem: str | None) -> None:
        if problem is None:
            return
        self.problem = problem
        if self.phase in ACTIVE_PHASES:
            self.start_after_run = True
            self.action_stop()
        else:
            await self.begin_run()

    def action_hint(self) -> None:
        """Ask for a hint that enters the shared history as a step of "User" (one that does not fit is refused)."""
        self.push_screen(TextDialog("Hint for the workers (joins the shared history as User)",
                                    placeholder="e.g. Check the afternoon count again.", check=self._hint_refusal),
                         self._hint)

    def _hint_refusal(self, text: str) -> str | None:
        """Why the hint cannot join the history now (one line), or None if it fits."""
        if self.phase not in ("running", "paused") or self.generation is None:
            return "no run takes hints now: it has ended or is ending"
        return refusal(self.layout, self.run_config.n_ctx, sum(self.queued_hints), self._hint_tokens(text), len(text))

    def _hint_tokens(self, text: str) -> int:
        """Tokens the hint takes in the cache, written as the engine writes a note."""
        return len(self.generation.model.tokenize(note_text(text)))

    def _hint(self, text: str | None) -> None:
        if text is None or self.generation is None:
            return
        self.queued_hints.append(self._hint_tokens(text))
        self.generation.add_note(text)
        self.notify("hint queued: it joins the history before the next pass"
                    + (" (after resume)" if self.phase == "paused" else ""), markup=False)

    def action_view_as(self) -> None:
        """Show exactly what a worker attends to, block by block."""
        if self._view() is None:
            self.notify("nothing to show yet: the run has not started", severity="warning")
            return
        self.push_screen(ViewAsScreen(self._view))

    def _view(self) -> tuple[Layout, BlockTexts] | None:
        """The current run's layout copy and block texts, for the view-as screen (None until both exist)."""
        return None if self.layout is None or self.texts is None else (self.layout, self.texts)

    def action_settings(self) -> None:
        """Edit the model and run settings (they apply to the next run)."""
        self.push_screen(SettingsScreen(Settings(self.model_spec, self.config)), self._settings)

    def _settings(self, settings: Settings | None) -> None:
        if settings is None:
            return
        self.model_spec, self.config = settings.model_spec, settings.config
        if self.phase in ACTIVE_PHASES:
            self.notify("the new settings apply to the next run")
        else:
            self.sub_title = self._describe(self.config)

    def action_save(self) -> None:
        """Ask where to write the events received so far (JSON lines), then write them."""
        default = Path(f"hogwild-{time.strftime('%Y%m%d-%H%M%S')}.jsonl")
        self.push_screen(TextDialog("Save transcript (JSON lines) to", str(default)),
                         lambda path: path and self._save(Path(path)))

    def _save(self, path: Path) -> None:
        try:
            path = path.expanduser()
            write_events(path, {"problem": self.run_problem}, self.events)
        except TranscriptError as err:  # one line naming the file and why
            self.notify(str(err), severity="error", markup=False)
            return
        except RuntimeError as err:  # "~nosuchuser/..." (no such home directory)
            self.notify(f"cannot write {path}: {err}", severity="error", markup=False)
            return
        self.notify(f"saved {len(self.events)} events to {path}", markup=False)

    async def action_quit(self) -> None:
        """Stop the run (the finisher ends it quickly) and leave."""
        self._stop_run()
        self.exit(0)

    # helpers ----------------------------------------------------------------------------------------

    def _describe(self, cfg: RunConfig, model: str | None = None) -> str:
        """The header's subtitle: model, workers, layout, budget, temperature, and thinking unless automatic."""
        layout = cfg.layout if cfg.method == "hogwild" else cfg.method
        think = "" if cfg.think == ThinkMode.AUTO else f" · thinking {cfg.think}"
        return (f"{model or self.model_spec or 'default model'} · {cfg.n_workers} workers · {layout}"
                f" · budget {cfg.budget} · T {cfg.sampling.temperature:g}{think}")


def run_tui(model_spec: str | None, problem: str | None, config: RunConfig, transcript: Path | None, *,
            placement: dict | None = None) -> int:
    """Run the TUI until the user quits; returns the exit code for the CLI.

    ``transcript``: every run appends its events there as they happen (as ``hogwild run --transcript``).
    ``placement``: where the model's layers go (:class:`ModelCache`), as for ``hogwild run``.
    """
    models = ModelCache(placement)
    app = HogwildApp(model_spec, problem, config, transcript, models=models)

    async def run_app() -> None:
        # before the terminal switches screens: a SIGTERM then ends the app (and restores the terminal)
        # instead of killing the process on the alternate screen with mouse tracking on
        loop = asyncio.get_running_loop()
        for sig in QUIT_SIGNALS:
            loop.add_signal_handler(sig, app.quit_on_signal, sig)
        await app.run_async()

    asyncio.run(run_app())
    app.release()
    return app.return_code or 0
