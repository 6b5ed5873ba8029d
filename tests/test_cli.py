"""The `hogwild` command as a user runs it: real subprocesses, real model, exit codes and JSON output."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys

import pytest

from hogwild_local.models import resolve_model

HOGWILD = [sys.executable, "-m", "hogwild_local"]


@pytest.fixture(scope="module")
def smollm2_path() -> str:
    return str(resolve_model("smollm2-135m", progress=False))


def hogwild(*args: str, stdin: str | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([*HOGWILD, *args], input=stdin, capture_output=True, text=True, timeout=timeout)


def test_json_stream(smollm2_path, tmp_path):
    transcript = tmp_path / "run.jsonl"
    out = hogwild("run", "What is 7 * 6?", "-m", smollm2_path, "-w", "2", "-b", "12", "--threads", "2",
                  "--dry", "0.3", "--json", "--transcript", str(transcript))
    assert out.returncode == 0, out.stderr
    events = [json.loads(line) for line in out.stdout.splitlines()]
    assert events[0]["type"] == "start" and events[0]["config"]["sampling"]["dry_multiplier"] == 0.3
    kinds = {e["type"] for e in events}
    assert {"start", "token", "stats", "answer"} <= kinds
    assert {e["worker"] for e in events if e["type"] == "token"} == {"Alice", "Bob"}
    stats = [e for e in events if e["type"] == "stats"]
    assert [s["pass"] for s in stats] == list(range(1, 13))
    assert all(s["cells_used"] == s["tokens_written"] and s["cells_total"] >= s["cells_used"] for s in stats)
    assert all(isinstance(s["tokens_per_s"], float) for s in stats)
    assert events[-1]["type"] == "answer" and events[-1]["reason"] == "budget"
    # the transcript holds the same run, and renders
    records = [json.loads(line) for line in transcript.read_text().splitlines()]
    assert records[0]["type"] == "header" and records[-1]["type"] == "answer"
    shown = hogwild("transcript", "show", str(transcript))
    assert shown.returncode == 0 and "## Answer" in shown.stdout


def test_a_text_answer_is_prose_streamed_as_it_is_written(smollm2_path):
    out = hogwild("run", "Write a haiku about caches", "-m", smollm2_path, "-b", "16", "--threads", "2",
                  "--answer", "text", "--answer-tokens", "24", "--json")
    assert out.returncode == 0, out.stderr
    events = [json.loads(line) for line in out.stdout.splitlines()]
    assert events[0]["config"]["answer"] == "text" and events[0]["config"]["finisher_tokens"] == 24
    end = events[-1]
    assert end["type"] == "answer" and end["reason"] == "budget"
    assert end["answer"] and "\\boxed" not in end["answer"] and end["finisher_prompt"].endswith("final answer.\n\n")
    streamed = "".join(e["text"] for e in events if e["type"] == "answer_text")
    assert streamed and end["answer"].startswith(streamed)
    plain = hogwild("run", "Write a haiku about caches", "-m", smollm2_path, "-b", "16", "--threads", "2",
                    "--answer", "text", "--answer-tokens", "24")
    assert plain.returncode == 0 and f"Final answer: {end['answer']}" in plain.stdout  # the same greedy finisher


def test_dropped_steps_in_the_stream_and_the_transcript(smollm2_path, tmp_path):
    """Greedy SmolLM2-135M repeats its steps; --drop-repeats reports each dropped step as a "cut" event,
    and `transcript show` says so where it happened."""
    transcript = tmp_path / "run.jsonl"
    out = hogwild("run", "Natalia sold 48 clips in April and half as many in May. How many in all?",
                  "-m", smollm2_path, "-b", "96", "-t", "0", "--threads", "2", "--drop-repeats",
                  "--json", "--transcript", str(transcript))
    assert out.returncode == 0, out.stderr
    cuts = [e for e in map(json.loads, out.stdout.splitlines()) if e["type"] == "cut"]
    assert cuts and all(e["reason"] == "repeat" and e["text"] == "" for e in cuts)
    shown = hogwild("transcript", "show", str(transcript)).stdout
    assert shown.count("word for word and was dropped") == len(cuts)


def test_printer_forgets_a_cut_header(capsys):
    from hogwild_local.cli.printer import Printer

    printer = Printer(colour=False)
    printer.token("Bob", "**Bob [2]:** 80 + 50 = 130 **Alice [")
    printer.cut("Bob", "**Bob [2]:** 80 + 50 = 130 \n\n")
    assert printer.buffers["Bob"] == "**Bob [2]:** 80 + 50 = 130 "
    printer.token("Alice", "no\n\n**Alice [")
    printer.cut("Alice", "no\n\n")  # the kept line was shown already
    assert printer.buffers["Alice"] == ""
    printer.token("Alice", "**Alice [3]:** Same again.")
    printer.cut("Alice", "")
    assert printer.buffers["Alice"] == ""
    assert capsys.readouterr().out.splitlines()[-1] == (
        " Alice | (the step above repeated an earlier one word for word: dropped)")


def test_problem_from_stdin_and_plain_output(smollm2_path):
    out = hogwild("run", "-", "-m", smollm2_path, "-b", "6", "--threads", "2", stdin="What is 2 + 2?")
    assert out.returncode == 0, out.stderr
    assert "Alice |" in out.stdout and "Final answer:" in out.stdout


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["run", "x", "-m", "no-such-model"], 1, "Error: unknown model 'no-such-model'; try: hogwild models list"),
        (["run", "x", "-m", "/does/not/exist.gguf"], 1, "Error: model file not found: /does/not/exist.gguf"),
        (["run", "x", "--workers", "9"], 2, "9 is not in the range 1<=x<=8"),
        (["run"], 2, "give a PROBLEM"),
        (["run", "x", "--temperature", "-1"], 2, "-1.0 is not in the range x>=0"),
        (["run", "x", "--top-p", "2"], 2, "2.0 is not in the range 0<x<=1"),
        (["run", "x", "--top-k", "-5"], 2, "-5 is not in the range x>=0"),
        (["run", "x", "--repeat-penalty", "0"], 2, "0.0 is not in the range x>0"),
        (["run", "x", "--min-p", "1.5"], 2, "1.5 is not in the range 0<=x<=1"),
        (["run", "x", "--method", "single", "-w", "3"], 2, "--method single runs one worker; leave out --workers"),
        (["bench", "--workers", "9"], 2, "at most 8 workers (one name each), got 9"),
        (["run", "x", "--transcript", "/proc/x.jsonl"], 1,
         "Error: cannot write the transcript /proc/x.jsonl: No such file or directory"),
        (["run", "x", "--transcript", "/dev/full"], 1, "Error: cannot write the transcript /dev/full: No space left"),
    ],
)
def test_errors_are_one_line(args, code, message):
    out = hogwild(*args)
    assert out.returncode == code
    assert message in out.stderr
    assert "Traceback" not in out.stderr


def test_problem_that_is_not_utf8_is_a_usage_error(smollm2_path):
    problem = b"What is 2+2? \xff".decode("utf-8", "surrogateescape")
    argv = subprocess.run([*HOGWILD, "run", problem, "-m", smollm2_path], capture_output=True, text=True)
    assert argv.returncode == 2 and "Traceback" not in argv.stderr
    assert "PROBLEM is not UTF-8 text (byte 0xff at character 13)" in argv.stderr
    stdin = subprocess.run([*HOGWILD, "run", "-", "-m", smollm2_path], input=b"caf\xe9?", capture_output=True)
    assert stdin.returncode == 2 and b"Traceback" not in stdin.stderr
    assert b"the problem on stdin is not UTF-8 text (byte 0xe9 at offset 3)" in stdin.stderr


def test_single_method_records_one_worker(smollm2_path):
    out = hogwild("run", "What is 2+2?", "-m", smollm2_path, "--method", "single", "-b", "2", "--threads", "2",
                  "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.splitlines()[0])["config"]["workers"] == 1


def test_a_rounded_context_is_stated_and_the_step_limit_reaches_the_engine(smollm2_path):
    out = hogwild("run", "What is 2+2?", "-m", smollm2_path, "--ctx", "600", "--step-limit", "40", "-b", "2",
                  "--threads", "2", "--json")
    assert out.returncode == 0, out.stderr
    start = json.loads(out.stdout.splitlines()[0])
    assert start["cells_total"] == 768 and start["config"]["step_limit"] == 40
    plain = hogwild("run", "What is 2+2?", "-m", smollm2_path, "--ctx", "600", "-b", "2", "--threads", "2")
    assert "(the cache holds 768 cells: llama.cpp rounds --ctx 600 up)" in plain.stderr.splitlines()


def test_bench_refuses_what_the_engine_refuses(tmp_path):
    from tiny_gguf import write_tiny_mamba

    out = hogwild("bench", "-m", str(write_tiny_mamba(tmp_path / "mamba.gguf")), "--workers", "1", "--passes", "2")
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert out.stderr.strip().endswith(
        "Error: mamba: recurrent or hybrid memory cannot share a KV cache between workers")


def test_ctrl_c_while_the_model_loads_quits(smollm2_path):
    """A SIGINT that lands in llama.cpp's log callback during the load must not be swallowed by ctypes."""
    proc = subprocess.Popen([*HOGWILD, "run", "What is 2+2?", "-m", smollm2_path, "-b", "64", "--threads", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "HOGWILD_VERBOSE": "1"})
    for line in proc.stderr:  # the loader logs as it goes: interrupt in the middle of it
        if "llama_model_loader" in line:
            break
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "Final answer" not in out and "Exception ignored" not in err


def test_a_transcript_that_fails_mid_run_is_one_line_and_the_answer_still_comes(smollm2_path, tmp_path):
    """RLIMIT_FSIZE makes writes past 6 kB fail (EFBIG; Python ignores SIGXFSZ), like a disk that fills up."""
    import resource

    transcript = tmp_path / "t.jsonl"
    out = subprocess.run([*HOGWILD, "run", "Count to one hundred.", "-m", smollm2_path, "-b", "60", "--threads", "2",
                          "--no-color", "--transcript", str(transcript)], capture_output=True, text=True,
                         preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (6000, 6000)))
    assert out.returncode == 1 and "Traceback" not in out.stderr
    errors = [line for line in out.stderr.splitlines() if line.startswith("Error:")]
    assert errors == [f"Error: cannot write the transcript {transcript}: File too large (it ends here; the lines "
                      "before are kept)"]
    assert "Final answer:" in out.stdout


def test_corrupt_gguf(tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + b"\xff" * 100)
    out = hogwild("run", "x", "-m", str(bad))
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert out.stderr.startswith("Error: ") and len(out.stderr.strip().splitlines()) == 1


def test_transcript_show_refuses_other_files(tmp_path):
    notes = tmp_path / "notes.jsonl"
    notes.write_text('{"a": 1}\nnot json\n')
    out = hogwild("transcript", "show", str(notes))
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr.strip() == f"Error: {notes}: not a hogwild transcript (no run starts in it)"


def test_prompt_longer_than_context(smollm2_path):
    out = hogwild("run", "word " * 500, "-m", smollm2_path, "--ctx", "256", "--threads", "2")
    assert out.returncode == 1
    assert "does not fit the context (256); use a larger --ctx" in out.stderr


@pytest.mark.parametrize("stop, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_or_sigterm_stops_with_an_answer(smollm2_path, tmp_path, stop, code):
    """The first Ctrl-C or SIGTERM stops after the pass; the finisher still answers, into the transcript too."""
    transcript = tmp_path / "t.jsonl"
    proc = subprocess.Popen([*HOGWILD, "run", "Count to one thousand.", "-m", smollm2_path, "-b", "5000",
                             "--threads", "2", "--json", "--transcript", str(transcript)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # wait until tokens flow, then interrupt like a terminal would
    for line in proc.stdout:
        event = json.loads(line)
        if event["type"] == "stats" and event["pass"] >= 5:
            break
    proc.send_signal(stop)
    rest, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    answer = json.loads(rest.strip().splitlines()[-1])
    assert answer["type"] == "answer" and answer["reason"] == "stopped"
    assert json.loads(transcript.read_text().splitlines()[-1])["type"] == "answer"


def test_doctor_reports_the_patched_library(smollm2_path):
    out = hogwild("doctor", "-m", smollm2_path, "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    report = json.loads(out.stdout)
    assert report["library"]["patched"] is True and report["model"]["ok"] is True


def registry_paths() -> list[tuple[str, ...]]:
    """Every command of the registry as typed after `hogwild`, the groups' sub-commands included."""
    import click

    from hogwild_local.cli.app import COMMANDS

    def walk(command: click.Command, path: tuple[str, ...]) -> list[tuple[str, ...]]:
        subs = command.commands.values() if isinstance(command, click.Group) else ()
        return [path] + [p for sub in subs for p in walk(sub, (*path, sub.name))]

    return [p for command in COMMANDS for p in walk(command, (command.name,))]


def test_top_level_help_lists_exactly_the_registry():
    """A command that vanished (what `except ImportError` used to hide) fails here."""
    from hogwild_local.cli.app import COMMANDS

    out = hogwild("--help")
    assert out.returncode == 0
    listed = out.stdout.split("Commands:\n", 1)[1].splitlines()
    assert sorted(line.split()[0] for line in listed if line.strip()) == sorted(c.name for c in COMMANDS)


@pytest.mark.parametrize("path", registry_paths(), ids=" ".join)
def test_help_teaches_by_example(path):
    out = hogwild(*path, "--help")
    assert out.returncode == 0, out.stderr
    # `python -m hogwild_local` is how these tests call `hogwild`
    assert re.match(rf"Usage: python -m hogwild_local {re.escape(' '.join(path))} ", out.stdout), out.stdout[:200]
    assert re.search(r"^\s*Examples?:", out.stdout, re.M), out.stdout


def option_help(text: str, option: str) -> str:
    """The help text of ``option`` in a --help page (its lines joined), or "" if absent."""
    match = re.search(rf"^  {re.escape(option)}\b.*?(?=^  -|\Z)", text, re.M | re.S)
    return " ".join(match.group(0).split()) if match else ""


def test_commands_share_their_model_options():
    """run, tui, eval and bench take the model options from one place: same flags, same help text (bench's
    -ngl defaults to every layer where the library offloads: only its default differs)."""
    pages = {name: hogwild(name, "--help").stdout for name in ("run", "tui", "eval", "bench")}
    for option, names in (("-m, --model", pages), ("--threads", pages), ("--cache-type", pages),
                          ("--ctx", ("run", "tui", "eval")), ("-ngl, --gpu-layers", ("run", "tui", "eval"))):
        texts = {name: option_help(pages[name], option) for name in names}
        assert all(texts.values()), f"{option} missing: {texts}"
        assert len(set(texts.values())) == 1, texts
    ngl = {name: option_help(page, "-ngl, --gpu-layers") for name, page in pages.items()}
    assert ngl["bench"].startswith(ngl["run"].split("[default:")[0]), ngl
    assert "[default: (-1 if the library has GPU offload, else 0)]" in ngl["bench"], ngl["bench"]
    # eval runs a grid of methods and budgets: the single-run options are not its own
    for option in ("-w, --workers", "-b, --budget", "--method"):
        assert option_help(pages["run"], option) and not option_help(pages["eval"], option), option
