"""``backend: auto`` never picks the slower device: a short timing per problem, cached per machine.

A GPU wins by far at large k, but at the smallest k an epoch is a few microseconds of arithmetic
on either side, and launch latency can make the GPU the slower one. ``fastest_backend`` times a
few evaluation blocks of the real training loop on each candidate (warm-up block dropped), with
as many runs as the batch will train, and keeps the faster. The answer is cached in a JSON file
keyed by everything that can change it: the machine (CPU model, usable cores, BLAS thread
settings, every candidate's device), the versions (lae-bench, NumPy, CuPy) and the problem
(model, optimizer, formulation, k, m, n, dtype, batch size). A 64-seed batch is never decided by
a one-run probe, nor by a probe taken on another machine or by another version.
"""
from __future__ import annotations

import json
import os
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from . import backend as be
from .data import Dataset
from .train import Schedule, choose_formulation, run_batch

PROBE = Schedule(thresholds=(), max_epochs=40, eval_every=10)   # 4 blocks, the first dropped
PROBE_LR = 1e-12      # nothing diverges or finishes early: cost does not depend on the rate
# A candidate still probing after this many times the best candidate's whole probe has lost:
# a 64-run probe of the slow side of a large problem need not be sat through.
GIVE_UP_AFTER = 3.0
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "NUMBA_NUM_THREADS")


class _Slower(Exception):
    """Raised inside a probe that has already lost."""


def default_cache() -> Path:
    """$XDG_CACHE_HOME/lae-bench/backend-calibration.json (~/.cache by default)."""
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "lae-bench" / "backend-calibration.json"


def machine_key(candidates: Sequence[Any]) -> str:
    """The machine and software as the cache sees them: CPU model, usable cores, BLAS thread
    settings, every candidate's device and the versions of lae-bench, NumPy and CuPy."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    threads = ",".join(f"{v}={os.environ[v]}" for v in THREAD_VARIABLES if v in os.environ)
    devices = [be.device_facts(xp).get("gpu_name", be.backend_name(xp)) for xp in candidates]
    versions = [f"lae-bench {_version('lae-bench')}", f"numpy {np.__version__}",
                *[f"cupy {be.device_facts(xp)['cupy_version']}" for xp in candidates
                  if be.device_facts(xp)]]
    return "|".join([be.cpu_model(), f"{cores} cores", f"threads {threads or 'default'}",
                     *devices, *versions])


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "unknown"     # run from a source tree that was never installed


def fastest_backend(dataset: Dataset, model: str, optimizer: str, k: int, dtype: str,
                    candidates: Sequence[Any], *, runs: int = 1, formulation: str = "auto",
                    cache: Path | None = None) -> Any:
    """The candidate namespace whose epochs of this problem, ``runs`` runs in one batch, are
    fastest on this machine."""
    form = choose_formulation(model, optimizer, formulation)
    problem = f"{model}|{optimizer}|{form}|k{k}|m{dataset.m}|n{dataset.n}|{dtype}|runs{runs}"
    key = f"{machine_key(candidates)}|{problem}"
    path = cache or default_cache()
    known = _read(path)
    names = [be.backend_name(xp) for xp in candidates]
    if known.get(key) in names:
        return candidates[names.index(known[key])]
    seconds, best_wall = [], None
    for xp in candidates:
        limit = None if best_wall is None else GIVE_UP_AFTER * best_wall
        per_epoch, wall = probe_seconds(dataset, model, optimizer, k, dtype, xp, form, runs,
                                        limit)
        seconds.append(per_epoch)
        if per_epoch <= min(seconds):
            best_wall = wall
    best = int(np.argmin(seconds))
    known[key] = names[best]
    _write(path, known)
    return candidates[best]


def probe_seconds(dataset: Dataset, model: str, optimizer: str, k: int, dtype: str, xp: Any,
                  formulation: str, runs: int = 1, give_up_after: float | None = None
                  ) -> tuple[float, float]:
    """(median seconds per batch epoch of ``runs`` runs on ``xp``; seconds of the timed
    blocks), the warm-up block (compilation, caches) left out of both. inf when the timed
    blocks ran past ``give_up_after`` seconds."""
    timed_from: list[float] = []

    def stop_when_lost(epoch: int, align: np.ndarray) -> None:
        if epoch == PROBE.eval_every:            # the warm-up block just ended
            timed_from.append(time.perf_counter())
        elif (give_up_after is not None and timed_from
              and time.perf_counter() - timed_from[0] > give_up_after):
            raise _Slower
    try:
        batch = run_batch(dataset, model, optimizer, k, [PROBE_LR] * runs, list(range(runs)),
                          schedule=PROBE, dtype=dtype, backend=xp, formulation=formulation,
                          on_eval=stop_when_lost)
    except _Slower:
        return float("inf"), time.perf_counter() - timed_from[0]
    return (float(np.median(batch.runs[0].epoch_times[1:])),
            time.perf_counter() - timed_from[0])


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}       # no cache yet, or a damaged one: time again


def _write(path: Path, known: dict) -> None:
    """Atomically: a concurrent reader sees the old file or the new one."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".calibration-")
        with os.fdopen(fd, "w") as f:
            json.dump(known, f, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except OSError:
        pass            # a read-only home: the answer is just not remembered
