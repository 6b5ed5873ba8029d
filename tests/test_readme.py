"""The README's Python example, run as a user would paste it (on SmolLM2, with a small budget)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_example() -> str:
    """The ```python block of the README's "From Python" section."""
    section = README.read_text().split("From Python:", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "README.md: no ```python block after 'From Python:'"
    return match.group(1)


def test_readme_example_runs_and_answers():
    code = readme_example()
    # the same program on the smallest model of the manifest, 8 passes: the example's own values must be there
    for old, new in (('"qwen2.5-coder-1.5b-instruct"', '"smollm2-135m"'), ("budget=512", "budget=8")):
        assert old in code, f"README example changed: {old} not found; update this test"
        code = code.replace(old, new)

    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)

    assert done.returncode == 0, done.stderr[-2000:]
    answer = [line for line in done.stdout.splitlines() if line.startswith("answer:")]
    assert len(answer) == 1, done.stdout[-2000:]
    # "answer: <answer or None> (<end reason>, <n> passes)": 8 passes spent, or fewer when a worker answered
    match = re.fullmatch(r"answer: .* \((\w+), (\d+) passes\)", answer[0])
    assert match, answer[0]
    assert match.group(1) in ("budget", "answer", "eos") and int(match.group(2)) <= 8, answer[0]
