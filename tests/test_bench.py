"""The speed benchmark (hogwild_local.measure.bench) on tiny models: it runs, its rows are consistent, and the
synthetic GGUF writer produces files llama.cpp loads. Timings are not checked; one thread, because
ggml's threads spin-wait and a shared machine makes two of them crawl."""

from __future__ import annotations

import json
import shlex
from dataclasses import asdict

import gguf
import numpy as np
import pytest
from click.testing import CliRunner

from hogwild_local.cli.bench import bench_command
from hogwild_local.measure.bench import model_facts, run_bench
from hogwild_local.measure.provenance import git_commit
from hogwild_local.measure.report import format_table
from hogwild_local.native import Model, Token
from hogwild_local.native.synthetic import SHAPES, quantize_model, write_synthetic_model
from tiny_gguf import write_tiny_model


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory):
    return write_tiny_model(tmp_path_factory.mktemp("bench") / "tiny.gguf", "llama", seed=3).path


def table_cells(table: str) -> list[list[str]]:
    """The body rows of a bench table, split into cells."""
    return [[c.strip() for c in line.strip("|").split("|")] for line in table.splitlines() if line.startswith("| ") and
            line[2].isdigit()]


def test_run_bench_rows(tiny_path):
    rows = run_bench(tiny_path, workers=(1, 2), contexts=(256,), passes=2, threads=1)
    assert [(r.method, r.workers) for r in rows] == [("stock", 1), ("hogwild", 1), ("stock", 2), ("hogwild", 2)]
    by = {(r.method, r.workers): r for r in rows}
    # tiny llama: 2 layers x 2 KV heads x (16 + 16) x 2 bytes (f16)
    per_cell = 2 * 2 * 32 * 2
    for w in (1, 2):
        stock, hog = by["stock", w], by["hogwild", w]
        # the plan fills exactly C cells: prompt, headers, steps and W tokens a pass
        assert stock.cells_used == hog.cells_used == 256
        # worker 0's step (32 tokens planned) ends in the first timed pass, the others' later than the run
        assert hog.moves == 1 and stock.moves == 0
        # common, others' header, own header, a marker and a step per worker, the finisher's block
        assert hog.blocks == 4 + 2 * w
        assert hog.ratio == pytest.approx(hog.ms_per_pass / stock.ms_per_pass) and stock.ratio is None
        for r in (stock, hog):
            assert r.passes == 2 and len(r.times_ms) == 2 and r.ms_per_pass > 0
            assert r.tokens_per_s == pytest.approx(w / r.ms_per_pass * 1e3)
            assert r.kv_bytes == r.cells_used * per_cell
            assert r.kv_bytes_replicated == w * r.kv_bytes
    table = format_table(rows, {"machine": "m", "model": "tiny", "settings": "s", "kv_bytes_per_cell": per_cell,
                                "kv_formula": "f", "commit": "c", "date": "d", "command": "cmd"})
    body = table_cells(table)
    assert len(body) == len(rows)
    for cells, r in zip(body, rows, strict=True):  # the table says what the rows hold, in their order
        assert cells[:4] == [str(r.workers), str(r.context), r.method, str(r.cells_used)]
        assert cells[4:8] == [f"{v:.2f}" for v in (r.ms_per_pass, r.ms_mean, r.ms_min, r.ms_max)]
        assert cells[8] == f"{r.tokens_per_s:.1f}"
        assert cells[9] == ("" if r.ratio is None else f"{r.ratio:.2f}")
        assert cells[10:12] == [f"{r.kv_bytes / 2**20:.1f}", f"{r.kv_bytes_replicated / 2**20:.1f}"]
        assert cells[12] == (str(r.moves) if r.method == "hogwild" else "")


def test_context_too_small(tiny_path):
    from hogwild_local.native import BackendError

    with pytest.raises(BackendError, match="too small"):
        run_bench(tiny_path, workers=(8,), contexts=(128,), passes=16, threads=1)


def test_cli_json(tiny_path, tmp_path):
    out = tmp_path / "bench.json"
    args = ["--model", str(tiny_path), "--workers", "1,2", "--contexts", "256", "--passes", "2", "--warmup", "1",
            "--threads", "1", "--rounds", "2", "--gpu-layers", "0", "--json", str(out)]
    result = CliRunner().invoke(bench_command, args)
    assert result.exit_code == 0, result.output
    assert "| 2 | 256 | hogwild |" in result.output
    data = json.loads(out.read_text())
    assert data["meta"]["command"] == shlex.join(["bench", *args])  # the command's path once, then its arguments
    assert data["meta"]["commit"] == git_commit()
    with Model(tiny_path) as model:
        assert data["meta"]["model_facts"] == asdict(model_facts(model))
    rows = {(row["method"], row["workers"]): row for row in data["rows"]}
    assert sorted(rows) == [("hogwild", 1), ("hogwild", 2), ("stock", 1), ("stock", 2)]
    for (method, w), row in rows.items():
        assert row["passes"] == 4 and len(row["times_ms"]) == 4  # 2 rounds x 2 passes
        assert row["cells_used"] == 256
        if method == "hogwild":
            assert row["moves"] == 2  # one per round
            assert row["ratio"] == pytest.approx(row["ms_per_pass"] / rows["stock", w]["ms_per_pass"])


def test_synthetic_writer_loads(tmp_path):
    path = write_synthetic_model(tmp_path / "syn.gguf", "smollm2-135m", layers=2)
    shape = SHAPES["smollm2-135m"]
    assert len(gguf.GGUFReader(str(path)).tensors) == 2 + 9 * 2  # embedding, output norm, 9 per layer (tied output)
    with Model(path) as model:
        facts = model_facts(model)
        assert (facts.architecture, facts.n_layer, facts.n_head, facts.n_head_kv, facts.head_dim_k) == (
            "llama", 2, shape.n_head, shape.n_head_kv, 64)
        assert facts.n_vocab == shape.n_vocab
        assert facts.kv_bytes_per_cell("f16") == 2 * 3 * (64 + 64) * 2
        with model.context(n_ctx=256, n_seq=1, n_threads=1) as ctx:
            ctx.decode([Token(t, i, (0,), i == 3) for i, t in enumerate([1, 500, 49000, 7])])
            assert np.isfinite(ctx.logits(3)).all()
    # quantized the way `--quant Q4_K_M` does it without a llama-quantize binary (libllama's quantizer)
    q = tmp_path / "syn-q4_k_m.gguf"
    assert quantize_model(path, q, "Q4_K_M", threads=1) in ("libllama", "llama-quantize")
    assert q.stat().st_size < path.stat().st_size / 2
    with Model(q) as model, model.context(n_ctx=256, n_seq=2, n_threads=1) as ctx:
        ctx.decode([Token(5, 0, (0, 1)), Token(6, 1, (0,), True), Token(7, 1, (1,), True)])
        assert np.isfinite(ctx.logits(1)).all()


def test_synthetic_qwen2_untied_loads(tmp_path, monkeypatch):
    """The qwen2 path of the writer (q/k/v biases, separate output matrix as in qwen2.5-7b), at toy size."""
    from hogwild_local.measure.synthetic import synthetic_model
    from hogwild_local.native import synthetic

    toy = synthetic.Shape("qwen2", 512, 128, 2, 4, 2, 256, 1e6, 1e-6, 32768, tied_output=False, qkv_bias=True)
    monkeypatch.setitem(synthetic.SHAPES, "toy-qwen2", toy)
    path = synthetic_model("toy-qwen2", quant="Q8_0", out_dir=tmp_path, threads=1)
    assert path.name == "synthetic-toy-qwen2-2l-q8_0.gguf"
    assert not (tmp_path / "synthetic-toy-qwen2-2l-f16.gguf").exists()
    assert len(gguf.GGUFReader(str(path)).tensors) == 3 + 12 * 2
    with Model(path) as model:
        assert model.info.architecture == "qwen2" and model.info.n_vocab == 512
        rows = run_bench(path, workers=(2,), contexts=(256,), passes=1, warmup=1, threads=1, model=model)
        assert [r.method for r in rows] == ["stock", "hogwild"]
        assert [r.cells_used for r in rows] == [256, 256]
