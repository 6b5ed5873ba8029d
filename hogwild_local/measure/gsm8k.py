"""GSM8K-style problems: reading a data file (or fetching the public test split) and scoring an answer.

A line holds ``question`` and ``answer``; the reference is the text after the answer's last ``#### ``, and an
answer is right when it is the same number after ``engine.prompts.normalize_number``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..engine.prompts import normalize_number
from .errors import EvalError

GSM8K_REPO, GSM8K_CONFIG = "openai/gsm8k", "main"


@dataclass(frozen=True)
class Problem:
    """One problem of a data file; ``index`` (0-based line order) also picks its seed."""

    index: int
    question: str
    reference: str


def reference_answer(solution: str) -> str:
    """The reference answer of a GSM8K solution: the text after the last ``#### ``."""
    if "####" not in solution:
        raise ValueError("no '####' line in the answer")
    return solution.rsplit("####", 1)[1].strip()


def is_correct(answer: str | None, reference: str) -> bool:
    """Numeric comparison after normalize_number ("\\boxed{1000}" is right for "#### 1,000")."""
    if answer is None:
        return False
    got = normalize_number(answer)
    return got is not None and got != "" and got == normalize_number(reference)


def load_problems(path: Path) -> list[Problem]:
    """Problems of a GSM8K-format JSONL file (``question``, ``answer`` ending with ``#### REFERENCE``)."""
    problems: list[Problem] = []
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise EvalError(f"cannot read {path}: {err.strerror or err}") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            problems.append(Problem(len(problems), str(item["question"]), reference_answer(str(item["answer"]))))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
            why = f"missing field {err}" if isinstance(err, KeyError) else str(err).splitlines()[0]
            raise EvalError(f"{path}:{number}: not a GSM8K line ({why}); each line needs "
                            "'question' and 'answer' ending with '#### REFERENCE'") from None
    if not problems:
        raise EvalError(f"{path}: no problems")
    return problems


def fetch_gsm8k() -> Path:
    """The public GSM8K test split (openai/gsm8k, main/test) from the Hugging Face Hub, as a local JSONL file."""
    try:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.utils import logging as hub_logging
    except ImportError:
        raise EvalError("--dataset gsm8k needs huggingface_hub (pip install huggingface_hub); "
                        "or pass a GSM8K JSONL file") from None
    hub_logging.set_verbosity_error()  # its retry warnings would bury the one-line error below
    try:
        parquet = Path(hf_hub_download(GSM8K_REPO, f"{GSM8K_CONFIG}/test-00000-of-00001.parquet", repo_type="dataset"))
    except Exception as err:  # offline, proxy, 404...: one line
        first = (str(err).strip().splitlines() or [""])[0]
        first = first if len(first) <= 120 else first[:120].rsplit(" ", 1)[0] + " ..."
        raise EvalError(f"cannot fetch GSM8K from the Hugging Face Hub ({type(err).__name__}: {first}); "
                        "without a network, pass a GSM8K JSONL file instead: hogwild eval test.jsonl") from None
    out = parquet.with_suffix(".jsonl")
    if not out.exists():
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise EvalError(f"reading {parquet.name} needs pyarrow (pip install pyarrow); "
                            "or pass a GSM8K JSONL file") from None
        rows = pq.read_table(parquet, columns=["question", "answer"]).to_pylist()
        tmp = out.with_suffix(".jsonl.tmp")
        tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        tmp.replace(out)
    return out
