"""Learning-rate tuning in one batch: every rate of a log-spaced grid times every seed is one
stacked run of the same (model, optimizer, k), so a whole grid costs one batched training.

A rate is scored by the median over its seeds of the epochs to the headline threshold
(``bench.sweep.censored.median_epochs``: the midpoint rule, a run that did not reach counting as +inf, the
median censored when half or more did not reach), the numbers ``show`` would print for it.
Divergence is failure: a rate where any seed diverged is not eligible (``allow_divergence``
lets it compete, its diverged seeds counting as not reached). Among the eligible rates the
chosen one reaches in the fewest median epochs; where none reaches, the one with the lowest
median final d_align is kept and marked unreached. The runner-up is reported, and a choice at
either end of the grid is flagged: the best rate may lie outside it.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Iterator, Sequence

import numpy as np

from lae_core import Dataset, Schedule, get_objective, run_batch

from ..sweep.cells import curves
from ..sweep.censored import median_epochs
from ..sweep.config import SweepConfig
from ..sweep.dataset import load_dataset
from ..sweep.trainer import CellTrainer, sweep_namespace


def log_grid(low: float, high: float, count: int) -> np.ndarray:
    """``count`` rates from ``low`` to ``high``, evenly spaced in log scale."""
    return np.geomspace(low, high, count)


@dataclass
class RateScore:
    lr: float
    median_epochs: float       # inf where half or more of the seeds did not reach
    median_final_d_align: float  # over the seeds that did not diverge (inf: none)
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
    runner_up: float | None = None   # the second-best eligible rate
    edge: str | None = None          # "lowest" / "highest": the choice is at a grid edge
    eligible: bool = True            # False: every rate diverged somewhere (best_lr: smallest)


def score_rate(lr: float, runs: list, threshold: float) -> RateScore:
    """Median epochs to ``threshold`` over all the seeds (diverged ones never reach)."""
    epochs = [None if r.status == "diverged" else r.epochs_to[threshold] for r in runs]
    finals = [r.final["d_align"] for r in runs if r.status != "diverged"]
    return RateScore(float(lr), median_epochs(epochs),
                     float(np.median(finals)) if finals else np.inf,
                     sum(r.status == "diverged" for r in runs), len(runs))


def ranked_rates(scores: Sequence[RateScore], allow_divergence: bool = False
                 ) -> list[RateScore]:
    """The eligible rates, best first: fewest median epochs, then lowest final d_align, then
    the smaller (safer) rate. Eligible: no seed diverged (any seed short of all with
    ``allow_divergence``)."""
    usable = [s for s in scores
              if (s.diverged < s.runs if allow_divergence else s.diverged == 0)]
    return sorted(usable, key=lambda s: (s.median_epochs, s.median_final_d_align, s.lr))


def best_rate(scores: Sequence[RateScore], allow_divergence: bool = False
              ) -> tuple[float, bool]:
    """(rate, reached) of the best eligible rate; (smallest rate, False) when none is."""
    ranked = ranked_rates(scores, allow_divergence)
    if not ranked:
        return min(s.lr for s in scores), False
    return ranked[0].lr, bool(np.isfinite(ranked[0].median_epochs))


def grid_edge(lr: float, grid: Sequence[float]) -> str | None:
    """"lowest" or "highest" when ``lr`` is an end of ``grid`` (the optimum may lie beyond)."""
    if lr == min(grid):
        return "lowest"
    if lr == max(grid):
        return "highest"
    return None


def tune_cell(dataset: Dataset, model: str, optimizer: str, k: int, grid: Sequence[float],
              seeds: Sequence[int], *, schedule: Schedule, threshold: float = 0.3,
              allow_divergence: bool = False, **run_kwargs: Any) -> TuneResult:
    """Train every (rate, seed) pair as one batch and pick the best rate. A model with a
    closed form (eigh) starts every run at its answer, as in a sweep."""
    lrs = [lr for lr in grid for _ in seeds]
    closed_form = get_objective(model).closed_form
    if closed_form is not None:
        run_kwargs = {**run_kwargs, "initial": closed_form(dataset.C, k, len(lrs))}
    batch = run_batch(dataset, model, optimizer, k, lrs, [s for _ in grid for s in seeds],
                      schedule=schedule, **run_kwargs)
    per_rate = len(seeds)
    scores = [score_rate(lr, batch.runs[i * per_rate:(i + 1) * per_rate], threshold)
              for i, lr in enumerate(grid)]
    ranked = ranked_rates(scores, allow_divergence)
    lr, reached = best_rate(scores, allow_divergence)
    return TuneResult(model, optimizer, k, lr, reached, scores,
                      runner_up=ranked[1].lr if len(ranked) > 1 else None,
                      edge=grid_edge(lr, [float(g) for g in grid]) if ranked else None,
                      eligible=bool(ranked))


def sweep_trainer(config: SweepConfig) -> CellTrainer:
    """The trainer of ``config``'s sweep, its data loaded (the samples kept where a model
    needs them)."""
    keep = any(get_objective(m).needs_samples for m in config.models)
    return CellTrainer(config, load_dataset(config.data, keep_samples=keep),
                       *sweep_namespace(config))


def tune_sweep(trainer: CellTrainer, grid: Sequence[float], allow_divergence: bool = False
               ) -> Iterator[TuneResult]:
    """Tune every cell of the trainer's sweep (the cells a run would train, ``k_max``
    honoured), each resolved as the sweep resolves it, curve by curve, k ascending."""
    config = trainer.config
    for curve in curves(config):
        for cell in curve:
            resolved = trainer.resolve(cell)
            schedule = replace(cell.schedule, thresholds=(config.headline,), history=False)
            yield tune_cell(trainer.dataset, cell.model, cell.optimizer, cell.k, grid,
                            config.seeds, schedule=schedule, threshold=config.headline,
                            allow_divergence=allow_divergence, dtype=config.dtype,
                            backend=resolved.backend, formulation=cell.formulation,
                            hyperparameters=dict(resolved.hyperparameters))


def describe(result: TuneResult, threshold: float) -> str:
    """One line per cell: the rate, its median, the runner-up and any warning."""
    by_lr = {s.lr: s for s in result.scores}
    best = by_lr[result.best_lr]
    head = f"{result.model:16} {result.optimizer:13} k={result.k:<4d} lr={result.best_lr:.3g} "
    if not result.eligible:
        return head + "NO USABLE RATE: every rate of the grid diverged on some seed " \
                      "(lower the grid, or pass --allow-divergence)"
    text = head + (f"median {best.median_epochs:.0f} epochs to {threshold}" if result.reached
                   else f"not reached (median final d_align {best.median_final_d_align:.3f})")
    if best.diverged:
        text += f", {best.diverged} of {best.runs} seeds diverged (--allow-divergence)"
    if result.runner_up is not None:
        second = by_lr[result.runner_up]
        text += (f"; runner-up lr={second.lr:.3g} "
                 + (f"({second.median_epochs:.0f} epochs)" if np.isfinite(second.median_epochs)
                    else "(not reached)"))
    if result.edge:
        text += (f"; WARNING: the {result.edge} rate of the grid, the best may lie beyond it "
                 "(widen --grid)")
    return text
