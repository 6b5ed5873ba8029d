"""How often workers repeat each other: step statistics of `hogwild eval --transcripts DIR` transcripts.

For every transcript of a multi-worker method: finished steps, steps whose text (after the forced
"**Name [k]:**" header, whitespace collapsed) equals an earlier finished step's text, and steps in which a
worker writes another step header or a section header of the view itself (it imitates the layout);
with --drop-repeats / --end-at-headers, also the steps dropped and the forged headers cut.

    .venv/bin/python scripts/echo_stats.py /path/to/transcripts [--method hogwild-2]
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from hogwild_local.engine.prompts import STEP_HEADER
from hogwild_local.engine.transcript import read_events

FORGED = re.compile(r"\*\*\w+ \[\d+\]:\*\*|^#{2,3} ", re.MULTILINE)


def step_texts(records: list[dict]) -> list[str]:
    """The finished steps of one transcript, in completion order, without their forced header."""
    return [STEP_HEADER.sub("", record["text"].strip()) for record in records if record.get("type") == "step"]


def cuts(records: list[dict], reason: str) -> int:
    """How many times the engine cut a step for ``reason`` (repeat, header)."""
    return sum(record.get("type") == "cut" and record.get("reason") == reason for record in records)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--method", default="hogwild-2", help="transcript name suffix, e.g. hogwild-2")
    args = parser.parse_args()

    total = repeated = forged = dropped = cut = 0
    print("| problem | steps | repeats an earlier step | writes a header inside | dropped repeats | headers cut |")
    print("|--:|--:|--:|--:|--:|--:|")
    for path in sorted(args.folder.glob(f"*-{args.method}.jsonl")):
        records = read_events(path)
        steps = step_texts(records)
        seen: set[str] = set()
        n_repeated = 0
        for text in steps:
            key = " ".join(text.split())
            n_repeated += key in seen
            seen.add(key)
        n_forged = sum(bool(FORGED.search(text)) for text in steps)
        n_dropped, n_cut = cuts(records, "repeat"), cuts(records, "header")
        print(f"| {path.name.split('-')[0]} | {len(steps)} | {n_repeated} | {n_forged} | {n_dropped} | {n_cut} |")
        total, repeated, forged = total + len(steps), repeated + n_repeated, forged + n_forged
        dropped, cut = dropped + n_dropped, cut + n_cut
    print(f"| all | {total} | {repeated} | {forged} | {dropped} | {cut} |")


if __name__ == "__main__":
    main()
