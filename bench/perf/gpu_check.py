"""The prepared GPU check: one command that runs everything a GPU must show, into one folder.

Steps (each writes one file, so the folder stays small enough to ship back from a lent machine):
  info.json      machine, GPU and packages (what a result records)
  pytest.txt     the test suite with CuPy present (its CuPy cases run instead of skipping)
  parity.json    CPU vs device from the same seeds and initial weights: epochs to 0.3 within
                 one evaluation step (float64) and the largest d_align difference per model
  speed.json     per-epoch time of every model at k in {2, 10, 100, 500}: device float32 and
                 float64 and NumPy on the same machine; batched-seeds throughput
  fig4.md        the ``fig4`` preset end to end: its wall time and Figure 4 table
  fig4.png       its scaling plot
  summary.json   the speed issue's targets, measured, met or not

``--dry`` runs the same code on the CPU only with small sizes: the device is replaced by
array-api-strict (so parity is still a real comparison of two array namespaces), the test-suite
step is skipped, and ``smoke`` stands in for ``fig4``. CI runs it so that the check cannot rot.
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

from lae_core import MODELS, Schedule, run_batch, synthetic

from ..sweep.lr_table import paper_table

TARGETS = {"fig4_seconds": 120.0, "batch64_throughput_gain": 20.0, "k500_speedup": 20.0}


@dataclass(frozen=True)
class Plan:
    device: Any            # the namespace (or backend name) under test
    m: int
    n: int
    ks: tuple[int, ...]
    parity_k: int
    parity_epochs: int
    preset: str
    run_tests: bool


def plan(dry: bool) -> Plan:
    if dry:
        import array_api_strict
        return Plan(array_api_strict, 60, 600, (2, 10), 4, 400, "smoke", False)
    return Plan("cupy", 1000, 5000, (2, 10, 100, 500), 10, 3000, "fig4", True)


def write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=1, default=str))


def run_tests(out: Path) -> dict:
    """The whole suite in a subprocess; its summary line is what counts."""
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs"], capture_output=True,
                          text=True)
    (out / "pytest.txt").write_text(proc.stdout + proc.stderr)
    last = (proc.stdout.strip().splitlines() or [""])[-1]
    return {"exit_code": proc.returncode, "summary": last}


def parity(p: Plan, out: Path) -> dict:
    """Same seeds and initial weights on NumPy and on the device, float64, full history."""
    data = synthetic(m=p.m, n=p.n, seed=1234)
    schedule = Schedule(thresholds=(0.3,), max_epochs=p.parity_epochs, eval_every=10,
                        history=True)
    rows = []
    rates = paper_table()   # stable for every model and optimizer: no per-model rule here
    for model in MODELS:
        for optimizer in ("sgd_nesterov", "adam"):
            lr = rates.lookup(model, optimizer, p.parity_k)
            cpu, dev = (run_batch(data, model, optimizer, p.parity_k, [lr, lr], [1, 2],
                                  schedule=schedule, backend=b).runs
                        for b in ("numpy", p.device))
            rows.append(_parity_row(model, optimizer, cpu, dev))
    result = {"k": p.parity_k, "m": p.m, "epochs": p.parity_epochs, "rows": rows,
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
    from . import speed as sp

    data = synthetic(m=p.m, n=p.n, seed=1234)
    result: dict[str, Any] = {}
    for backend, dtype in ((p.device, "float32"), (p.device, "float64"), ("numpy", "float64")):
        xp = sp.be.get_namespace(backend) if isinstance(backend, str) else backend
        result[f"{sp.be.backend_name(xp)}-{dtype}"] = sp.as_dicts(sp.speed_table(data, MODELS, ("sgd_nesterov", "adam"), p.ks,
                                                  dtype=dtype, backend=backend))
    scaling = sp.batch_scaling(data, k=min(10, p.m), runs=64, backend=p.device)
    result["batch_scaling"] = sp.as_dicts([scaling])[0]
    write_json(out / "speed.json", result)
    return result


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
    (out / "fig4.md").write_text(f"# `{p.preset}` preset on {backend}\n\nwall time: {wall:.1f} s"
                                 f" (exit code {code})\n\n{table}")
    write_plots(all_plots([run_dir]), workdir / "plots")
    pngs = sorted((workdir / "plots").glob("*scaling*.png")) or sorted(
        (workdir / "plots").glob("*.png"))
    if pngs:
        (out / "fig4.png").write_bytes(pngs[0].read_bytes())
    return {"preset": p.preset, "wall_time_s": wall, "exit_code": code}


def summarize(speed_result: dict, fig4_result: dict, device: str) -> dict:
    """The speed issue's targets as measured on this machine."""
    def epoch_s(table: str, k: int) -> dict:
        return {(r["model"], r["optimizer"]): r["epoch_s"] for r in speed_result[table]
                if r["k"] == k}
    tables = [t for t in speed_result if t != "batch_scaling"]
    k_top = max(r["k"] for r in speed_result["numpy-float64"])
    numpy_top = epoch_s("numpy-float64", k_top)
    speedups = {t: {f"{m}/{o}": numpy_top[(m, o)] / s for (m, o), s in epoch_s(t, k_top).items()}
                for t in tables if not t.startswith("numpy")}
    gain = speed_result["batch_scaling"]["throughput_gain"]
    return {
        "device": device, "k_for_speedup": k_top,
        "fig4_seconds": {"measured": fig4_result["wall_time_s"],
                         "target": TARGETS["fig4_seconds"],
                         "met": fig4_result["wall_time_s"] < TARGETS["fig4_seconds"]},
        "batch64_throughput_gain": {"measured": gain, "target": TARGETS["batch64_throughput_gain"],
                                    "met": gain >= TARGETS["batch64_throughput_gain"]},
        "speedup_over_numpy": {t: {"per_model": s, "min": min(s.values()),
                                   "met": min(s.values()) >= TARGETS["k500_speedup"]}
                               for t, s in speedups.items()},
    }


def default_out(dry: bool) -> Path:
    """results/gpu/<device>/ (spaces and odd characters made safe), or a dry-run folder."""
    if dry:
        return Path("results/gpu/dry-run")
    from lae_core.backend import device_facts, get_namespace

    name = device_facts(get_namespace("cupy"))["gpu_name"]
    return Path("results/gpu") / "".join(c if c.isalnum() or c in "._-" else "-" for c in name)


def gpu_check(out: Path, *, dry: bool = False) -> int:
    """Run every step into ``out``; returns 0 when every step ran (targets are reported)."""
    from lae_core.backend import get_namespace

    from ..sweep.env import collect

    p = plan(dry)
    out.mkdir(parents=True, exist_ok=True)
    workdir = out / "work" if dry else Path("results/gpu/_work")
    workdir.mkdir(parents=True, exist_ok=True)
    env = collect(get_namespace("numpy" if dry else "cupy"))
    write_json(out / "info.json", env)
    steps: dict[str, Any] = {"dry": dry}
    if p.run_tests:
        steps["tests"] = run_tests(out)
    steps["parity"] = {k: v for k, v in parity(p, out).items() if k != "rows"}
    speed_result = speed(p, out)
    steps["fig4"] = fig4(p, out, workdir)
    device = (env.get("gpu") or {}).get("gpu_name", "cpu (dry run)")
    steps["targets"] = summarize(speed_result, steps["fig4"], device)
    write_json(out / "summary.json", steps)
    failed = steps["fig4"]["exit_code"] != 0 or steps.get("tests", {}).get("exit_code", 0) != 0
    return 1 if failed else 0
