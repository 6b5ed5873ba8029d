"""Several machines through llama.cpp's RPC backend, on loopback: `hogwild rpc-server` children on 127.0.0.1,
clients that split a model's layers between their own CPU and the servers, checked against the numpy reference
and against the all-local run; and what a user sees when a server is missing or dies mid-run.

Every client runs in a child process too: a process keeps the RPC devices it registered (ggml cannot forget
them), so the rest of the suite must never load a model in a process that knows a server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hogwild_local.measure.loopback import HOGWILD, free_port, rpc_servers
from hogwild_local.models import resolve_model

TESTS = Path(__file__).parent
PROBLEM = "What is 17 * 23?"


@pytest.fixture(scope="module")
def smollm2_path() -> str:
    return str(resolve_model("smollm2-135m", progress=False))


@pytest.mark.parametrize(("servers", "gpu_layers"), [(1, "1"), (2, "-1")], ids=["cpu+1-server", "2-servers"])
def test_reference_suites_with_layers_on_servers(servers, gpu_layers, smollm2_path):
    """The numpy-reference lock-step cases and the engine's reference runs, in a child whose models put their
    last layers (one server) or every layer (split over two servers) on rpc-server processes: the same CPU
    tolerance as all-local (tests/where.py checks that each server holds a share of the weights)."""
    with rpc_servers(servers) as endpoints:
        env = {**os.environ, "HOGWILD_TEST_RPC": ",".join(endpoints), "HOGWILD_TEST_GPU_LAYERS": gpu_layers,
               "HOGWILD_TEST_VOCAB": os.environ.get("HOGWILD_TEST_VOCAB", smollm2_path)}
        env.pop("HOGWILD_TEST_TOLERANCE", None)
        out = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", "-k",
             "lockstep_workers_match_reference or match_reference",
             str(TESTS / "test_backend.py"), str(TESTS / "test_engine.py")],
            capture_output=True, text=True, timeout=1200, env=env, cwd=TESTS.parent)
    summary = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert " passed" in summary and "failed" not in summary and "error" not in summary, summary
    errors = [line for line in out.stdout.splitlines() if "max abs error" in line]
    # 2 models x 2 layouts x (f32 and f16 x 3 paths, bf16 graph: bf16 with flash attention is refused over RPC),
    # 2 engine runs
    assert len(errors) == 30, out.stdout[-2000:]
    print("\n" + "\n".join(errors))


def run(*args: str, timeout: int = 600, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([*HOGWILD, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **env})


def answer_and_steps(jsonl: str) -> tuple[dict, list[tuple[str, str]]]:
    events = [json.loads(line) for line in jsonl.splitlines()]
    steps = [(e["worker"], e["text"]) for e in events if e["type"] == "step"]
    answer = next(e for e in events if e["type"] == "answer")
    return {k: answer[k] for k in ("answer", "finisher_text", "passes", "tokens_generated")}, steps


def test_run_split_over_two_servers_writes_the_local_text(smollm2_path):
    """`hogwild run --rpc A,B -ngl 20 --tensor-split 1,3` (20 of SmolLM2's 30 layers over two servers, the
    other 10 here) writes, greedy, exactly what the all-local run writes."""
    common = ("run", PROBLEM, "-m", smollm2_path, "-w", "2", "-b", "40", "-t", "0", "--threads", "1", "--json")
    local = run(*common)
    assert local.returncode == 0, local.stderr
    with rpc_servers(2) as (a, b):
        split = run(*common, "--rpc", f"{a},{b}", "-ngl", "20", "--tensor-split", "1,3", HOGWILD_VERBOSE="1")
    assert split.returncode == 0, split.stderr[-3000:]
    placed = [line for line in split.stderr.splitlines() if "assigned to device" in line]
    assert sum("device CPU" in line for line in placed) == 11  # 10 layers and the input layer stay here
    assert sum("device RPC0" in line for line in placed) == 5 and sum("device RPC1" in line for line in placed) == 15
    assert answer_and_steps(split.stdout) == answer_and_steps(local.stdout)


def test_bf16_cache_over_rpc_takes_the_graph_path(smollm2_path):
    """A bf16 cache with layers on a server: the engine leaves flash attention off there (stock llama.cpp's
    flash attention gives wrong logits over RPC when the server's backend lacks it), and writes, greedy, what the
    all-local bf16 run writes."""
    common = ("run", PROBLEM, "-m", smollm2_path, "-w", "2", "-b", "12", "-t", "0", "--threads", "1", "--json",
              "--cache-type", "bf16")
    local = run(*common)
    assert local.returncode == 0, local.stderr
    with rpc_servers(1) as (endpoint,):
        remote = run(*common, "--rpc", endpoint, "-ngl", "-1")
    assert remote.returncode == 0, remote.stderr[-3000:]
    assert answer_and_steps(remote.stdout) == answer_and_steps(local.stdout)


def line_count(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_server_that_dies_mid_run(smollm2_path, tmp_path):
    """A server killed mid-run: one line naming what happened, exit status 1, no traceback or core dump, and
    the transcript keeps every line written before (each a whole JSON record, tokens included)."""
    transcript = tmp_path / "run.jsonl"
    with rpc_servers(1) as (endpoint,):
        client = subprocess.Popen(
            [*HOGWILD, "run", PROBLEM, "-m", smollm2_path, "-w", "2", "-b", "4000", "--threads", "1", "--rpc",
             endpoint, "-ngl", "15", "--transcript", str(transcript)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 120
            while line_count(transcript) < 40:
                assert client.poll() is None, client.stderr.read()
                assert time.monotonic() < deadline, "the run wrote too little in 120 s"
                time.sleep(0.2)
        except BaseException:
            client.kill()
            raise
    # rpc_servers has killed the server: the client is mid-run
    out, err = client.communicate(timeout=60)
    assert client.returncode == 1, err
    assert err.strip().splitlines() == [
        "Error: an RPC server stopped answering mid-run (it crashed, was stopped, or the network dropped): "
        "Remote RPC server crashed or returned malformed response"], err
    records = [json.loads(line) for line in transcript.read_text().splitlines()]
    assert records[0]["type"] == "header" and sum(r["type"] == "token" for r in records) >= 20
    assert out.strip(), "the text printed before the server died is on stdout"


def test_server_that_is_not_there(smollm2_path):
    port = free_port()
    out = run("run", PROBLEM, "-m", smollm2_path, "-b", "4", "--rpc", f"127.0.0.1:{port}", "-ngl", "-1")
    assert out.returncode == 1
    assert out.stderr.strip() == (f"Error: cannot reach the RPC server 127.0.0.1:{port}: connection refused "
                                  f"(start one there with: hogwild rpc-server --host HOST --port {port})")
    bad = run("bench", "-m", smollm2_path, "--rpc", "gpu-box")
    assert bad.returncode == 1
    assert bad.stderr.strip() == "Error: --rpc: 'gpu-box' is not HOST:PORT (e.g. 192.168.1.20:50052)"


def test_rpc_server_refusals():
    with rpc_servers(1) as (endpoint,):
        port = endpoint.rpartition(":")[2]
        taken = run("rpc-server", "--port", port, timeout=60)
    assert taken.returncode == 1
    assert taken.stderr.strip() == f"Error: cannot listen on 127.0.0.1:{port}: address already in use"
    named = run("rpc-server", "--host", "localhost", timeout=60)
    assert named.returncode == 1
    assert named.stderr.strip() == "Error: --host takes an IPv4 address such as 127.0.0.1 or 0.0.0.0, not 'localhost'"
    listed = run("rpc-server", "--list-devices", timeout=60)
    assert listed.returncode == 0 and listed.stdout.startswith("CPU ("), listed.stdout
