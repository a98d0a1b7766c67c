"""Measure the timing gate: its false-alarm rate under machine load and its detection rate.

    python -m bench.perf.gate_check --out DIR [--repeats 20] [--slow-repeats 10]
                                    [--loaded-slow-repeats 0]

1. A baseline sweep (a small config, every run to its epoch cap, so both sides time the same
   blocks) without added load.
2. False alarms: the same code ``--repeats`` times, each with a competing load on every core
   (one busy-looping process per core) during the candidate's sweep; each candidate is compared
   with the baseline at the default thresholds and its timing regressions are counted.
3. Detection: the same sweep with a real 2x slow-down injected (every training block is run
   twice, so each epoch does twice the work), ``--slow-repeats`` times without added load (and
   ``--loaded-slow-repeats`` times with it); every judged cell should be flagged.

For each candidate the raw per-epoch times of every block also go through the same test without
the CPU shares and the reference (what the gate did before), for comparison. Writes
DIR/summary.jsonl and prints one line per candidate. The BLAS thread count is the environment's
(set OPENBLAS_NUM_THREADS to pin it).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

CONFIG = {
    "description": "timing-gate check: every run goes to the cap, so both sides time the "
                   "same blocks",
    "data": {"kind": "synthetic", "m": 200, "n": 2000, "seed": 7,
             "spectrum": {"kind": "linear", "high": 20, "low": 1}},
    "models": ["rotation", "non_uniform_sum"],
    "optimizers": ["sgd_nesterov", "adam"],
    "k": [2, 16], "lr": "paper", "seeds": {"count": 3},
    "thresholds": [0.001], "max_epochs": 400, "eval_every": 10, "dtype": "float64",
    "backend": "numpy",
}
THRESHOLD = CONFIG["thresholds"][0]
SPIN = "while True: pass"


def sweep(config: Path, out: Path, slow: bool) -> None:
    """Run the sweep in a fresh process (``slow``: with the 2x slow-down injected)."""
    cmd = [sys.executable, "-m", "bench.perf.gate_check", "_sweep", str(config), str(out)]
    subprocess.run(cmd + (["--slow"] if slow else []), check=True, stdout=subprocess.DEVNULL,
                   cwd=Path(__file__).resolve().parents[2])


def _sweep_here(config: str, out: str, slow: bool) -> None:
    """The child side of ``sweep``."""
    if slow:
        inject_slowdown()
    from ..sweep.config import load_config
    from ..sweep.runner import Sweep

    outcome = Sweep(load_config(config), Path(out)).run(quiet=True)
    sys.exit(1 if outcome.errors else 0)


def inject_slowdown() -> None:
    """Every training block runs its step twice: twice the work per epoch, for real."""
    import lae_core.train as train

    make_step = train.make_step

    def slow_make_step(*args, **kwargs):
        step = make_step(*args, **kwargs)
        run = step.run

        def run_twice(steps, cutoffs):
            run(steps, cutoffs)
            return run(steps, cutoffs)
        step.run = run_twice
        return step
    train.make_step = slow_make_step


class Load:
    """One busy-looping process per core while in the ``with`` block."""

    def __enter__(self):
        self.procs = [subprocess.Popen([sys.executable, "-c", SPIN])
                      for _ in range(os.cpu_count() or 1)]
        time.sleep(0.5)   # let them get going
        return self

    def __exit__(self, *exc):
        for proc in self.procs:
            proc.kill()
            proc.wait()


def judge(baseline: Path, candidate: Path) -> dict:
    """Timing verdicts of one candidate: the gate's (``compare`` at the default limits) and
    those of the same test on raw per-epoch times."""
    from ..analysis.compare import compare, load_cells, with_identity
    from ..analysis.stats import load_results
    from ..analysis.thresholds import Thresholds
    from ..analysis.timing import (NOT_COMPARED, REGRESSION, TimingSamples, timing_change,
                                   timing_samples)

    thresholds = Thresholds(d_align_threshold=THRESHOLD)
    limits = thresholds.default
    gated = [cell.check("time") for cell in compare(baseline, candidate, thresholds).cells]
    frames = with_identity(load_results(baseline, THRESHOLD), load_results(candidate, THRESHOLD))
    base, cand = (load_cells(frame, THRESHOLD) for frame in frames)
    keys = sorted(base.keys() & cand.keys())
    pairs = [(timing_samples(base[key].runs), timing_samples(cand[key].runs)) for key in keys]
    raw = [timing_change(TimingSamples(b.epoch_s), TimingSamples(c.epoch_s), limits.time_factor,
                         limits.alpha) for b, c in pairs]
    raw_full = [timing_change(b, c, limits.time_factor, limits.alpha) for b, c in pairs]
    ratios = [c.ratio for c in gated if c.ratio is not None] or [float("nan")]
    refs = [c.reference_ratio for c in raw_full if c.reference_ratio is not None] or [
        float("nan")]
    return {"cells": len(gated),
            "timing_regressions": sum(c.verdict == REGRESSION for c in gated),
            "not_judged": sum(c.verdict == NOT_COMPARED for c in gated),
            "raw_regressions": sum(c.verdict == REGRESSION for c in raw),
            "min_ratio": min(ratios), "max_ratio": max(ratios),
            "max_raw_ratio": max(c.ratio for c in raw),
            "reference_ratios": [min(refs), max(refs)]}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_sweep":
        _sweep_here(argv[1], argv[2], "--slow" in argv)
    p = argparse.ArgumentParser(prog="python -m bench.perf.gate_check", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--slow-repeats", type=int, default=10)
    p.add_argument("--loaded-slow-repeats", type=int, default=0,
                   help="2x slow-downs timed under load too (default 0)")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    config = args.out / "gate.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    baseline = args.out / "baseline"
    if not (baseline / "records").is_dir():      # an earlier call's baseline is reused
        sweep(config, baseline, slow=False)
    rows = []
    plan = ([("same code, loaded", "same-loaded", False, True)] * args.repeats
            + [("2x slower, quiet", "slow-quiet", True, False)] * args.slow_repeats
            + [("2x slower, loaded", "slow-loaded", True, True)] * args.loaded_slow_repeats)
    for what, prefix, slow, loaded in plan:
        candidate = next(args.out / f"{prefix}-{i:02d}" for i in range(1000)
                         if not (args.out / f"{prefix}-{i:02d}").exists())
        if loaded:
            with Load():
                sweep(config, candidate, slow)
        else:
            sweep(config, candidate, slow)
        row = {"candidate": candidate.name, "what": what, **judge(baseline, candidate)}
        rows.append(row)
        print(f"{row['candidate']}  {what:18}  {row['timing_regressions']:2d}/{row['cells']} "
              f"flagged, {row['not_judged']:2d} not judged (busy)  (raw times: "
              f"{row['raw_regressions']:2d} flagged)  gate ratios "
              f"{row['min_ratio']:.2f}..{row['max_ratio']:.2f}, raw up to "
              f"x{row['max_raw_ratio']:.2f}, reference x{row['reference_ratios'][0]:.2f}.."
              f"{row['reference_ratios'][1]:.2f}", flush=True)
        with (args.out / "summary.jsonl").open("a") as log:   # kept if the run is cut short
            log.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
