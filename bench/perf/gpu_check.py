"""The prepared GPU check: everything a lent GPU must show, in steps that each fit a time cap.

``gpu_check.sh`` runs each step as its own process under its own ``timeout`` (so that one slow
step cannot eat the lease) and the summary last; every step writes one file into one folder:
  info.json      machine, GPU and packages (what a result records)
  pytest.txt     the test suite with CuPy present (its CuPy cases run instead of skipping)
  parity.json    NumPy vs device from the same seeds and initial weights, float64, 3,000
                 epochs: epochs to 0.3 within one evaluation step, largest d_align difference
  speed.json     per-epoch time of every model at k in {2, 10, 100, 500}: device float32 and
                 float64, NumPy on the same machine, the official code's H200 times beside
                 them; the 64-seed batch throughput (written row by row: a cut-off step
                 keeps what it measured)
  fig4.md        the ``fig4`` preset end to end: its wall time and Figure 4 table
  fig4.png       its scaling plot
  summary.json   every target of the GPU speed issue, measured and met or not

``--dry`` runs the same code on the CPU only with small sizes, all steps in one process: the
device is replaced by array-api-strict (so parity is still a real comparison of two array
namespaces), the test-suite step is skipped, and ``smoke`` stands in for ``fig4``. CI runs it
so that the check cannot rot.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lae_core import MODELS, Schedule, get_objective, run_batch, synthetic

from ..sweep.lr_table import paper_table

OFFICIAL_TIMES = Path(__file__).resolve().parent / "data" / "official_gpu_h200_epoch_times.csv"
OFFICIAL_OPTIMIZERS = {"SGD": "sgd_nesterov", "Adam": "adam"}
STEPS = ("info", "tests", "parity", "speed", "fig4", "summary")
# The GPU speed issue's targets (float32, m = 1000, n = 5000)
TARGETS = {"spectral_sgd_epoch_s": 60e-6, "adam_epoch_s": 100e-6, "k500_epoch_s": 150e-6,
           "nd_bound_ratio": 1.3, "speedup_over_official": 10.0, "fig4_seconds": 120.0,
           "batch64_throughput_gain": 20.0}


@dataclass(frozen=True)
class Plan:
    device: Any            # the namespace (or backend name) under test
    m: int
    n: int
    ks: tuple[int, ...]
    parity: tuple[int, int, int, int]   # m, n, k, epochs
    preset: str
    run_tests: bool


def plan(dry: bool) -> Plan:
    if dry:
        import array_api_strict
        return Plan(array_api_strict, 60, 600, (2, 10), (40, 400, 4, 400), "smoke", False)
    return Plan("cupy", 1000, 5000, (2, 10, 100, 500), (200, 2000, 10, 3000), "fig4", True)


def write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=1, default=str))


def run_tests(out: Path) -> dict:
    """The suite in a subprocess, on every core where pytest-xdist is installed, without the
    slow CPU-only end-to-end checks; its summary line is what counts."""
    import importlib.util
    parallel = ["-n", "8"] if importlib.util.find_spec("xdist") else []
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-m", "not slow",
                           *parallel], capture_output=True, text=True)
    (out / "pytest.txt").write_text(proc.stdout + proc.stderr)
    last = (proc.stdout.strip().splitlines() or [""])[-1]
    return {"exit_code": proc.returncode, "summary": last}


def parity(p: Plan, out: Path) -> dict:
    """Same seeds and initial weights on NumPy and on the device, float64, full history."""
    m, n, k, epochs = p.parity
    data = synthetic(m=m, n=n, seed=1234)
    schedule = Schedule(thresholds=(0.3,), max_epochs=epochs, eval_every=10, history=True)
    rows = []
    rates = paper_table()   # stable for every model and optimizer: no per-model rule here
    for model in MODELS:
        for optimizer in ("sgd_nesterov", "adam"):
            lr = rates.lookup(model, optimizer, k)
            cpu, dev = (run_batch(data, model, optimizer, k, [lr, lr], [1, 2],
                                  schedule=schedule, backend=b).runs
                        for b in ("numpy", p.device))
            rows.append(_parity_row(model, optimizer, cpu, dev))
    result = {"k": k, "m": m, "epochs": epochs, "rows": rows,
              "all_within_one_eval": all(r["within_one_eval"] for r in rows),
              "max_d_align_diff": max(r["max_d_align_diff"] for r in rows)}
    write_json(out / "parity.json", result)
    return result


def _parity_row(model, optimizer, cpu_runs, dev_runs) -> dict:
    gaps, diffs = [], []
    for c, d in zip(cpu_runs, dev_runs):
        a, b = c.epochs_to[0.3], d.epochs_to[0.3]
        gaps.append(0 if a == b else (abs(a - b) if a is not None and b is not None else None))
        n = min(len(c.history["d_align"]), len(d.history["d_align"]))
        diffs.append(float(np.max(np.abs(c.history["d_align"][:n] - d.history["d_align"][:n]))))
    return {"model": model, "optimizer": optimizer,
            "epochs_to_0.3": [[c.epochs_to[0.3], d.epochs_to[0.3]]
                              for c, d in zip(cpu_runs, dev_runs)],
            "within_one_eval": all(g is not None and g <= 10 for g in gaps),
            "max_d_align_diff": max(diffs)}


def speed(p: Plan, out: Path) -> dict:
    """Per-epoch times, device float32 first (the targets), NumPy float32 on the same machine,
    device float64; then the batch throughput. speed.json is rewritten after every row."""
    from . import speed as sp

    data = synthetic(m=p.m, n=p.n, seed=1234, keep_samples=True)
    official = official_times()
    result: dict[str, Any] = {"official_h200": official}
    for backend, dtype in ((p.device, "float32"), ("numpy", "float32"), (p.device, "float64")):
        xp = sp.be.get_namespace(backend) if isinstance(backend, str) else backend
        rows = result.setdefault(f"{sp.be.backend_name(xp)}-{dtype}", [])
        for k in p.ks:
            for model in MODELS:
                for optimizer in ("sgd_nesterov", "adam"):
                    rows.append(sp.as_dicts([sp.speed_row(data, model, optimizer, k,
                                                          dtype=dtype, backend=backend)])[0])
                    write_json(out / "speed.json", result)
        if dtype == "float32" and backend is p.device:
            scaling = sp.batch_scaling(data, k=10, runs=64, dtype="float32", backend=backend)
            result["batch_scaling"] = sp.as_dicts([scaling])[0]
            write_json(out / "speed.json", result)
    return result


def official_times() -> list[dict]:
    """The official code's per-epoch times on an H200 (see data/README.md), one row a cell."""
    import csv
    with open(OFFICIAL_TIMES, newline="") as f:
        return [{"model": r["model"], "optimizer": OFFICIAL_OPTIMIZERS[r["optimizer"]],
                 "k": int(r["k"]), "epoch_s": float(r["median_epoch_s"])}
                for r in csv.DictReader(f)]


def run_preset(preset: str, run_dir: Path, backend: str) -> int:
    """``lae-bench run PRESET --out RUN_DIR --backend BACKEND --quiet`` in process; its exit code.

    Called through the sweep, not the CLI, so that the CLI (which offers this check as a verb)
    and this module do not import each other.
    """
    from ..errors import EXIT_OK, EXIT_RUN_FAILED
    from ..sweep.config import load_config
    from ..sweep.runner import Sweep

    outcome = Sweep(load_config(preset, {"backend": backend}), run_dir).run(quiet=True)
    return EXIT_RUN_FAILED if outcome.errors else EXIT_OK


def fig4(p: Plan, out: Path, workdir: Path) -> dict:
    """The preset end to end through the CLI, then its table and plot."""
    from ..analysis.plots import all_plots, write_plots

    run_dir = workdir / p.preset
    backend = "numpy" if not isinstance(p.device, str) else p.device
    t0 = time.perf_counter()
    code = run_preset(p.preset, run_dir, backend)
    wall = time.perf_counter() - t0
    table = subprocess.run([sys.executable, "-m", "bench", "show", str(run_dir), "--format",
                            "markdown"], capture_output=True, text=True).stdout
    facts = {"preset": p.preset, "wall_time_s": wall, "exit_code": code}
    (out / "fig4.md").write_text(f"<!-- {json.dumps(facts)} -->\n# `{p.preset}` preset on "
                                 f"{backend}\n\nwall time: {wall:.1f} s (exit code {code})\n\n"
                                 f"{table}")
    write_plots(all_plots([run_dir]), workdir / "plots")
    pngs = sorted((workdir / "plots").glob("*scaling*.png")) or sorted(
        (workdir / "plots").glob("*.png"))
    if pngs:
        (out / "fig4.png").write_bytes(pngs[0].read_bytes())
    return facts


def target(measured: float | None, limit: float, at_most: bool = True, **detail) -> dict:
    """One target as measured: {"measured", "target", "met"} (met None: not measured)."""
    met = None if measured is None else (measured <= limit if at_most else measured >= limit)
    return {"measured": measured, "target": limit, "met": met, **detail}


def speed_targets(speed_result: dict, device_table: str, numpy_table: str) -> dict:
    """The per-epoch targets of the GPU speed issue from speed.json's rows."""
    rows = speed_result.get(device_table, [])
    cpu = {(r["model"], r["optimizer"], r["k"]): r["epoch_s"]
           for r in speed_result.get(numpy_table, [])}
    official = {(r["model"], r["optimizer"], r["k"]): r["epoch_s"]
                for r in speed_result["official_h200"]}

    def worst(select) -> float | None:
        chosen = [r["epoch_s"] for r in rows if select(r)]
        return max(chosen) if chosen else None
    spectral = lambda r: (r["formulation"] == "spectral" and r["optimizer"] == "sgd_nesterov"  # noqa: E731
                          and r["k"] <= 100)
    # models on the samples (nd) have their own target: their matrix-product bound
    sampled = lambda r: get_objective(r["model"]).needs_samples  # noqa: E731
    adam = lambda r: r["optimizer"] == "adam" and r["k"] <= 100 and not sampled(r)  # noqa: E731
    k500 = lambda r: r["k"] == 500 and not sampled(r)  # noqa: E731
    nd = [r["bound_ratio"] for r in rows if sampled(r)]
    speedups = [official[key] / r["epoch_s"] for r in rows
                if (key := (r["model"], r["optimizer"], r["k"])) in official]
    over_numpy = [cpu[key] / r["epoch_s"] for r in rows
                  if (key := (r["model"], r["optimizer"], r["k"])) in cpu]
    return {
        "spectral_sgd_epoch_s": target(worst(spectral), TARGETS["spectral_sgd_epoch_s"]),
        "adam_epoch_s": target(worst(adam), TARGETS["adam_epoch_s"]),
        "k500_epoch_s": target(worst(k500), TARGETS["k500_epoch_s"]),
        "nd_bound_ratio": target(max(nd) if nd else None, TARGETS["nd_bound_ratio"]),
        "speedup_over_official": target(min(speedups) if speedups else None,
                                        TARGETS["speedup_over_official"], at_most=False,
                                        cells=len(speedups)),
        "speedup_over_numpy": target(min(over_numpy) if over_numpy else None, 1.0,
                                     at_most=False, cells=len(over_numpy)),
    }


def summarize(out: Path, dry: bool) -> dict:
    """Every target from the files the steps left in ``out`` (a missing file: not measured)."""
    def read(name: str) -> Any:
        path = out / name
        return json.loads(path.read_text()) if path.is_file() else None
    info, parity_result, speed_result = read("info.json"), read("parity.json"), read("speed.json")
    fig4_md = out / "fig4.md"
    fig4_facts = (json.loads(fig4_md.read_text().splitlines()[0][5:-4]) if fig4_md.is_file()
                  else {})
    tests = out / "pytest.txt"
    summary: dict[str, Any] = {
        "dry": dry,
        "device": ((info or {}).get("gpu") or {}).get("gpu_name", "cpu (dry run)"),
        "tests": (tests.read_text().strip().splitlines() or [""])[-1] if tests.is_file()
        else "not run",
        "parity": {k: v for k, v in (parity_result or {}).items() if k != "rows"},
        "fig4": fig4_facts,
    }
    targets: dict[str, Any] = {}
    if speed_result:
        names = [t for t in speed_result if t.endswith("float32") and not t.startswith("numpy")]
        if names:
            targets.update(speed_targets(speed_result, names[0], "numpy-float32"))
        gain = speed_result.get("batch_scaling", {}).get("throughput_gain")
        targets["batch64_throughput_gain"] = target(gain, TARGETS["batch64_throughput_gain"],
                                                    at_most=False)
    targets["fig4_seconds"] = target(fig4_facts.get("wall_time_s"), TARGETS["fig4_seconds"])
    summary["targets"] = targets
    write_json(out / "summary.json", summary)
    return summary


def default_out(dry: bool) -> Path:
    """results/gpu/<device>/ (spaces and odd characters made safe), or a dry-run folder."""
    if dry:
        return Path("results/gpu/dry-run")
    from lae_core.backend import device_facts, get_namespace

    name = device_facts(get_namespace("cupy"))["gpu_name"]
    return Path("results/gpu") / "".join(c if c.isalnum() or c in "._-" else "-" for c in name)


def run_step(step: str, p: Plan, out: Path, workdir: Path, dry: bool) -> int:
    """One step of the check into ``out``; 0 when it ran (targets are reported, not judged)."""
    from lae_core.backend import get_namespace

    from ..sweep.env import collect

    if step == "info":
        write_json(out / "info.json", collect(get_namespace("numpy" if dry else "cupy")))
    elif step == "tests":
        return 0 if not p.run_tests else int(run_tests(out)["exit_code"] != 0)
    elif step == "parity":
        parity(p, out)
    elif step == "speed":
        speed(p, out)
    elif step == "fig4":
        return int(fig4(p, out, workdir)["exit_code"] != 0)
    else:
        summarize(out, dry)
    return 0


def gpu_check(out: Path, *, dry: bool = False, step: str | None = None) -> int:
    """Run ``step`` (or every step, in order) into ``out``; non-zero when a step failed."""
    p = plan(dry)
    out.mkdir(parents=True, exist_ok=True)
    workdir = out / "work" if dry else Path("results/gpu/_work")
    workdir.mkdir(parents=True, exist_ok=True)
    codes = [run_step(name, p, out, workdir, dry) for name in ([step] if step else STEPS)]
    return 1 if any(codes) else 0
