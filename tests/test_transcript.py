"""Transcripts as users meet them: real `hogwild run` subprocesses, real signals, a real second writer, files
the kernel refuses to write."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from hogwild_local.engine.events import StatsEvent, StepEvent, TokenEvent
from hogwild_local.engine.transcript import TranscriptError, TranscriptWriter, read_events, render_markdown, split_runs
from hogwild_local.models import resolve_model

HOGWILD = [sys.executable, "-m", "hogwild_local"]


@pytest.fixture(scope="module")
def smollm2_path() -> str:
    return str(resolve_model("smollm2-135m", progress=False))


def hogwild(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*HOGWILD, *args], capture_output=True, text=True, timeout=300)


def in_flight(records: list[dict]) -> dict[str, str]:
    """Each worker's text after its last finished step, rebuilt from the raw records."""
    texts: dict[str, str] = {}
    for rec in records:
        if rec["type"] == "token":
            texts[rec["worker"]] = texts.get(rec["worker"], "") + rec["text"]
        elif rec["type"] == "step":
            texts.pop(rec["worker"], None)
        elif rec["type"] == "cut":
            texts[rec["worker"]] = rec["text"]
    return {name: text.strip() for name, text in texts.items() if text.strip()}


def test_two_runs_in_one_file_are_two_sections(smollm2_path, tmp_path):
    """A second run appended to a file renders in its own section; the first run's unfinished steps stay in
    the first (they used to be glued to the second run's text). Without run ids (older files) the same."""
    transcript = tmp_path / "run.jsonl"
    for problem, budget in (("What is 7 * 6?", "12"), ("Name three colours.", "8")):
        out = hogwild("run", problem, "-m", smollm2_path, "-b", budget, "--threads", "2", "--transcript",
                      str(transcript))
        assert out.returncode == 0, out.stderr
    first, second = split_runs(read_events(transcript))
    assert first[0]["run"] != second[0]["run"] and all(rec["run"] == first[0]["run"] for rec in first)
    shown = hogwild("transcript", "show", str(transcript))
    assert shown.returncode == 0, shown.stderr
    _, one, two = shown.stdout.split("# Hogwild! run ")
    assert one.startswith("1 of 2: What is 7 * 6?") and two.startswith("2 of 2: Name three colours.")
    assert one.count("## Answer") == two.count("## Answer") == 1
    left = in_flight(first)
    assert left and all(f"{text} *(unfinished)*" in one and text not in two for text in left.values())

    legacy = tmp_path / "old.jsonl"  # as written before run ids: no run, pid or started fields
    legacy.write_text("".join(json.dumps({k: v for k, v in rec.items() if k not in ("run", "pid", "started")}) + "\n"
                              for rec in read_events(transcript)))
    assert render_markdown(legacy) == re.sub(r"\*Run `\w+`, started .*\*\n\n", "", render_markdown(transcript))


def test_sigkilled_run_shows_its_steps_in_flight(smollm2_path, tmp_path):
    """A run killed with SIGKILL keeps its lines; show marks the steps it was writing and says it did not end."""
    transcript = tmp_path / "killed.jsonl"
    proc = subprocess.Popen([*HOGWILD, "run", "Count to one thousand.", "-m", smollm2_path, "-b", "200",
                             "--threads", "2", "--transcript", str(transcript)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not transcript.exists() or sum(rec["type"] == "token" for rec in read_events(transcript)) < 8:
        assert proc.poll() is None and time.monotonic() < deadline, "the run ended before it wrote tokens"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    records = read_events(transcript)
    last_pass = max(rec["pass"] for rec in records if rec["type"] == "stats")
    assert not any(rec["type"] == "answer" for rec in records) and last_pass < 200
    shown = hogwild("transcript", "show", str(transcript))
    assert shown.returncode == 0, shown.stderr
    assert "## Steps in flight when the transcript ends" in shown.stdout
    left = in_flight(records)
    assert left and all(f"{text} *(unfinished)*" in shown.stdout for text in left.values())
    assert shown.stdout.rstrip().endswith(
        f"## This run did not finish\n\nThe transcript ends after pass {last_pass} of 200, with no answer: "
        "the run was killed or failed (or is still being written).")


HOLDER = textwrap.dedent("""
    import sys
    from hogwild_local.engine.transcript import TranscriptWriter
    writer = TranscriptWriter(sys.argv[1], {"problem": "held"})
    print("ready", flush=True)
    sys.stdin.read()  # hold the file until the test closes our stdin (or kills us)
""")


def test_a_second_writer_is_refused_while_another_process_writes(tmp_path):
    transcript = tmp_path / "run.jsonl"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(transcript)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "ready\n"
        before = transcript.read_bytes()
        with pytest.raises(TranscriptError) as refused:
            TranscriptWriter(transcript, {"problem": "second"})
        assert str(refused.value) == (f"{transcript} is being written by another run (pid {holder.pid}); "
                                      "choose another --transcript file")
        assert transcript.read_bytes() == before  # the refused writer wrote nothing
    finally:
        holder.kill()
        holder.wait(timeout=30)
    # the lock dies with its process, even a killed one; its run, which never started, says so
    with TranscriptWriter(transcript, {"problem": "after"}):
        pass
    shown = render_markdown(transcript)
    assert shown.count("The transcript ends before generation began, with no answer") == 2


@pytest.mark.parametrize("path, reason", [
    ("/proc/x.jsonl", "No such file or directory"),
    ("/sys/kernel/x.jsonl", "Permission denied"),
    ("/dev/full", "No space left on device"),
    ("", "Is a directory"),  # the test's tmp_path
])
def test_a_path_that_cannot_be_written_fails_at_once(path, reason, tmp_path):
    path = path or str(tmp_path)
    with pytest.raises(TranscriptError) as refused:
        TranscriptWriter(path, {"problem": "x"})
    assert str(refused.value) == f"cannot write the transcript {path}: {reason}"
    assert isinstance(refused.value, OSError)


FILLER = textwrap.dedent("""
    import os, resource, signal, sys
    from hogwild_local.engine.events import StatsEvent, StepEvent, TokenEvent
    from hogwild_local.engine.transcript import TranscriptError, TranscriptWriter
    writer = TranscriptWriter(sys.argv[1], {"problem": "x"})
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
    limit = os.path.getsize(sys.argv[1]) + 1000  # room for the first pass, not the long step of the second
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
    events = [TokenEvent("Alice", "**Alice [1]:** ", 1, forced=True), TokenEvent("Alice", "Six", 1),
              StatsEvent(1, 9, 1.0, {"Alice": 1.0}, 3, 99, 3, 0.1), TokenEvent("Alice", " sevens", 2),
              StepEvent("Alice", 1, "**Alice [1]:** Six sevens" + " are 42" * 200, 2)]
    for event in events:
        try:
            writer.write(event)
        except TranscriptError as err:
            print(err)
    writer.write(TokenEvent("Alice", "ignored", 3))  # quiet after its error: the run goes on
    writer.close()
""")


def test_a_write_that_fails_mid_run_raises_once_and_leaves_whole_lines(tmp_path):
    """The file may not grow (RLIMIT_FSIZE: as a full disk) while a long line is written: the part written
    is cut off, write raises one line once, and every line in the file is whole."""
    transcript = tmp_path / "run.jsonl"
    out = subprocess.run([sys.executable, "-c", FILLER, str(transcript)], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout == (f"cannot write the transcript {transcript}: File too large "
                          "(it ends here; the lines before are kept)\n")
    data = transcript.read_bytes()
    assert data.endswith(b"\n")
    kinds = [json.loads(line)["type"] for line in data.splitlines()]
    assert kinds == ["header", "token", "token", "stats", "token"]


def test_a_run_appended_after_a_torn_line_keeps_its_header(tmp_path):
    """A file that ends inside a line (an older version hit a full disk there) gets the next header on a line
    of its own."""
    transcript = tmp_path / "run.jsonl"
    with TranscriptWriter(transcript, {"problem": "first"}) as writer:
        writer.write(StepEvent("Alice", 1, "**Alice [1]:** One.", 1))
    torn = transcript.read_bytes() + b'{"run": "0", "type": "tok'
    transcript.write_bytes(torn)
    with TranscriptWriter(transcript, {"problem": "second"}) as writer:
        writer.write(TokenEvent("Alice", "**Alice [1]:** ", 1, forced=True))
        writer.write(StatsEvent(1, 9, 1.0, {"Alice": 1.0}, 3, 99, 3, 0.1))
    headers = [rec for rec in read_events(transcript) if rec["type"] == "header"]
    assert [rec["problem"] for rec in headers] == ["first", "second"]
    assert transcript.read_bytes().startswith(torn + b"\n")
