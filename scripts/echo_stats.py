"""How often workers repeat each other: step statistics of `hogwild eval --transcripts DIR` transcripts.

For every transcript of a multi-worker method: finished steps, steps whose text (after the forced
"**Name [k]:**" header, whitespace collapsed) equals an earlier finished step's text, and steps in which a
worker writes another step header or a section header of the view itself (it imitates the layout).

    .venv/bin/python scripts/echo_stats.py /path/to/transcripts [--method hogwild-2]
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from hogwild_local.transcript import read_events

HEADER = re.compile(r"^\*\*\w+ \[\d+\]:\*\*\s*")
FORGED = re.compile(r"\*\*\w+ \[\d+\]:\*\*|^#{2,3} ", re.MULTILINE)


def step_texts(path: Path) -> list[str]:
    """The finished steps of one transcript, in completion order, without their forced header."""
    return [HEADER.sub("", record["text"].strip()) for record in read_events(path) if record.get("type") == "step"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--method", default="hogwild-2", help="transcript name suffix, e.g. hogwild-2")
    args = parser.parse_args()

    total = repeated = forged = 0
    print("| problem | steps | repeats an earlier step | writes a header inside |")
    print("|--:|--:|--:|--:|")
    for path in sorted(args.folder.glob(f"*-{args.method}.jsonl")):
        steps = step_texts(path)
        seen: set[str] = set()
        n_repeated = 0
        for text in steps:
            key = " ".join(text.split())
            n_repeated += key in seen
            seen.add(key)
        n_forged = sum(bool(FORGED.search(text)) for text in steps)
        print(f"| {path.name.split('-')[0]} | {len(steps)} | {n_repeated} | {n_forged} |")
        total, repeated, forged = total + len(steps), repeated + n_repeated, forged + n_forged
    print(f"| all | {total} | {repeated} | {forged} |")


if __name__ == "__main__":
    main()
