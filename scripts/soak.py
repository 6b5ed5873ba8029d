"""A long generation that checks the engine stays sound, fast and flat in memory: a soak test.

Runs one Hogwild! generation for many passes (default 10,000 passes x 4 workers on SmolLM2-135M, a story
prompt that never asks for an answer), and checks what a short test cannot:

- at every stats event, cells_used (read from llama.cpp) == tokens_written (counted by the engine): every
  token is stored once, nothing leaks or is lost;
- the resident memory (VmRSS) after warm-up, through the passes and through the finisher;
- the speed at the start and at the end (the cache grows, so a pass costs more);
- how many finished steps reach the shared history (a step that never ends keeps work out of it).

    .venv/bin/python scripts/soak.py                     # the full soak (hours on 2 cores)
    .venv/bin/python scripts/soak.py --passes 600        # a short check (2 minutes)

Ctrl-C stops after the current pass (the finisher runs and the table is printed). Exit status 1 if
cells_used ever differed from tokens_written, or if the run could not start (one line says why).
"""

from __future__ import annotations

import argparse
import signal
import threading
import time
from dataclasses import dataclass, field

from hogwild_local.engine import EngineError, Generation, RunConfig
from hogwild_local.models import ModelError, resolve_model
from hogwild_local.native import BackendError, Model, SamplingParams

PROMPT = "Write a long story about a lighthouse."


def rss_mb() -> float:
    """This process's resident set size in MB (VmRSS; psutil may not be installed)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise OSError("no VmRSS line")


class PeakSampler:
    """The highest VmRSS a background thread has seen since the last :meth:`reset` (sampled every 50 ms)."""

    def __init__(self, interval_s: float = 0.05) -> None:
        self.interval_s, self.peak = interval_s, rss_mb()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._done.wait(self.interval_s):
            self.peak = max(self.peak, rss_mb())

    def reset(self) -> float:
        """The peak so far; the next peak starts from now."""
        now = rss_mb()
        peak, self.peak = max(self.peak, now), now
        return peak

    def close(self) -> None:
        self._done.set()
        self._thread.join()


@dataclass
class Soak:
    """What the run showed, gathered from its events."""

    warmup: int
    rss: dict[str, float] = field(default_factory=dict)  # in the order of the table
    rates: list[tuple[int, float, int]] = field(default_factory=list)  # (pass, elapsed s, tokens generated)
    generated: int = 0
    steps: int = 0
    mismatches: int = 0
    first_mismatch: str = ""
    reason: str = ""
    passes: int = 0
    cells: str = ""
    last_rss: float = 0.0  # at the last stats event: the end of the passes once the run is over

    def rate(self, first: int, last: int) -> float:
        """Generated tokens per second between two indices of ``rates``."""
        (_, t0, n0), (_, t1, n1) = self.rates[first], self.rates[last]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0


def run(args: argparse.Namespace) -> Soak:
    """Run the generation, checking and sampling as the events come."""
    model = Model(resolve_model(args.model), n_gpu_layers=args.gpu_layers)
    ctx = args.ctx or 1024 + args.passes * args.workers * 5 // 4  # room for headers and the prompt
    cfg = RunConfig(workers=args.workers, budget=args.passes, n_ctx=ctx, threads=args.threads,
                    sampling=SamplingParams(seed=args.seed), stop_on_answer=False, step_limit=args.step_limit)
    soak = Soak(warmup=max(1, min(args.warmup, args.passes)))
    sampler, passes_peak = PeakSampler(), 0.0
    with Generation(model, args.prompt, cfg) as gen:
        signal.signal(signal.SIGINT, lambda *_: gen.stop())  # Ctrl-C: the finisher still runs, the table is printed
        for event in gen.events():
            if event.type == "token" and not event.forced:
                soak.generated += 1
            elif event.type == "step" and event.worker != "User":
                soak.steps += 1
            elif event.type == "stats":
                if event.cells_used != event.tokens_written:
                    soak.mismatches += 1
                    soak.first_mismatch = soak.first_mismatch or (
                        f"(first: pass {event.pass_}, {event.cells_used} != {event.tokens_written})")
                soak.rates.append((event.pass_, event.elapsed_s, soak.generated))
                soak.cells = f"{event.cells_used}/{event.cells_total}"
                peak = sampler.reset()  # the peak since the last pass: what the finisher adds is measured alone
                if event.pass_ == soak.warmup:
                    soak.rss["warm-up"] = rss_mb()
                elif event.pass_ > soak.warmup:
                    passes_peak = max(passes_peak, peak)
                soak.last_rss = rss_mb()
                if args.progress and event.pass_ % args.progress == 0:
                    print(f"pass {event.pass_}: {soak.last_rss:.1f} MB, cells {soak.cells}, {soak.steps} steps",
                          flush=True)
            elif event.type == "answer":
                soak.rss["peak during passes"] = passes_peak
                soak.rss["end of passes"] = soak.last_rss
                soak.rss["finisher peak"] = sampler.reset()
                soak.rss["after finisher"] = rss_mb()
                soak.reason, soak.passes = event.reason, event.passes
    sampler.close()
    model.close()
    return soak


def report(soak: Soak) -> None:
    """Print the table."""
    window = max(1, len(soak.rates) // 10)
    start = soak.rate(0, window) if len(soak.rates) > window else 0.0
    end = soak.rate(-window - 1, -1) if len(soak.rates) > window else 0.0
    base = soak.rss.get("warm-up")
    print("| measure | value |")
    print("|---|--:|")
    print(f"| passes (reason the run ended) | {soak.passes} ({soak.reason}) |")
    print(f"| cells used at the end | {soak.cells} |")
    print(f"| tok/s, first / last {window} passes | {start:.1f} / {end:.1f} |")
    for name, value in soak.rss.items():
        growth = f" ({100 * (value - base) / base:+.1f} % vs warm-up)" if base and name != "warm-up" else ""
        print(f"| RSS {name} | {value:.1f} MB{growth} |")
    print(f"| steps reaching the history | {soak.steps} |")
    print(f"| stats events with cells_used != tokens_written | {f'{soak.mismatches} {soak.first_mismatch}'.strip()} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passes", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--prompt", default=PROMPT)
    parser.add_argument("--ctx", type=int, default=0, help="context size (default: enough for every pass)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--gpu-layers", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--step-limit", type=int, default=RunConfig.step_limit, help="tokens per step; 0 = off")
    parser.add_argument("--warmup", type=int, default=50, help="passes before the first RSS sample")
    parser.add_argument("--progress", type=int, default=0, help="print a line every N passes (0 = quiet)")
    args = parser.parse_args()
    t0 = time.perf_counter()
    try:
        rss_mb()
    except OSError as err:
        raise SystemExit(f"soak: cannot read the memory use from /proc/self/status (Linux only): {err}") from None
    try:
        soak = run(args)
    except (BackendError, EngineError, ModelError, ValueError) as err:
        raise SystemExit(f"soak: {err}") from None
    report(soak)
    print(f"\n{time.perf_counter() - t0:.0f} s in all")
    raise SystemExit(1 if soak.mismatches else 0)


if __name__ == "__main__":
    main()
