"""Verbs about speed: ``speed`` (per-epoch time against the matmul bound), ``tune`` (learning
rates in one batch), ``interleave`` (two versions of the code timed in alternating rounds) and
``gpu-check`` (the prepared GPU check)."""
from __future__ import annotations

import argparse
import shlex
import sys
from dataclasses import asdict
from pathlib import Path

from lae_core import MODELS, OPTIMIZERS, synthetic
from lae_core.steps import STEPS

GPU_CHECK_STEPS = ("info", "smoke", "speed", "parity", "fig4", "tests", "summary")

from ..errors import EXIT_OK, EXIT_RUN_FAILED, UsageError
from ..paths import output_dir, output_file
from ..formatting import format_seconds
from ..sweep import memory
from ..sweep.store import write_json_atomic


def _csv(kind, allowed=None):
    """argparse type: a comma-separated list of ``kind`` values, checked against ``allowed``."""
    def parse(text: str):
        try:
            values = [kind(v) for v in text.split(",") if v]
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of "
                                             f"{kind.__name__}") from None
        bad = [v for v in values if allowed is not None and v not in allowed]
        if bad or not values:
            raise argparse.ArgumentTypeError(f"{text!r}: allowed values are {', '.join(allowed)}")
        return values
    return parse


def register(verbs) -> None:
    p = verbs.add_parser("speed", help="time one epoch per model against the matmul bound",
                         description="Per-epoch time of each model and optimizer at each k, "
                         "its matrix-product work, and the ratio to that work divided by a "
                         "same-run matrix product's throughput; then what a batch of seeds "
                         "costs against one run.")
    p.add_argument("--k", type=_csv(int), default=[2, 10, 100, 500], metavar="K,K,...",
                   help="latent sizes (default: 2,10,100,500)")
    p.add_argument("--models", type=_csv(str, MODELS), default=list(MODELS), metavar="M,...",
                   help=f"models (default: all: {','.join(MODELS)})")
    p.add_argument("--optimizers", type=_csv(str, OPTIMIZERS), default=["sgd_nesterov", "adam"],
                   metavar="O,...", help="optimizers (default: sgd_nesterov,adam)")
    p.add_argument("--m", type=int, default=1000, help="input dimension (default: %(default)s)")
    p.add_argument("--n", type=int, default=5000, help="samples (default: %(default)s)")
    p.add_argument("--backend", choices=["numpy", "cupy", "auto"], default="numpy",
                   help="array backend (default: %(default)s)")
    p.add_argument("--dtype", choices=["float64", "float32"], default="float64",
                   help="(default: %(default)s)")
    p.add_argument("--batch-runs", type=int, default=64,
                   help="seeds in the batch-scaling check (0 skips it)")
    p.add_argument("--steps", type=_csv(str, STEPS), default=["auto"],
                   help="training steps to time back to back, e.g. reference,auto: the "
                   "before/after of the fast step in one run (default: auto)")
    p.add_argument("--out", type=Path, help="also write the rows as JSON to this file")
    p.set_defaults(handler=speed_command)
    register_tune(verbs)
    register_interleave(verbs)
    register_gpu_check(verbs)


def speed_command(args) -> int:
    from ..perf import speed

    for flag, value, low in (("--m", args.m, 1), ("--n", args.n, 1),
                             ("--batch-runs", args.batch_runs, 0)):
        if value < low:
            raise UsageError(f"{flag}: {value} is not allowed; expected an integer from {low}")
    if min(args.k) < 1 or max(args.k) > args.m:
        raise UsageError(f"--k: {args.k} must lie in 1..m = {args.m}")
    out = output_file(args.out, "--out") if args.out else None   # before the work, not after
    memory.check_build(args.m, args.n, speed.needs_samples(args.models))
    data = synthetic(m=args.m, n=args.n, keep_samples=speed.needs_samples(args.models))
    rows = []
    print(f"{'model':16} {'optimizer':13} {'k':>4} {'form':10} {'step':9} {'epoch':>10} "
          f"{'GFLOP':>7} {'GF/s':>7} {'gemm GF/s':>9} {'eff':>5} {'x bound':>7} {'x first':>7}")
    for k in args.k:
        for model in args.models:
            for optimizer in args.optimizers:
                first = None
                for step in args.steps:
                    row = speed.speed_row(data, model, optimizer, k, dtype=args.dtype,
                                          backend=args.backend, step=step)
                    rows.append(row)
                    first = first or row
                    print(f"{model:16} {optimizer:13} {k:4d} {row.formulation:10} "
                          f"{row.step:9} {format_seconds(row.epoch_s):>10} {row.gflop:7.3f} "
                          f"{row.gflops:7.1f} {row.gemm_gflops:9.1f} {row.efficiency:5.0%} "
                          f"{row.bound_ratio:7.2f} {first.epoch_s / row.epoch_s:7.2f}",
                          flush=True)
    result = {"backend": args.backend, "dtype": args.dtype, "m": args.m, "n": args.n,
              "rows": speed.as_dicts(rows)}
    if args.batch_runs:
        scaling = speed.batch_scaling(data, k=10, runs=args.batch_runs, dtype=args.dtype,
                                      backend=args.backend, step=args.steps[-1])
        result["batch_scaling"] = speed.as_dicts([scaling])[0]
        print(f"batch of {scaling.runs} seeds ({scaling.model}, {scaling.optimizer}, "
              f"k={scaling.k}): epoch {format_seconds(scaling.batch_epoch_s)} vs "
              f"{format_seconds(scaling.single_epoch_s)} for one run = {scaling.cost_ratio:.1f}x "
              f"the cost, {scaling.throughput_gain:.1f}x the run-epochs per second")
    if out is not None:
        write_json_atomic(out, result)
    return 0


def register_gpu_check(verbs) -> None:
    p = verbs.add_parser("gpu-check", help="the prepared GPU check (smoke, timings, parity, "
                         "fig4, tests)",
                         description="Compiles and checks the GPU steps, times every model, "
                         "compares NumPy with CuPy, runs the fig4 preset and the CuPy tests, "
                         "writing everything under --out (docs/gpu.md). "
                         "bench/perf/gpu_check.sh runs each step under its own time cap. "
                         "--dry runs the same steps on the CPU with small sizes.")
    p.add_argument("--out", type=Path, default=None,
                   help="results folder (default results/gpu/<date>-<device>/)")
    p.add_argument("--dry", action="store_true",
                   help="CPU only: array-api-strict stands in for the device, smoke for fig4")
    p.add_argument("--step", choices=GPU_CHECK_STEPS,
                   help="run one step (gpu_check.sh runs each under its own time cap)")
    p.add_argument("--work", type=Path, default=Path("results/gpu/_work"),
                   help="fig4's run folder, emptied first (default results/gpu/_work)")
    p.set_defaults(handler=gpu_check_command)


def gpu_check_command(args) -> int:
    from ..perf.gpu_check import default_out, gpu_check

    return gpu_check(args.out or default_out(args.dry), dry=args.dry, step=args.step,
                     workdir=args.work)


def _grid(text: str):
    """argparse type: LOW:HIGH:COUNT, a log-spaced grid of learning rates."""
    from ..perf.tune import log_grid

    try:
        low, high, count = text.split(":")
        low, high, count = float(low), float(high), int(count)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not LOW:HIGH:COUNT, e.g. 1e-5:1e-1:9") from None
    if not (0 < low < high and count >= 2):
        raise argparse.ArgumentTypeError(f"{text!r}: need 0 < LOW < HIGH and COUNT >= 2")
    return log_grid(low, high, count)


def register_tune(verbs) -> None:
    p = verbs.add_parser("tune", help="pick learning rates: a log grid per cell, one batch each",
                         description="For each (model, optimizer, k) of a preset or config, "
                         "train every rate of a log-spaced grid times every seed as one batch "
                         "and keep the rate that reaches the headline threshold in the fewest "
                         "epochs (median over seeds, the midpoint rule). A rate where any seed "
                         "diverges is not chosen (unless --allow-divergence); the runner-up is "
                         "printed, and a choice at an end of the grid is flagged. Writes a "
                         "learning-rate table that configs use as `lr: tuned:FILE`.")
    p.add_argument("target", metavar="PRESET|CONFIG.yaml",
                   help="the preset name or config file whose cells to tune (required)")
    p.add_argument("--grid", type=_grid, default=_grid("1e-5:1e-1:9"),
                   help="LOW:HIGH:COUNT (default 1e-5:1e-1:9)")
    p.add_argument("--out", type=Path, help="table file (.yaml or .csv); default "
                   "results/tuned/<config name>.yaml")
    p.add_argument("--allow-divergence", action="store_true",
                   help="let a rate where some (not all) seeds diverge be chosen; its diverged "
                   "seeds count as not reached")
    p.set_defaults(handler=tune_command)


def register_interleave(verbs) -> None:
    p = verbs.add_parser(
        "interleave", help="time a baseline and a candidate version in alternating rounds",
        description="Run one sweep ROUNDS times with each side's command, alternately (ABBA), "
        "each run into DIR/<side>/round-NN, so that both versions are timed under the same "
        "conditions; then `lae-bench compare DIR/baseline DIR/candidate` tests the round "
        "medians of each cell. A side's command takes `run CONFIG --out DIR --quiet`, e.g. the "
        "lae-bench of a virtual environment made from the baseline commit.")
    p.add_argument("target", metavar="PRESET|CONFIG.yaml", help="the sweep both sides run")
    p.add_argument("--baseline", required=True, type=shlex.split, metavar="CMD",
                   help="the baseline's command, e.g. /tmp/base-venv/bin/lae-bench")
    p.add_argument("--candidate", type=shlex.split, metavar="CMD",
                   default=[sys.executable, "-m", "bench.cli"],
                   help="the candidate's command (default: this installation)")
    p.add_argument("--rounds", type=_positive_int, default=6,
                   help="runs per side (default 6: the smallest p is then 1/924; 5 is the "
                   "fewest that can be significant at alpha = 0.01)")
    p.add_argument("--out", type=Path, required=True, metavar="DIR")
    p.set_defaults(handler=interleave_command)


MIN_ROUNDS = 5     # with fewer rounds a side, Mann-Whitney's p cannot go below alpha = 0.01


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return value


def interleave_command(args) -> int:
    from ..perf.interleave import SideFailed, check_command, config_file, interleave
    from ..sweep.config import load_config

    commands = {"baseline": args.baseline, "candidate": args.candidate}
    if args.rounds < MIN_ROUNDS:
        print(f"lae-bench interleave: note: {args.rounds} rounds a side can never be found "
              f"significant at alpha = 0.01 (use at least {MIN_ROUNDS}); compare will call any "
              "change 'same'", file=sys.stderr)
    load_config(args.target)              # a bad config or command leaves no --out behind
    for side, command in commands.items():
        check_command(side, command)
    out = output_dir(args.out, "--out")
    config = config_file(args.target, out)
    try:
        interleave(config, out, commands, args.rounds, on_run=lambda r, side: print(
            f"round {r + 1}/{args.rounds}: {side}", file=sys.stderr, flush=True))
    except SideFailed as exc:
        print(f"lae-bench interleave: {exc}", file=sys.stderr)
        return EXIT_RUN_FAILED
    print(f"lae-bench compare {out / 'baseline'} {out / 'candidate'}   # the verdict")
    return EXIT_OK


def tune_command(args) -> int:
    from ..sweep.config import load_config
    from ..sweep.lr_table import LrTable, save_table
    from ..perf.tune import describe, sweep_trainer, tune_sweep

    config = load_config(args.target)
    out = output_file(args.out or Path("results/tuned") / f"{config.name}.yaml", "--out")
    rates: dict = {}
    scores = []
    for result in tune_sweep(sweep_trainer(config), args.grid, args.allow_divergence):
        rates.setdefault((result.model, result.optimizer), {})[result.k] = result.best_lr
        scores.append(result)
        print(describe(result, config.headline), flush=True)
    save_table(LrTable(source=str(out), rates=rates), out)
    write_json_atomic(out.with_suffix(".scores.json"), [asdict(r) for r in scores])
    print(f"learning-rate table: {out} (use it with `lr: tuned:{out}`)")
    return 0
