"""``backend: auto`` never picks the slower device: a short timing per problem, cached per machine.

A GPU wins by far at large k, but at the smallest k an epoch is a few microseconds of arithmetic
on either side, and launch latency can make the GPU the slower one. ``fastest_backend`` times a
few evaluation blocks of the real training loop on each candidate (warm-up block dropped) and
keeps the faster. The answer is cached in a JSON file keyed by the machine (CPU, GPU) and the
problem (model, optimizer, formulation, k, m, n, dtype), so each problem is timed once per
machine.
"""
from __future__ import annotations

import json
import os
import platform
import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from . import backend as be
from .data import Dataset
from .train import Schedule, choose_formulation, run_batch

PROBE = Schedule(thresholds=(), max_epochs=40, eval_every=10)   # 4 blocks, the first dropped
PROBE_LR = 1e-12      # nothing diverges or finishes early: cost does not depend on the rate


def default_cache() -> Path:
    """$XDG_CACHE_HOME/lae-bench/backend-calibration.json (~/.cache by default)."""
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "lae-bench" / "backend-calibration.json"


def machine_key(candidates: Sequence[Any]) -> str:
    """The machine as the cache sees it: processor and every candidate's device."""
    devices = [be.device_facts(xp).get("gpu_name", be.backend_name(xp)) for xp in candidates]
    return "|".join([platform.processor() or platform.machine(), *devices])


def fastest_backend(dataset: Dataset, model: str, optimizer: str, k: int, dtype: str,
                    candidates: Sequence[Any], *, formulation: str = "auto",
                    cache: Path | None = None) -> Any:
    """The candidate namespace whose epochs of this problem are fastest on this machine."""
    form = choose_formulation(model, optimizer, formulation)
    problem = f"{model}|{optimizer}|{form}|k{k}|m{dataset.m}|n{dataset.n}|{dtype}"
    key = f"{machine_key(candidates)}|{problem}"
    path = cache or default_cache()
    known = _read(path)
    names = [be.backend_name(xp) for xp in candidates]
    if known.get(key) in names:
        return candidates[names.index(known[key])]
    seconds = [probe_seconds(dataset, model, optimizer, k, dtype, xp, form) for xp in candidates]
    best = int(np.argmin(seconds))
    known[key] = names[best]
    _write(path, known)
    return candidates[best]


def probe_seconds(dataset: Dataset, model: str, optimizer: str, k: int, dtype: str, xp: Any,
                  formulation: str) -> float:
    """Median seconds per epoch of the training loop on ``xp``, warm-up block dropped."""
    batch = run_batch(dataset, model, optimizer, k, [PROBE_LR], [0], schedule=PROBE,
                      dtype=dtype, backend=xp, formulation=formulation)
    return float(np.median(batch.runs[0].epoch_times[1:]))


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
