"""Checks of the nightly history against its targets, on seeded synthetic histories.

    python -m bench.perf.history_check noise RUN_DIR...    night-to-night noise of real runs
    python -m bench.perf.history_check detect [--sigma S]  planted steps, no steps, machine change
    python -m bench.perf.history_check publish [--nights 365 --cells 100]   publish time and size

Synthetic nights have the shape ``history.summarise`` writes. Their per-epoch times are a
cell's base time times log-normal noise of ``sigma`` (the standard deviation of the log of one
night's value; ``NOISE_SIGMA`` is this project's measured figure, see ``noise``), with a step
of ``step`` from ``step_night`` on, and a machine change (another CPU, 1.8x slower) from
``machine_night`` on. Epoch counts are deterministic, as on a real machine with one backend.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from ..analysis.changepoints import ChangePoint, find_change_points
from ..analysis.history import (History, NIGHT_KIND, NIGHT_SCHEMA, history_frame,
                                night_file_name, night_rows, short_hash, summarise)

# Night-to-night noise of the log of a cell's clean-block per-epoch time, measured on this
# project's 2-core machine while other engineers' jobs shared it (``noise``; docs/history.md).
NOISE_SIGMA = 0.105
MODELS = ("uniform_sum", "non_uniform_sum", "rotation", "nd_exp", "nd")
OPTIMIZERS = ("sgd_nesterov", "adam")
KS = (2, 5, 10, 20, 50, 100, 200, 300, 400, 500)
MACHINES = ({"cpu_model": "AMD EPYC", "blas": "scipy-openblas 0.3.31", "blas_threads": 2,
             "gpu": None},
            {"cpu_model": "Intel(R) Xeon(R) Processor", "blas": "scipy-openblas 0.3.31",
             "blas_threads": 2, "gpu": None})
SLOWER_MACHINE = 1.8
GPU_MACHINE = {"cpu_model": "AMD EPYC", "blas": "scipy-openblas 0.3.31", "blas_threads": 16,
               "gpu": "NVIDIA H200"}
GPU_SPEEDUP = 3.0
START = pd.Timestamp("2026-01-01T02:17:00Z")


def synthetic_cells(count: int) -> list[dict[str, Any]]:
    """``count`` cells: every k of a model and optimizer, then the next, as many as asked."""
    cells = [{"model": m, "optimizer": o, "k": k} for m in MODELS for o in OPTIMIZERS
             for k in KS]
    if count > len(cells):
        raise ValueError(f"at most {len(cells)} synthetic cells")
    return cells[:count]


def synthetic_nights(nights: int, cells: int, noise: float | np.ndarray = NOISE_SIGMA,
                     seed: int = 0, step_night: int | None = None, step: float = 1.5,
                     machine_night: int | None = None, gpu: bool = False
                     ) -> list[dict[str, Any]]:
    """A history of ``nights`` nights (module docstring); night i has commit c<i>. ``noise``:
    the sigma of log-normal noise, or measured log residuals to draw from. ``gpu``: every
    commit also runs on a GPU machine (CuPy), ``GPU_SPEEDUP`` x k / 10 faster."""
    rng = np.random.default_rng(seed)
    layout = synthetic_cells(cells)
    base = np.exp(rng.uniform(np.log(1e-4), np.log(1e-1), len(layout)))
    epochs = rng.integers(20, 2000, len(layout)) * 10
    speedup = np.array([GPU_SPEEDUP * max(1.0, c["k"] / 10) for c in layout])
    out = []
    for i in range(nights):
        machine = MACHINES[1] if machine_night is not None and i >= machine_night \
            else MACHINES[0]
        factor = (step if step_night is not None and i >= step_night else 1.0) * (
            SLOWER_MACHINE if machine is MACHINES[1] else 1.0)
        out.append(_night(i, machine, "numpy", layout, base * factor * _noise(
            rng, noise, len(layout)), epochs))
        if gpu:
            out.append(_night(i, GPU_MACHINE, "cupy", layout, base * factor / speedup * _noise(
                rng, noise, len(layout)), epochs))
    return out


def _noise(rng: np.random.Generator, noise: float | np.ndarray, size: int) -> np.ndarray:
    """Multiplicative noise: exp of N(0, noise^2), or of residuals drawn from ``noise``."""
    if np.ndim(noise) == 0:
        return np.exp(float(noise) * rng.standard_normal(size))
    return np.exp(rng.choice(np.asarray(noise, dtype=float), size))


def _night(i: int, machine: dict, backend: str, layout: Sequence[dict], times: np.ndarray,
           epochs: np.ndarray) -> dict[str, Any]:
    cells = []
    for cell, t, e in zip(layout, times, epochs):
        cells.append({"data_id": "synthetic-linear-m1000-n5000-seed1234", **cell,
                      "dtype": "float32", "backend": backend, "data_fingerprint": "bde04c87b8",
                      "device": machine["gpu"] or machine["cpu_model"], "setup": "s1",
                      "lr": 0.001, "seeds": 3, "max_epochs": 20000,
                      "epochs_median": float(e), "censored": False, "straddles": False,
                      "statuses": {"reached": 3}, "epoch_time_s": float(t),
                      "clean_epoch_time_s": float(t), "reference_time_s": 1e-3,
                      "normalised_time": float(t) / 1e-3})
    commit = f"{i:08d}" + short_hash(i, 32)
    date = START + pd.Timedelta(days=i, hours=1 if backend == "cupy" else 0)
    return {"kind": NIGHT_KIND, "schema_version": NIGHT_SCHEMA, "run_id": f"night-{i}-{backend}",
            "date": date.strftime("%Y-%m-%dT%H:%M:%SZ"), "commit": commit, "dirty": False,
            "config_hash": "c0ffee00", "machine": machine, "machine_id": short_hash(machine),
            "backend": backend, "threshold": 0.3, "cells": cells}


def history_of(nights: Iterable[dict[str, Any]]) -> History:
    """The History of synthetic nights, as ``load_history`` would give it."""
    rows = [row for night in nights for row in night_rows(night, night_file_name(night))]
    return History(history_frame(rows), [], "synthetic")


def write_history(nights: Iterable[dict[str, Any]], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for night in nights:
        (folder / night_file_name(night)).write_text(json.dumps(night))
    return folder


# --- the detection targets ----------------------------------------------------------------------

def step_found(points: Sequence[ChangePoint], step_night: int, nights: Sequence[str]) -> bool:
    """Whether a time change point sits at ``step_night`` (within one night)."""
    return any(p.metric == "time" and abs(nights.index(p.night_after) - step_night) <= 1
               for p in points)


def detection_trial(seed: int, nights: int = 60, noise: float | np.ndarray = NOISE_SIGMA,
                    step_night: int | None = None, machine_night: int | None = None,
                    step: float = 1.5) -> tuple[list[ChangePoint], list[str]]:
    """The change points of one single-cell synthetic history, and its night names in order."""
    history = history_of(synthetic_nights(nights, 1, noise, seed, step_night, step,
                                          machine_night))
    return find_change_points(history), list(dict.fromkeys(history.frame["night"]))


def step_night_of(seed: int, nights: int) -> int:
    """The seeded night of a planted step: anywhere from night 10 to ``nights`` - 10."""
    return int(np.random.default_rng(10_000 + seed).integers(10, nights - 10))


def detection_targets(histories: int = 40, nights: int = 60,
                      noise: float | np.ndarray = NOISE_SIGMA) -> dict[str, Any]:
    """Planted 1.5x steps found (within one night), false change points without a step, and
    change points reported across a machine change, over ``histories`` seeded histories."""
    found = false = at_switch = elsewhere = 0
    for seed in range(histories):
        at = step_night_of(seed, nights)
        points, names = detection_trial(seed, nights, noise, step_night=at)
        found += step_found(points, at, names)
        false += len(detection_trial(1000 + seed, nights, noise)[0])
        points, names = detection_trial(2000 + seed, nights, noise, machine_night=at)
        near = [abs(names.index(p.night_after) - at) <= 1 for p in points]
        at_switch += sum(near)
        elsewhere += len(near) - sum(near)
    return {"histories": histories, "nights": nights, "steps_found": found,
            "false_change_points": false, "machine_change_reports": at_switch,
            "false_change_points_with_machine_change": elsewhere}


# --- the measured noise -------------------------------------------------------------------------

MEASURED = Path(__file__).resolve().parents[2] / "results" / "measurements"


def measured_residuals(run_dirs: Sequence[str | Path], column: str = "clean_epoch_time_s"
                       ) -> pd.Series:
    """Per cell and run: the log of ``column`` less the cell's median over the runs."""
    rows = [row for d in run_dirs for row in night_rows(summarise(d), str(d))]
    frame = history_frame(rows)
    frame = frame[np.isfinite(frame[column].astype(float)) & (frame[column] > 0)]
    logs = np.log(frame[column].astype(float))
    return logs - logs.groupby(frame["cell"]).transform("median")


def measured_noise(run_dirs: Sequence[str | Path], column: str = "clean_epoch_time_s"
                   ) -> dict[str, Any]:
    """Night-to-night noise of repeated runs of one sweep: per cell the robust standard
    deviation (1.4826 MAD) of the log of ``column`` over the runs, its median and maximum over
    cells, and the pooled residuals (``measured_residuals``)."""
    residuals = measured_residuals(run_dirs, column)
    frame = history_frame([row for d in run_dirs for row in night_rows(summarise(d), str(d))])
    cells = frame.loc[residuals.index, "cell"]
    robust = residuals.abs().groupby(cells).median() * 1.4826
    return {"runs": len(run_dirs), "cells": int(robust.size), "column": column,
            "median_sigma": round(float(robust.median()), 4),
            "max_sigma": round(float(robust.max()), 4),
            "residuals": [round(float(r), 4) for r in residuals]}


def load_residuals(path: Path | None = None) -> np.ndarray:
    """The pooled log residuals of the committed noise measurement (``noise --save``)."""
    path = path or sorted(MEASURED.glob("history_noise-*.json"))[-1]
    return np.array(json.loads(path.read_text())["clean_epoch_time_s"]["residuals"])


# --- publish ------------------------------------------------------------------------------------

def publish_timing(nights: int = 365, cells: int = 100, seed: int = 0) -> dict[str, Any]:
    """Seconds to publish a synthetic history (CPU and GPU nights), and the overview's size."""
    from ..analysis.site import publish

    with tempfile.TemporaryDirectory() as tmp:
        history = write_history(synthetic_nights(nights, cells, seed=seed,
                                                 step_night=nights // 2), Path(tmp) / "h")
        start, cpu = time.perf_counter(), time.process_time()
        index = publish(history, Path(tmp) / "site")
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        files = sum(1 for _ in index.parent.rglob("*.html"))
        size = sum(p.stat().st_size for p in index.parent.rglob("*.html"))
        overview = index.stat().st_size
    return {"nights": nights, "cells": cells, "seconds": round(seconds, 2),
            "cpu_seconds": round(cpu, 2), "overview_bytes": overview, "pages": files,
            "site_bytes": size}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.perf.history_check")
    verbs = parser.add_subparsers(dest="verb", required=True)
    noise = verbs.add_parser("noise", help="measure night-to-night noise of repeated runs")
    noise.add_argument("run_dirs", nargs="+")
    noise.add_argument("--save", metavar="FILE.json", help="also write the measurement")
    detect = verbs.add_parser("detect", help="the detection targets on synthetic histories")
    detect.add_argument("--sigma", type=float, help="log-normal noise of this sigma instead "
                        "of the committed measured residuals")
    detect.add_argument("--histories", type=int, default=40)
    detect.add_argument("--nights", type=int, default=60)
    pub = verbs.add_parser("publish", help="time `publish` on a synthetic history")
    pub.add_argument("--nights", type=int, default=365)
    pub.add_argument("--cells", type=int, default=100)
    args = parser.parse_args(argv)
    if args.verb == "noise":
        result = {c: measured_noise(args.run_dirs, c) for c in
                  ("clean_epoch_time_s", "epoch_time_s", "normalised_time")}
        if args.save:
            Path(args.save).write_text(json.dumps(result, indent=1) + "\n")
        result = {c: {k: v for k, v in r.items() if k != "residuals"} for c, r in result.items()}
    elif args.verb == "detect":
        noise_model = args.sigma if args.sigma is not None else load_residuals()
        result = detection_targets(args.histories, args.nights, noise_model)
    else:
        result = publish_timing(args.nights, args.cells)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
