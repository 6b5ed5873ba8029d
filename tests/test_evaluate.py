"""`hogwild eval`: scoring, the resumable results file, the report and the plot, on SmolLM2-135M."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from hogwild_local.cli import main
from hogwild_local.engine.prompts import extract_boxed
from hogwild_local.measure.errors import EvalError
from hogwild_local.measure.eval import parse_budgets, parse_methods, parse_problems
from hogwild_local.measure.gsm8k import is_correct, load_problems, reference_answer
from hogwild_local.measure.report import paired_table
from hogwild_local.measure.results import settings_label
from hogwild_local.measure.stats import compare, summarize
from hogwild_local.models import resolve_model
from hogwild_local.native.install import LLAMA_CPP_PYTHON_VERSION

REPO = Path(__file__).resolve().parents[1]
DEV = REPO.parent / "shared" / "data" / "gsm8k" / "dev.jsonl"  # ../shared/data/gsm8k/dev.jsonl, if there
PROBLEMS = [
    {"question": "What is 2 + 3?", "answer": "2 + 3 = <<2+3=5>>5\n#### 5"},
    {"question": "A shop has 1,000 pens and sells none. How many pens does it have?", "answer": "#### 1,000"},
]
FAST = ["--threads", "1", "--ctx", "1024"]


# --------------------------------------------------------------------------------------------------
# no model


def test_reference_answer_and_scoring():
    assert reference_answer("She makes 9 * 2 = $<<9*2=18>>18.\n#### 18") == "18"
    assert reference_answer("#### 1,000") == "1,000"
    assert reference_answer("a #### b\n#### -3") == "-3"
    with pytest.raises(ValueError):
        reference_answer("no marker")
    # the engine hands over the content of \boxed{...}; scoring compares numbers
    assert is_correct(extract_boxed("so \\boxed{1000}"), reference_answer("#### 1,000"))
    assert is_correct("$1,000.00", "1,000")
    assert is_correct("18 \\text{ dollars}", "18")
    assert is_correct("-3", "-3") and not is_correct("3", "-3")
    assert not is_correct("999", "1,000")
    assert not is_correct(None, "5") and not is_correct("", "5") and not is_correct("five", "5")


def test_parse_methods_and_budgets():
    specs = parse_methods("single,hogwild-2,hogwild-3,hogwild-4,independent-2,self-consistency-2")
    assert [(s.name, s.method, s.workers) for s in specs] == [
        ("single", "single", 1), ("hogwild-2", "hogwild", 2), ("hogwild-3", "hogwild", 3),
        ("hogwild-4", "hogwild", 4), ("independent-2", "independent", 2),
        ("self-consistency-2", "self-consistency", 2)]
    assert [s.name for s in parse_methods("hogwild, single,hogwild-2", 2)] == ["hogwild-2", "single"]
    for bad in ("hogwild-9", "magic-2", "single-2", ""):
        with pytest.raises(EvalError):
            parse_methods(bad)
    assert parse_budgets("512,128,256,128") == (128, 256, 512)
    for bad in ("0,8", "x", ""):
        with pytest.raises(EvalError):
            parse_budgets(bad)
    assert parse_problems("5-7, 0,6") == [5, 6, 7, 0]
    for bad in ("7-5", "1-", "-2", "x", ""):
        with pytest.raises(EvalError):
            parse_problems(bad)


def test_load_problems(tmp_path):
    good = tmp_path / "good.jsonl"
    good.write_text("".join(json.dumps(p) + "\n" for p in PROBLEMS) + "\n")
    problems = load_problems(good)
    assert [(p.index, p.reference) for p in problems] == [(0, "5"), (1, "1,000")]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(PROBLEMS[0]) + "\n" + json.dumps({"question": "x", "answer": "7"}) + "\n")
    with pytest.raises(EvalError, match=r"bad.jsonl:2: not a GSM8K line"):
        load_problems(bad)


def test_summary_standard_error():
    def rec(method, correct):
        return {"method": method, "budgets": {"8": {"correct": correct, "tokens": 8, "wall_s": 1.0,
                                                    "source": "finisher"}}}
    rows = summarize([rec("single", True), rec("single", False), rec("single", True), rec("single", True),
                      rec("hogwild-2", False)])
    single = rows[0]
    assert (single.method, single.budget, single.n) == ("single", 8, 4)
    assert single.accuracy == pytest.approx(75.0)
    assert single.stderr == pytest.approx(100 * (0.75 * 0.25 / 4) ** 0.5)
    assert rows[1].accuracy == 0.0 and rows[1].stderr == 0.0


def test_usage_errors(tmp_path):
    runner = CliRunner()
    out = runner.invoke(main, ["eval"])
    assert out.exit_code == 2 and "DATASET" in out.output
    out = runner.invoke(main, ["eval", "x.jsonl", "--methods", "magic-2"])
    assert out.exit_code == 2 and "--methods" in out.output
    out = runner.invoke(main, ["eval", str(tmp_path / "missing.jsonl")])
    assert out.exit_code == 1 and "cannot read" in out.output


def test_gsm8k_without_network_is_one_line(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    out = subprocess.run([sys.executable, "-m", "hogwild_local", "eval", "--dataset", "gsm8k"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1, out.stderr
    assert out.stderr.startswith("Error: cannot fetch GSM8K") and len(out.stderr.strip().splitlines()) == 1


# --------------------------------------------------------------------------------------------------
# SmolLM2-135M, 2 problems, single + hogwild-2, budgets 8 and 16


@pytest.fixture(scope="module")
def smollm2_path() -> str:
    return str(resolve_model("smollm2-135m", progress=False))


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, smollm2_path):
    root = tmp_path_factory.mktemp("eval")
    data = root / "tiny.jsonl"
    data.write_text("".join(json.dumps(p) + "\n" for p in PROBLEMS))
    args = ["eval", str(data), "-m", smollm2_path, "--methods", "single,hogwild-2", "--budgets", "16,8",
            "--results", str(root / "results.jsonl"), "--transcripts", str(root / "tr"), *FAST]
    out = CliRunner().invoke(main, [*args, "--plot", str(root / "first.png")])
    assert out.exit_code == 0, out.output
    return root, args, out.output


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_results_file(evaluated, smollm2_path):
    root, _, output = evaluated
    recs = records(root / "results.jsonl")
    header, results = recs[0], recs[1:]
    assert header["type"] == "header" and header["budgets"] == [8, 16] and header["methods"] == ["single", "hogwild-2"]
    assert header["model"]["path"] == smollm2_path and len(header["model"]["sha256"]) == 64
    assert header["model"]["size_bytes"] == Path(smollm2_path).stat().st_size
    assert header["seed"] == 0 and header["machine"]["cores"] and header["date"]
    assert header["backend"]["system_info"].startswith("CPU :")
    assert header["backend"]["version"] == LLAMA_CPP_PYTHON_VERSION
    assert [(r["index"], r["method"]) for r in results] == [(0, "single"), (0, "hogwild-2"), (1, "single"),
                                                            (1, "hogwild-2")]
    for r in results:
        assert r["reference"] == ["5", "1,000"][r["index"]]
        assert set(r["budgets"]) == {"8", "16"}
        b8, b16 = r["budgets"]["8"], r["budgets"]["16"]
        workers = 2 if r["method"] == "hogwild-2" else 1
        assert 0 < b8["tokens"] <= b16["tokens"] <= 16 * workers
        # not monotonic: the 8-pass time includes its own finisher, the 16-pass one not if a worker answered
        assert b8["wall_s"] > 0 and b16["wall_s"] > 0
        for item in (b8, b16):
            assert item["correct"] == is_correct(item["answer"], r["reference"])
            assert item["source"] in ("finisher", "answer", "vote")
        if r["final"]["reason"] != "answer":  # the 16-pass answer is the run's final answer
            assert b16["answer"] == r["final"]["answer"]
    # one transcript per run, each a complete run
    names = sorted(p.name for p in (root / "tr").iterdir())
    assert names == ["0000-hogwild-2.jsonl", "0000-single.jsonl", "0001-hogwild-2.jsonl", "0001-single.jsonl"]
    for name in names:
        lines = records(root / "tr" / name)
        assert lines[0]["type"] == "header" and lines[-1]["type"] == "answer"
        assert sum(1 for x in lines if x["type"] == "snapshot") <= 1
    assert (root / "first.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| hogwild-2 | 16 |" in output


def test_rerun_does_nothing_new(evaluated):
    root, args, _ = evaluated
    before = (root / "results.jsonl").read_bytes()
    out = CliRunner().invoke(main, args)
    assert out.exit_code == 0, out.output
    assert "all 4 runs are done already" in out.output
    assert (root / "results.jsonl").read_bytes() == before


def test_resume_after_a_crash(evaluated, tmp_path):
    root, args, _ = evaluated
    results = tmp_path / "results.jsonl"
    lines = (root / "results.jsonl").read_text().splitlines()
    # the last run was lost and the line before it cut in half
    results.write_text("\n".join(lines[:3]) + "\n" + lines[3][:40])
    out = CliRunner().invoke(main, [*args[:args.index("--results")], "--results", str(results), *FAST])
    assert out.exit_code == 0, out.output
    recs = [json.loads(x) for x in results.read_text().splitlines()[4:]]
    assert [r["type"] for r in recs] == ["header", "result", "result"]
    assert {(r["index"], r["method"]) for r in recs[1:]} == {(1, "single"), (1, "hogwild-2")}


def test_resume_refuses_other_settings(evaluated):
    root, args, _ = evaluated
    before = (root / "results.jsonl").read_bytes()
    out = CliRunner().invoke(main, [*args, "--seed", "7"])
    assert out.exit_code == 1
    assert "holds results with another seed" in out.output and len(out.output.strip().splitlines()) == 1
    assert (root / "results.jsonl").read_bytes() == before


@pytest.mark.parametrize("key", ["check_repeats", "end_at_headers", "drop_repeats", "bar_headers"])
def test_resume_refuses_a_remedy_but_reads_older_files(evaluated, tmp_path, key):
    root, args, _ = evaluated
    out = CliRunner().invoke(main, [*args, "--" + key.replace("_", "-")])
    assert out.exit_code == 1 and f"holds results with another {key} (False vs now True)" in out.output
    # a file written before the setting existed counts as off
    older = tmp_path / "older.jsonl"
    lines = [json.loads(x) for x in (root / "results.jsonl").read_text().splitlines()]
    for record in lines:
        record.pop(key, None)
        for setting in ("dry_multiplier", "dry_base", "dry_allowed_length", "dry_last_n"):  # added later too
            record.get("sampling", {}).pop(setting, None)
    older.write_text("".join(json.dumps(r) + "\n" for r in lines))
    out = CliRunner().invoke(main, [*args[:args.index("--results")], "--results", str(older), *FAST])
    assert out.exit_code == 0 and "all 4 runs are done already" in out.output, out.output


def test_report_and_plot(evaluated, tmp_path):
    root, _, _ = evaluated
    png = tmp_path / "plot.png"
    out = CliRunner().invoke(main, ["eval", "--report", str(root / "results.jsonl"), "--plot", str(png)])
    assert out.exit_code == 0, out.output
    rows = re.findall(r"^\| (single|hogwild-2) \| (\d+) \| ([\d.]+) ± ([\d.]+) \| (\d+) \|", out.output, re.M)
    assert [(m, b, n) for m, b, _, _, n in rows] == [("single", "8", "2"), ("single", "16", "2"),
                                                     ("hogwild-2", "8", "2"), ("hogwild-2", "16", "2")]
    for _, _, accuracy, stderr, _ in rows:
        assert 0 <= float(accuracy) <= 100 and 0 <= float(stderr) <= 50
    assert "smollm2-135m" in out.output
    paired = re.findall(r"^\| hogwild-2 \| single \| (\d+) \| [+-][\d.]+ ± [\d.]+ \| 2 \|", out.output, re.M)
    assert paired == ["8", "16"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.skipif(not DEV.exists(), reason="../shared/data/gsm8k/dev.jsonl is not here")
def test_dev_slice(smollm2_path, tmp_path):
    """The first problems, then one of them again with --problems: it keeps its index, hence its seed, and
    the same build samples the same run again."""
    results = tmp_path / "dev.jsonl"
    out = CliRunner().invoke(main, ["eval", str(DEV), "--limit", "2", "-m", smollm2_path, "--methods", "single",
                                    "--budgets", "8", "--results", str(results), "--transcripts",
                                    str(tmp_path / "first"), *FAST])
    assert out.exit_code == 0, out.output
    recs = records(results)
    assert [(r["index"], r["reference"]) for r in recs[1:]] == [(0, "18"), (1, "3")]
    assert "| single | 8 |" in out.output

    again = tmp_path / "again.jsonl"
    out = CliRunner().invoke(main, ["eval", str(DEV), "--problems", "1", "-m", smollm2_path, "--methods", "single",
                                    "--budgets", "8", "--results", str(again), "--transcripts",
                                    str(tmp_path / "again"), *FAST])
    assert out.exit_code == 0, out.output
    [rerun] = records(again)[1:]
    assert rerun["index"] == 1 and rerun["budgets"]["8"]["answer"] == recs[2]["budgets"]["8"]["answer"]
    assert rerun["final"]["tokens"] == recs[2]["final"]["tokens"]

    def sampled(folder: str) -> str:
        return "".join(e["text"] for e in records(tmp_path / folder / "0001-single.jsonl") if e.get("type") == "token")

    assert sampled("again") and sampled("again") == sampled("first")  # the same seed samples the same text

    out = CliRunner().invoke(main, ["eval", str(DEV), "--problems", "150-250", "-m", smollm2_path])
    assert out.exit_code == 2 and "--problems" in out.output
    assert "problem 200 and up" in out.output and "has problems 0-199" in out.output


def test_report_puts_files_with_other_settings_side_by_side(evaluated, tmp_path):
    """A second file written with DRY on (here: the same results, its header edited) shows up as its own
    methods, named by the setting that differs; --limit keeps the first problems only."""
    root, _, _ = evaluated
    lines = records(root / "results.jsonl")
    lines[0]["sampling"]["dry_multiplier"] = 0.8
    other = tmp_path / "dry.jsonl"
    other.write_text("".join(json.dumps(r) + "\n" for r in lines))
    out = CliRunner().invoke(main, ["eval", "--report", str(root / "results.jsonl"), "--report", str(other),
                                    "--limit", "1"])
    assert out.exit_code == 0, out.output
    rows = re.findall(r"^\| ([^|]+?) \| (\d+) \| [\d.]+ ± [\d.]+ \| (\d+) \|", out.output, re.M)
    assert [m for m, b, _ in rows if b == "8"] == ["single", "hogwild-2", "single dry_multiplier=0.8",
                                                  "hogwild-2 dry_multiplier=0.8"]
    assert {n for _, _, n in rows} == {"1"} and "- 1 problems, 4 runs" in out.output
    # paired: each method with single of the same settings, and each method across the two settings
    paired = re.findall(r"^\| ([^|]+?) \| ([^|]+?) \| 8 \| ", out.output.split("Paired")[1], re.M)
    assert paired == [("hogwild-2", "single"), ("hogwild-2 dry_multiplier=0.8", "single dry_multiplier=0.8"),
                      ("single dry_multiplier=0.8", "single"), ("hogwild-2 dry_multiplier=0.8", "hogwild-2")]
    # the same results under another name: no difference across the settings
    assert re.search(r"^\| single dry_multiplier=0.8 \| single \| 8 \| \+0.0 ± 0.0 \| 1 \| 0 \| 0 \|", out.output, re.M)


def test_settings_label_names_each_change_once(evaluated):
    """Another --seed changes the header's seed and the sampler's: the label says it once."""
    root, _, _ = evaluated
    first = records(root / "results.jsonl")[0]
    other = json.loads(json.dumps(first))
    other["seed"] = other["sampling"]["seed"] = 1000
    assert settings_label(first, other) == "seed=1000"
    other["sampling"]["temperature"] = 0.9
    assert settings_label(first, other) == "seed=1000 temperature=0.9"


def test_report_keeps_a_rerun_with_the_same_settings_apart(evaluated, tmp_path):
    """A second file with the same settings (a re-run of some problems; here problem 1's hogwild-2 line,
    its answer at 8 passes made wrong) is named by its file name and paired with the first, not pooled."""
    root, _, _ = evaluated
    lines = records(root / "results.jsonl")
    rerun = next(r for r in lines[1:] if r["index"] == 1 and r["method"] == "hogwild-2")
    first_correct = rerun["budgets"]["8"]["correct"]
    rerun["budgets"]["8"]["correct"] = False
    path = tmp_path / "rerun.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ({**lines[0], "methods": ["hogwild-2"]}, rerun)))
    out = CliRunner().invoke(main, ["eval", "--report", str(root / "results.jsonl"), "--report", str(path)])
    assert out.exit_code == 0, out.output
    rows = re.findall(r"^\| ([^|]+?) \| 8 \| [\d.]+ ± [\d.]+ \| (\d+) \|", out.output, re.M)
    assert rows == [("single", "2"), ("hogwild-2", "2"), ("hogwild-2 rerun", "1")]
    diff = "-100.0 ± 0.0 | 1 | 0 | 1" if first_correct else "+0.0 ± 0.0 | 1 | 0 | 0"
    assert f"| hogwild-2 rerun | hogwild-2 | 8 | {diff} |" in out.output
    # a file without the first method is also paired with the first file's (single), on its problems only
    assert re.search(r"^\| hogwild-2 rerun \| single \| 8 \| [-+][\d.]+ ± [\d.]+ \| 1 \|", out.output, re.M)
    # --problems: the table of the chosen problems only
    out = CliRunner().invoke(main, ["eval", "--report", str(root / "results.jsonl"), "--problems", "1"])
    assert out.exit_code == 0 and "- 1 problems, 2 runs" in out.output, out.output


def test_paired_comparison_counts_problem_by_problem():
    def result(index, method, correct):
        return {"index": index, "method": method, "budgets": {"8": {"correct": correct}}}

    outcomes = {"single": [True, True, False, False, True], "hogwild-2": [True, False, True, True]}  # 4 shared
    results = {(i, m): result(i, m, c) for m, cs in outcomes.items() for i, c in enumerate(cs)}
    [row] = compare(results, [("hogwild-2", "single")])
    # differences per shared problem: 0, -1, +1, +1 -> mean 0.25, sample sd 0.957, s.e. 0.479
    assert (row.method, row.baseline, row.budget, row.n) == ("hogwild-2", "single", 8, 4)
    assert (row.only_method, row.only_baseline) == (2, 1)
    assert row.difference == pytest.approx(25.0) and row.stderr == pytest.approx(47.87, abs=0.01)
    assert "| hogwild-2 | single | 8 | +25.0 ± 47.9 | 4 | 2 | 1 |" in paired_table([row])
