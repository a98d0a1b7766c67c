# Over 400 lines: every step of the check is one function here, so the lent machine runs one module
# per step (python -m bench.perf.gpu_check STEP) and a reader sees all that the check measures.
"""The prepared GPU check: what a lent GPU must show, in steps that each fit a time cap.

``gpu_check.sh`` runs each step as its own process under its own ``timeout`` (a step that runs
long is cut, the next one still runs), most informative first, and refreshes the summary after
every step (``gpu_summary``). Every step writes its one file as it goes, so a cut step keeps
what it measured:
  info.json      machine, GPU, packages, source commit (what a result records)
  smoke.jsonl    (<= 45 s) every kernel compiled and the CuPy and Numba caches warmed; GraphStep
                 against its own epochs run eagerly, 20 epochs, float64, on rotation, nd_exp,
                 non_uniform_sum: bitwise equal or the first difference, the step that ran,
                 the capture error if any, one block's time
  speed.jsonl    per-epoch times, one row a line: device float32 at every model, optimizer and
                 k with the official code's H200 time beside it, the 64-seed batch scaling,
                 NumPy float32 on the same machine, device float64
  parity.jsonl   NumPy vs the device from the same seeds and initial weights, float64: epochs
                 to 0.3 within one evaluation step, largest d_align difference, one row a line
  fig4.md        the ``fig4`` preset end to end from an empty work folder: wall time, table
                 (a "cut" status and the records done where its cap stopped it)
  fig4.png       its scaling plot
  pytest.txt     the test suite with CuPy present (its CuPy cases first, then the rest but the
                 slow ones, on 8 workers), as pytest prints it
  summary.json   every GPU target of issues 19 and 20, measured or "not measured" and why

``--dry`` runs the same code on the CPU with small sizes: array-api-strict (NumPy where it is not
installed) stands in for the device, ``smoke`` for the ``fig4`` preset, and the test step runs
two small test files. CI runs it so that the check cannot rot.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from lae_core import MODELS, Schedule, run_batch, synthetic
from lae_core import backend as be

from ..sweep.lr_table import paper_table

OFFICIAL_TIMES = Path(__file__).resolve().parent / "data" / "official_gpu_h200_epoch_times.csv"
OFFICIAL_OPTIMIZERS = {"SGD": "sgd_nesterov", "Adam": "adam"}
# In the order gpu_check.sh runs them (most informative first); 'summary' is refreshed after each
STEPS = ("info", "smoke", "speed", "parity", "fig4", "tests")
SMOKE_MODELS = ("rotation", "nd_exp", "non_uniform_sum")
SMOKE_BLOCKS, SMOKE_EVERY = 2, 10        # 20 epochs: a captured block, replayed twice


@dataclass(frozen=True)
class Plan:
    device: Any            # the namespace (or backend name) under test
    dry: bool
    m: int
    n: int
    ks: tuple[int, ...]
    parity: tuple[int, int, int, int]   # m, n, k, epochs
    preset: str
    blocks: int | None                  # timed blocks per speed row (None: by the work)
    pytest: tuple[tuple[str, ...], ...]  # the test step's pytest runs, in order


def plan(dry: bool) -> Plan:
    if dry:   # small: seconds a step on a loaded CPU, and still every code path
        return Plan(strict_or_numpy(), True, 40, 400, (2,), (20, 200, 3, 40), "smoke", 3,
                    (("tests/core/steps/test_graph_step.py", "tests/core/test_assertions.py"),))
    parallel = ("-n", "8") if importlib.util.find_spec("xdist") else ()
    return Plan("cupy", False, 1000, 5000, (2, 10, 100, 500), (200, 2000, 10, 3000), "fig4",
                None, (("-m", "gpu"), ("-m", "not slow and not gpu", *parallel)))


def strict_or_numpy() -> Any:
    """array-api-strict, the dry run's stand-in device; NumPy where it is not installed."""
    try:
        import array_api_strict
        return array_api_strict
    except ImportError:
        return be.get_namespace("numpy")


def namespace(backend: Any) -> Any:
    return be.get_namespace(backend) if isinstance(backend, str) else backend


# --- writing as it goes ---------------------------------------------------------------------------

class Rows:
    """A JSON Lines file written row by row: each row is flushed to disk as it is made, so a
    step cut by its cap (SIGINT, then SIGKILL) leaves every row it finished."""

    def __init__(self, path: Path):
        self.path = path
        path.write_text("")

    def add(self, **row: Any) -> dict:
        with open(self.path, "a") as f:
            f.write(json.dumps(row, default=str) + "\n")
            f.flush()
            os.fsync(f.fileno())
        return row


def write_json(path: Path, obj: Any) -> None:
    """Atomically: a cut step leaves the old file or the new one, never half of one."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=1, default=str))
    os.replace(tmp, path)


def timed(action) -> tuple[Any, float]:
    t0 = time.perf_counter()
    value = action()
    return value, time.perf_counter() - t0


# --- info ---------------------------------------------------------------------------------------

def info(p: Plan, out: Path) -> None:
    from ..sweep.env import collect

    write_json(out / "info.json", {"dry": p.dry, **collect(namespace(
        "numpy" if p.dry else p.device))})


# --- smoke --------------------------------------------------------------------------------------

def smoke(p: Plan, out: Path) -> None:
    """Warm every cache the later steps need, then GraphStep against its eager twin."""
    rows = Rows(out / "smoke.jsonl")
    for row in warm_caches(p):
        rows.add(kind="warm", **row)
    for model in SMOKE_MODELS:
        rows.add(kind="graph_vs_eager", **graph_against_eager(p, model))


def warm_caches(p: Plan) -> Iterator[dict]:
    """Compile every CUDA kernel (one RawModule), and run a few epochs of every step kind in
    both dtypes on the device and on NumPy, so that Numba's on-disk cache and CuPy's kernel
    cache are filled before the capped steps that time them."""
    from lae_core.steps import kernels

    if not p.dry:
        _, seconds = timed(lambda: kernels.for_module(_cupy()))
        yield {"what": "CUDA kernels (RawModule)", "seconds": seconds}
    data = synthetic(m=48, n=240, seed=1, keep_samples=True)
    schedule = Schedule(thresholds=(), max_epochs=4, eval_every=2)
    # small k: the graph (GPU) or compiled (NumPy) step; k = 40: cuBLAS or BLAS products
    for backend in ((p.device, "numpy") if not p.dry else ("numpy",)):
        xp = namespace(backend)
        for dtype in ("float32", "float64"):
            for model, optimizer, k in (("rotation", "sgd_nesterov", 3),
                                        ("uniform_sum", "adam", 3),
                                        ("nd_exp", "sgd_nesterov", 40), ("vae", "adam", 3),
                                        ("nd", "adam", 3)):
                batch, seconds = timed(lambda: run_batch(
                    data, model, optimizer, k, [1e-4] * 2, [0, 1], schedule=schedule,
                    dtype=dtype, backend=xp))
                yield {"what": f"{model} {optimizer} k={k}", "backend": be.backend_name(xp),
                       "dtype": dtype, "step": batch.step, "graph_error": batch.graph_error,
                       "seconds": seconds}


def _cupy():
    import cupy
    return cupy


def graph_against_eager(p: Plan, model: str) -> dict:
    """GraphStep and the same kernels run eagerly, from the same start, float64, 20 epochs in
    blocks of 10: bitwise equal after each block, or the first difference."""
    from lae_core.steps import kernels
    from lae_core.steps.packed import GraphStep

    xp = be.get_namespace("numpy" if p.dry else "cupy")
    kern = kernels.NumpyKernels() if p.dry else None
    products = kernels.ArrayProducts(np) if p.dry else None
    graph = smoke_step(GraphStep, xp, model, kern=kern, products=products)
    eager = smoke_step(GraphStep, xp, model, kern=kern, products=products)
    eager.graph_error = "capture not tried: the eager twin"   # a set error: never captures
    row: dict[str, Any] = {"model": model, "dtype": "float64", "epochs":
                           SMOKE_BLOCKS * SMOKE_EVERY, "bitwise_equal": True,
                           "first_difference": None}
    for block in range(SMOKE_BLOCKS):
        graph.run(SMOKE_EVERY)
        eager.run(SMOKE_EVERY)
        difference = first_difference(graph.host_params(), eager.host_params())
        if difference:
            row.update(bitwise_equal=False, first_difference={
                "after_epoch": (block + 1) * SMOKE_EVERY, **difference})
            break
    row.update(step=graph.name, graph_error=graph.graph_error)
    _, block_s = timed(lambda: (graph.run(SMOKE_EVERY), be.synchronize(xp)))
    _, eager_s = timed(lambda: (eager.run(SMOKE_EVERY), be.synchronize(xp)))
    row.update(block_s=block_s, block_epochs=SMOKE_EVERY, eager_block_s=eager_s)
    return row


def smoke_step(kind, xp: Any, model: str, **kwargs):
    """A step of ``kind`` for two runs of ``model`` (Nesterov, k = 4, m = 64), float64."""
    from lae_core.hyper import device_hyperparameters, preset_hyperparameters
    from lae_core.objectives import get_objective
    from lae_core.operators import into_basis, make_operator
    from lae_core.optim import get_optimizer
    from lae_core.train import initial_weights

    k, seeds = 4, (1, 2)
    data = synthetic(m=64, n=640, seed=5, high=8.0, low=0.5)
    dt = be.dtype_of(xp, "float64")
    op = make_operator("spectral", xp, data, k, dt)
    W1, W2 = (np.stack(w) for w in zip(*[initial_weights(s, k, data.m) for s in seeds]))
    hp = device_hyperparameters(xp, preset_hyperparameters(model, k, data.m), dt)
    lr = paper_table().lookup(model, "sgd_nesterov", k)
    params = tuple(be.to_device(xp, a, dt) for a in into_basis("spectral", data, W1, W2))
    return kind(op, get_objective(model), get_optimizer("sgd_nesterov"), hp, params,
                be.to_device(xp, np.full(len(seeds), lr), dt), be.flush_floor(xp, dt),
                **{key: v for key, v in kwargs.items() if v is not None})


def first_difference(got: tuple, want: tuple) -> dict | None:
    """Where two parameter tuples first differ in their bits (None: identical)."""
    for index, (a, b) in enumerate(zip(got, want)):
        bits_a, bits_b = a.view(f"u{a.itemsize}"), b.view(f"u{b.itemsize}")
        if not np.array_equal(bits_a, bits_b):     # bits: -0.0 and NaN payloads count too
            where = tuple(int(i) for i in np.argwhere(bits_a != bits_b)[0])
            return {"parameter": index, "index": where, "graph": float(a[where]),
                    "eager": float(b[where]), "max_abs_difference":
                    float(np.nanmax(np.abs(a - b)))}
    return None


# --- speed --------------------------------------------------------------------------------------

def speed(p: Plan, out: Path) -> None:
    """Device float32 first (the targets), each row beside the official code's time; the
    64-seed batch scaling; NumPy float32 on the same machine; device float64."""
    from . import speed as sp

    rows = Rows(out / "speed.jsonl")
    data = synthetic(m=p.m, n=p.n, seed=1234, keep_samples=True)
    official = {(r["model"], r["optimizer"], r["k"]): r["epoch_s"] for r in official_times()}

    def table(backend: Any, dtype: str) -> None:
        xp = namespace(backend)
        for k in p.ks:
            for model in MODELS:
                for optimizer in ("sgd_nesterov", "adam"):
                    row = sp.as_dicts([sp.speed_row(data, model, optimizer, k, dtype=dtype,
                                                    backend=xp, blocks=p.blocks)])[0]
                    rows.add(table=f"{be.backend_name(xp)}-{dtype}", **row,
                             official_h200_epoch_s=official.get((model, optimizer, k)))
    table(p.device, "float32")
    scaling = sp.batch_scaling(data, k=10, runs=64, dtype="float32", backend=namespace(p.device),
                               **({"blocks": p.blocks} if p.blocks else {}))
    rows.add(table="batch_scaling", backend=be.backend_name(namespace(p.device)),
             **sp.as_dicts([scaling])[0])
    table("numpy", "float32")
    table(p.device, "float64")


def official_times() -> list[dict]:
    """The official code's per-epoch times on an H200 (see data/README.md), one row a cell."""
    import csv
    with open(OFFICIAL_TIMES, newline="") as f:
        return [{"model": r["model"], "optimizer": OFFICIAL_OPTIMIZERS[r["optimizer"]],
                 "k": int(r["k"]), "epoch_s": float(r["median_epoch_s"])}
                for r in csv.DictReader(f)]


# --- parity -------------------------------------------------------------------------------------

def parity(p: Plan, out: Path) -> None:
    """Same seeds and initial weights on NumPy and on the device, float64, full history."""
    rows = Rows(out / "parity.jsonl")
    m, n, k, epochs = p.parity
    data = synthetic(m=m, n=n, seed=1234)
    schedule = Schedule(thresholds=(0.3,), max_epochs=epochs, eval_every=10, history=True)
    rates = paper_table()   # stable for every model and optimizer: no per-model rule here
    for model in MODELS:
        for optimizer in ("sgd_nesterov", "adam"):
            lr = rates.lookup(model, optimizer, k)
            cpu, dev = (run_batch(data, model, optimizer, k, [lr, lr], [1, 2],
                                  schedule=schedule, backend=namespace(b))
                        for b in ("numpy", p.device))
            rows.add(**parity_row(model, optimizer, cpu, dev), k=k, m=m, epochs=epochs)


def parity_row(model: str, optimizer: str, cpu, dev) -> dict:
    gaps, diffs = [], []
    for c, d in zip(cpu.runs, dev.runs):
        a, b = c.epochs_to[0.3], d.epochs_to[0.3]
        gaps.append(0 if a == b else (abs(a - b) if a is not None and b is not None else None))
        n = min(len(c.history["d_align"]), len(d.history["d_align"]))
        diffs.append(float(np.max(np.abs(c.history["d_align"][:n] - d.history["d_align"][:n]))))
    return {"model": model, "optimizer": optimizer,
            "epochs_to_0.3": [[c.epochs_to[0.3], d.epochs_to[0.3]]
                              for c, d in zip(cpu.runs, dev.runs)],
            "within_one_eval": all(g is not None and g <= 10 for g in gaps),
            "max_d_align_diff": max(diffs), "steps": [cpu.step, dev.step],
            "graph_error": dev.graph_error}


# --- fig4 ---------------------------------------------------------------------------------------

def fig4(p: Plan, out: Path, workdir: Path) -> int:
    """The preset end to end from an empty work folder, its table and plot. fig4.md is written
    first with status 'started' (what a killed step leaves), then 'done' or 'cut'."""
    from ..analysis.plots import all_plots, write_plots

    shutil.rmtree(workdir, ignore_errors=True)       # a warm machine keeps an earlier run
    run_dir = workdir / p.preset
    backend = "numpy" if p.dry else p.device
    facts: dict[str, Any] = {"preset": p.preset, "backend": backend, "status": "started"}
    write_fig4(out, facts, "")
    t0 = time.perf_counter()
    try:
        code = run_preset(p.preset, run_dir, backend)
        facts.update(status="done", exit_code=code)
    except KeyboardInterrupt:                          # the step's cap: keep what ran
        facts.update(status="cut", exit_code=None)
    facts["wall_time_s"] = time.perf_counter() - t0
    facts["records_done"] = len(list(run_dir.glob("records/*.json"))) if run_dir.is_dir() else 0
    table = subprocess.run([sys.executable, "-m", "bench", "show", str(run_dir), "--format",
                            "markdown"], capture_output=True, text=True).stdout
    write_fig4(out, facts, table)
    if facts["status"] == "done":
        write_plots(all_plots([run_dir]), workdir / "plots")
        pngs = sorted((workdir / "plots").glob("*scaling*.png")) or sorted(
            (workdir / "plots").glob("*.png"))
        if pngs:
            shutil.copyfile(pngs[0], out / "fig4.png")
    return 0 if facts.get("exit_code") == 0 else 1


def write_fig4(out: Path, facts: dict, table: str) -> None:
    wall = facts.get("wall_time_s")
    text = (f"<!-- {json.dumps(facts)} -->\n# `{facts['preset']}` preset on {facts['backend']}"
            f"\n\nstatus: {facts['status']}"
            + (f", wall time {wall:.1f} s" if wall is not None else "") + f"\n\n{table}")
    tmp = out / ".fig4.md.tmp"
    tmp.write_text(text)
    os.replace(tmp, out / "fig4.md")


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


# --- tests --------------------------------------------------------------------------------------

def tests(p: Plan, out: Path) -> int:
    """The suite's CuPy cases first (what only a GPU can check), then the rest where the cap
    leaves time, all into pytest.txt as pytest prints it (unbuffered: a cut run keeps its
    lines). The dry run runs two small files (the GraphStep guards among them)."""
    codes = []
    with open(out / "pytest.txt", "w") as log:
        for args in p.pytest:
            log.write(f"$ pytest -q -rs -p no:cacheprovider {' '.join(args)}\n")
            log.flush()
            codes.append(subprocess.run(
                [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", *args],
                stdout=log, stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"}).returncode)
    # 5: nothing selected (no GPU cases collected): not a failure
    return 0 if all(c in (0, 5) for c in codes) else 1


# --- entry --------------------------------------------------------------------------------------

def default_out(dry: bool) -> Path:
    """results/gpu/<date>-<device>/ (spaces and odd characters made safe)."""
    date = time.strftime("%Y-%m-%d", time.gmtime())
    if dry:
        return Path("results/gpu") / f"{date}-dry"
    name = be.device_facts(be.get_namespace("cupy"))["gpu_name"]
    return Path("results/gpu") / (f"{date}-" + "".join(
        c if c.isalnum() or c in "._-" else "-" for c in name))


def run_step(step: str, p: Plan, out: Path, workdir: Path) -> int:
    """One step of the check into ``out``; 0 when it ran (targets are judged by the summary)."""
    from .gpu_summary import summarize

    if step == "info":
        info(p, out)
    elif step == "smoke":
        smoke(p, out)
    elif step == "speed":
        speed(p, out)
    elif step == "parity":
        parity(p, out)
    elif step == "fig4":
        return fig4(p, out, workdir)
    elif step == "tests":
        return tests(p, out)
    else:
        summarize(out, dry=p.dry)
    return 0


def gpu_check(out: Path, *, dry: bool = False, step: str | None = None,
              workdir: Path = Path("results/gpu/_work")) -> int:
    """Run ``step`` (or every step, in order, in this one process: no caps) into ``out``."""
    p = plan(dry)
    out.mkdir(parents=True, exist_ok=True)
    codes = [run_step(name, p, out, workdir) for name in ([step] if step else
                                                           (*STEPS, "summary"))]
    return 1 if any(codes) else 0


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.perf.gpu_check --out OUT --step STEP [--dry]``: what gpu_check.sh
    runs per step (the ``lae-bench gpu-check`` verb does the same, but loads the whole CLI)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bench.perf.gpu_check")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--step", choices=(*STEPS, "summary"))
    parser.add_argument("--dry", action="store_true")
    parser.add_argument("--work", type=Path, default=Path("results/gpu/_work"))
    args = parser.parse_args(argv)
    try:
        return gpu_check(args.out, dry=args.dry, step=args.step, workdir=args.work)
    except KeyboardInterrupt:   # the step's cap (timeout sends SIGINT): its rows are on disk
        print(f"gpu-check: {args.step or 'the check'} interrupted; its file keeps the rows it "
              "finished", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
