"""Measure the timing gate: its false-alarm rate under machine load and its detection rate.

    python -m bench.perf.gate_check --out DIR [--repeats 20] [--slow-repeats 10] [--rounds 6]
                                    [--loaded-slow-repeats 0]

Every trial is one ``lae-bench interleave`` of a small config (every run to its epoch cap, so
both sides time the same blocks): ``--rounds`` rounds, baseline and candidate alternately, the
baseline always this code, quiet. Then ``compare`` at the default thresholds judges the two
sides' rounds, as a user's gate would.

1. False alarms: the candidate is the same code, with a competing load on every core (one
   busy-looping process per core) during each of its runs; ``--repeats`` trials. Every timing
   regression flagged is a false alarm.
2. Detection: the candidate is a slower version of the code, a copy of this source tree whose
   epoch loop runs every block twice (each epoch does twice the work; ``slowed_source``),
   ``--slow-repeats`` trials without added load (and ``--loaded-slow-repeats`` with it);
   every judged cell should be flagged.

Beside the gate's verdicts each trial also reports what the gate makes of the first round of
each side alone (two separate runs, as when a stored baseline is compared), and of the raw
per-epoch times of those two runs without CPU shares and reference (what the gate did before).
Writes DIR/summary.jsonl and prints one line per trial. The BLAS thread count is the
environment's (set OPENBLAS_NUM_THREADS to pin it).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import yaml

import lae_core

from ..sweep.store import ROUND_PREFIX
from .interleave import SIDES, interleave

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
BASE_COMMAND = [sys.executable, "-m", "bench.cli"]
SLOWED_TREE = "slowed-source"    # under --out: the slowed copy of the source tree
BLOCK_LINE = "                step.run(steps, cutoffs)\n"   # lae_core/train.py: one block


def candidate_command(slow: bool, out: Path) -> list[str]:
    """The candidate side's command: lae-bench itself, or the lae-bench of a slowed copy of
    this source tree (``slowed_source``, made once under ``out``), run as any other version
    of the code would be: first on the import path of a ``-c`` child process."""
    if not slow:
        return BASE_COMMAND
    tree = out / SLOWED_TREE
    if not tree.is_dir():
        slowed_source(tree)
    return [sys.executable, "-c", f"import sys; sys.path.insert(0, {str(tree)!r}); "
            "from bench.cli import main; sys.exit(main(sys.argv[1:]))"]


def slowed_source(into: Path) -> Path:
    """A copy of this source tree (lae_core and bench) whose epoch loop runs the step twice
    in every block: twice the work per epoch, for real, in a version of the code that nothing
    patches at run time."""
    root = Path(lae_core.__file__).resolve().parents[1]
    for package in ("lae_core", "bench"):
        shutil.copytree(root / package, into / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    loop = into / "lae_core" / "train.py"
    text = loop.read_text()
    if text.count(BLOCK_LINE) != 1:
        raise RuntimeError(f"{loop}: the line {BLOCK_LINE.strip()!r} that runs one block is "
                           "not there once; update gate_check.BLOCK_LINE")
    loop.write_text(text.replace(BLOCK_LINE, BLOCK_LINE + BLOCK_LINE))
    return into


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


def judge(out: Path) -> dict:
    """Timing verdicts of one trial: the gate's on every round (``compare`` at the default
    limits), the gate's on the first round of each side alone, and the same test on those two
    runs' raw per-epoch times."""
    from ..analysis.compare import compare, load_cells, with_identity
    from ..analysis.stats import load_results
    from ..analysis.thresholds import Thresholds
    from ..analysis.timing import (NOT_COMPARED, REGRESSION, TimingSamples, timing_change,
                                   timing_samples)

    thresholds = Thresholds(d_align_threshold=THRESHOLD)
    limits = thresholds.default
    first = [out / side / f"{ROUND_PREFIX}00" for side in SIDES]
    gated = [cell.check("time") for cell in compare(out / "baseline", out / "candidate",
                                                    thresholds).cells]
    alone = [cell.check("time") for cell in compare(*first, thresholds).cells]
    base, cand = (load_cells(frame, THRESHOLD) for frame in
                  with_identity(*(load_results(d, THRESHOLD) for d in first)))
    raw = [timing_change(TimingSamples(timing_samples(base[key].runs).epoch_s),
                         TimingSamples(timing_samples(cand[key].runs).epoch_s),
                         limits.time_factor, limits.alpha) for key in sorted(base)]
    ratios = [c.ratio for c in gated if c.ratio is not None] or [float("nan")]
    return {"cells": len(gated),
            "timing_regressions": sum(c.verdict == REGRESSION for c in gated),
            "not_judged": sum(c.verdict == NOT_COMPARED for c in gated),
            "min_ratio": min(ratios), "max_ratio": max(ratios),
            "one_round_regressions": sum(c.verdict == REGRESSION for c in alone),
            "one_round_not_judged": sum(c.verdict == NOT_COMPARED for c in alone),
            "raw_regressions": sum(c.verdict == REGRESSION for c in raw),
            "max_raw_ratio": max(c.ratio for c in raw)}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(prog="python -m bench.perf.gate_check", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--slow-repeats", type=int, default=10)
    p.add_argument("--loaded-slow-repeats", type=int, default=0,
                   help="2x slow-downs timed under load too (default 0)")
    p.add_argument("--rounds", type=int, default=6, help="rounds per trial (default 6, as "
                   "lae-bench interleave)")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    config = args.out / "gate.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    plan = ([("same code, loaded", "same-loaded", False, True)] * args.repeats
            + [("2x slower, quiet", "slow-quiet", True, False)] * args.slow_repeats
            + [("2x slower, loaded", "slow-loaded", True, True)] * args.loaded_slow_repeats)
    for what, prefix, slow, loaded in plan:
        trial = next(args.out / f"{prefix}-{i:02d}" for i in range(1000)
                     if not (args.out / f"{prefix}-{i:02d}").exists())
        interleave(config, trial, {"baseline": BASE_COMMAND,
                                       "candidate": candidate_command(slow, args.out)},
                   args.rounds, conditions=lambda side: Load() if loaded and side == "candidate"
                   else nullcontext())
        row = {"trial": trial.name, "what": what, "rounds": args.rounds, **judge(trial)}
        print(f"{row['trial']}  {what:18}  {row['timing_regressions']:2d}/{row['cells']} "
              f"flagged, {row['not_judged']:2d} not judged, gate ratios "
              f"{row['min_ratio']:.2f}..{row['max_ratio']:.2f}  | one round alone: "
              f"{row['one_round_regressions']:2d} flagged, {row['one_round_not_judged']:2d} not "
              f"judged; raw times {row['raw_regressions']:2d} flagged (up to "
              f"x{row['max_raw_ratio']:.2f})", flush=True)
        with (args.out / "summary.jsonl").open("a") as log:   # kept if the run is cut short
            log.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
