"""Learning-rate tuning in one batch: every rate of a log-spaced grid times every seed is one
stacked run of the same (model, optimizer, k), so a whole grid costs one batched training.

The chosen rate reaches the headline threshold in the fewest epochs (median over seeds; diverged
runs excluded, a rate whose median is censored loses to any that reaches). Where no rate
reaches it, the rate with the lowest median final d_align is kept and marked unreached.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from lae_core import Dataset, Schedule, run_batch


def log_grid(low: float, high: float, count: int) -> np.ndarray:
    """``count`` rates from ``low`` to ``high``, evenly spaced in log scale."""
    return np.geomspace(low, high, count)


@dataclass
class RateScore:
    lr: float
    median_epochs: float       # inf where the median run did not reach the threshold
    median_final_d_align: float
    diverged: int
    runs: int


@dataclass
class TuneResult:
    model: str
    optimizer: str
    k: int
    best_lr: float
    reached: bool
    scores: list[RateScore]


def score_rate(lr: float, runs: list, threshold: float) -> RateScore:
    """Median epochs to ``threshold`` over the runs that did not diverge."""
    kept = [r for r in runs if r.status != "diverged"]
    epochs = [np.inf if r.epochs_to[threshold] is None else r.epochs_to[threshold] for r in kept]
    finals = [r.final["d_align"] for r in kept]
    return RateScore(float(lr), float(np.median(epochs)) if kept else np.inf,
                     float(np.median(finals)) if kept else np.inf,
                     len(runs) - len(kept), len(runs))


def best_rate(scores: Sequence[RateScore]) -> tuple[float, bool]:
    """(rate, reached): fewest median epochs; ties and unreached cells go to the lowest final
    d_align, then to the smaller (safer) rate."""
    usable = [s for s in scores if s.diverged < s.runs]
    if not usable:
        return min(s.lr for s in scores), False
    best = min(usable, key=lambda s: (s.median_epochs, s.median_final_d_align, s.lr))
    return best.lr, bool(np.isfinite(best.median_epochs))


def tune_cell(dataset: Dataset, model: str, optimizer: str, k: int, grid: Sequence[float],
              seeds: Sequence[int], *, schedule: Schedule, threshold: float = 0.3,
              **run_kwargs: Any) -> TuneResult:
    """Train every (rate, seed) pair as one batch and pick the best rate."""
    lrs = [lr for lr in grid for _ in seeds]
    batch = run_batch(dataset, model, optimizer, k, lrs, [s for _ in grid for s in seeds],
                      schedule=schedule, **run_kwargs)
    per_rate = len(seeds)
    scores = [score_rate(lr, batch.runs[i * per_rate:(i + 1) * per_rate], threshold)
              for i, lr in enumerate(grid)]
    lr, reached = best_rate(scores)
    return TuneResult(model, optimizer, k, lr, reached, scores)
