"""The cell trainer: one sweep's data and namespace, turning a cell and its seeds into records.

It stores nothing and owns no directory, so the serial runner and every Dask worker train with
the same object (a worker builds it from the dataset the client broadcast). A cell's seeds
train as one ``lae_core.run_batch``; a cell that fails gives error records instead, so that
one failing cell does not stop the sweep.
"""
from __future__ import annotations

import time
from dataclasses import replace
from typing import Any, Callable

import numpy as np

from lae_core import BatchResult, Dataset, Schedule, get_objective, run_batch
from lae_core.backend import backend_name, get_namespace
from lae_core.calibrate import fastest_backend

from ..exits import check_signals
from . import env, threads
from .cells import Cell, ResolvedCell
from .config import SweepConfig
from .dataset import data_recipe
from .record import Record
from .reference import ReferenceClock
from .threads import blas_threads

OnEval = Callable[[int, np.ndarray], None]
Results = list[tuple[Record, "dict[str, np.ndarray] | None"]]
# Timing probes for the cost estimate: 4 evaluation blocks, the first (warm-up) discarded. The
# learning rate is tiny so that no probe diverges and stops early: cost does not depend on it.
PROBE_BLOCKS, PROBE_EVERY, PROBE_LR = 4, 5, 1e-12


def sweep_namespace(config: SweepConfig) -> tuple[Any, dict[str, Any]]:
    """The sweep's namespace and this machine's facts (a missing GPU fails here, before any
    work)."""
    xp = get_namespace(config.backend)
    return xp, env.collect(xp)


class CellTrainer:
    """Trains the cells of ``config`` on ``dataset`` with namespace ``xp`` (facts: the
    machine's, ``env.collect``)."""

    def __init__(self, config: SweepConfig, dataset: Dataset, xp: Any,
                 facts: dict[str, Any], *, limit_threads: bool = False):
        """``limit_threads``: size BLAS threads per cell (``threads_for``); a Dask worker
        leaves it off, its threads are set per worker."""
        self.config, self.dataset, self.xp, self.facts = config, dataset, xp, facts
        self.limit_threads = limit_threads
        # m, n, recipe and fingerprint of every record (the fingerprint hashes C: once)
        self.data_fields = {"m": dataset.m, "n": dataset.n, "data_id": data_recipe(config.data),
                            "data_fingerprint": dataset.fingerprint}

    # --- resolving a cell -----------------------------------------------------------------------

    def resolve(self, cell: Cell) -> ResolvedCell:
        """``cell`` with its namespace and hyperparameters on this data."""
        config = self.config
        return ResolvedCell(cell, backend_name(self.namespace_for(cell)),
                            config.hyperparameters.resolve(cell.model, cell.k, self.dataset,
                                                           config.data.kind))

    def namespace_for(self, cell: Cell) -> Any:
        """The sweep's namespace; with ``backend: auto`` on a GPU, NumPy for the problems
        that a short, cached calibration finds faster there (``lae_core.calibrate``), probed
        with the sweep's whole batch of seeds."""
        if self.config.backend != "auto" or backend_name(self.xp) != "cupy":
            return self.xp
        return fastest_backend(self.dataset, cell.model, cell.optimizer, cell.k,
                               self.config.dtype, (self.xp, get_namespace("numpy")),
                               runs=len(self.config.seeds), formulation=cell.formulation)

    # --- training -------------------------------------------------------------------------------

    def train(self, resolved: ResolvedCell, seeds: list[int], on_eval: OnEval | None = None
              ) -> Results:
        """Train ``seeds`` of the cell as one batch: a record (and history) per seed, error
        records when the cell fails."""
        cell = resolved.cell
        started = time.perf_counter()
        try:
            count = self.threads_for(resolved, len(seeds))
            with blas_threads(count):
                clock = self._reference_clock(resolved, on_eval)
                batch = self.batch(resolved, seeds, cell.schedule, clock)
            return [(replace(self._run_record(cell, batch, run, clock), blas_threads=count),
                     self._history(cell, run)) for run in batch.runs]
        except Exception as exc:  # one failing cell must not stop the sweep
            check_signals()       # unless a signal caused it (a library wrapped its exception)
            elapsed = time.perf_counter() - started
            return [(self.error_record(cell, s, len(seeds), exc, elapsed), None) for s in seeds]

    def threads_for(self, resolved: ResolvedCell, runs: int) -> int | None:
        """BLAS threads for the cell (``bench.sweep.threads``): the config's count, or with
        "auto" the fewest that time its dominant product (C times the batch's weights)
        within 10% of the fastest on the cores free now. None: left alone (not limited, a
        GPU cell)."""
        if not self.limit_threads or resolved.backend != "numpy":
            return None
        dtype = np.dtype(self.config.dtype)
        C = self.dataset.C.astype(dtype)
        W = np.ones((self.dataset.m, resolved.cell.k * runs), dtype=dtype)
        return threads.choose(self.config.threads, lambda: C @ W)["blas"]

    def batch(self, resolved: ResolvedCell, seeds: list[int], schedule: Schedule,
              on_eval: OnEval | None = None) -> BatchResult:
        """run_batch of the cell with this sweep's data and dtype. A model with a closed form
        (eigh) starts at its answer and reaches at epoch 0; the batch's wall time then
        includes the decomposition, its time to the principal components."""
        cell = resolved.cell
        closed_form = get_objective(cell.model).closed_form
        started = time.perf_counter()
        initial = (None if closed_form is None
                   else closed_form(self.dataset.C, cell.k, len(seeds)))
        solve_s = time.perf_counter() - started
        batch = run_batch(self.dataset, cell.model, cell.optimizer, cell.k,
                          [cell.lr] * len(seeds), seeds, schedule=schedule,
                          dtype=self.config.dtype, backend=get_namespace(resolved.backend),
                          formulation=cell.formulation, on_eval=on_eval, initial=initial,
                          hyperparameters=dict(resolved.hyperparameters))
        return replace(batch, wall_time=batch.wall_time + solve_s)

    def probe(self, resolved: ResolvedCell) -> float:
        """Mean seconds per epoch of a batch of all the seeds at a tiny rate (the mean, not
        the median: the sweep's time is a sum, slow epochs included)."""
        probe = replace(resolved, cell=replace(resolved.cell, lr=PROBE_LR))
        schedule = Schedule((), PROBE_BLOCKS * PROBE_EVERY, PROBE_EVERY)
        batch = self.batch(probe, list(self.config.seeds), schedule)
        return float(np.mean(batch.runs[0].epoch_times[1:]))

    def _history(self, cell: Cell, run) -> dict[str, np.ndarray] | None:
        """The metric history plus the final decoder and U_k^T W2 (for the decoder plots)."""
        if run.history is None:
            return None
        W2 = run.params[1]
        return {**run.history, "W2_final": W2, "Uk_T_W2": self.dataset.eigvecs[:, :cell.k].T @ W2}

    def _reference_clock(self, resolved: ResolvedCell, on_eval: OnEval | None
                         ) -> ReferenceClock:
        """The same-run reference product timed beside every block (the timing gate's), on
        the namespace that trains the cell."""
        cell = resolved.cell
        return ReferenceClock(get_namespace(resolved.backend), self.config.dtype, cell.model,
                              cell.formulation, cell.k, self.dataset.m, self.dataset.n,
                              cell.schedule.eval_every, on_eval)

    # --- records --------------------------------------------------------------------------------

    def _common(self, cell: Cell, seed: int, runs: int) -> dict[str, Any]:
        """The fields every record of a cell shares, whatever happened to the run."""
        config, schedule = self.config, cell.schedule
        return {"key": cell.key(seed), "model": cell.model, "optimizer": cell.optimizer,
                "k": cell.k, **self.data_fields, "lr": cell.lr, "seed": seed,
                "dtype": config.dtype, "backend": backend_name(self.xp),
                "device": env.device_name(self.facts), "thresholds": list(schedule.thresholds),
                "max_epochs": schedule.max_epochs, "eval_every": schedule.eval_every,
                "batch_size": runs}

    def _run_record(self, cell: Cell, batch: BatchResult, run, clock: ReferenceClock
                    ) -> Record:
        common = {**self._common(cell, run.seed, len(batch.runs)), "backend": batch.backend}
        return Record(**common, step=batch.step, graph_error=batch.graph_error,
                      formulation=batch.formulation, hyperparameters=batch.hyperparameters,
                      status=run.status, error=None, epochs=run.epochs,
                      epochs_to={str(t): e for t, e in run.epochs_to.items()},
                      wall_time_s=batch.wall_time, final=run.final,
                      reference_times_s=clock.block_times(len(run.epoch_times)),
                      block_cpu_shares=clock.block_shares(len(run.epoch_times)),
                      **epoch_timing(run.epoch_times))

    def error_record(self, cell: Cell, seed: int, runs: int, exc: BaseException,
                     elapsed: float) -> Record:
        """The record of a run whose cell failed with ``exc`` after ``elapsed`` seconds."""
        message = " ".join(f"{type(exc).__name__}: {exc}".split())
        return Record(**self._common(cell, seed, runs),
                      formulation=cell.formulation, hyperparameters={}, status="error",
                      error=message, epochs=0,
                      epochs_to={str(t): None for t in cell.schedule.thresholds},
                      wall_time_s=float(elapsed), final={}, **epoch_timing([]))


def epoch_timing(epoch_times: list[float]) -> dict[str, Any]:
    """Median and interquartile range of the per-epoch times, the first block (warm-up:
    allocations, caches, BLAS threads starting) excluded."""
    steady = list(epoch_times[1:])
    if not steady:
        return {"epoch_time_median_s": None, "epoch_time_iqr_s": None, "epoch_times_s": []}
    q25, q50, q75 = np.percentile(steady, [25, 50, 75])
    return {"epoch_time_median_s": float(q50), "epoch_time_iqr_s": float(q75 - q25),
            "epoch_times_s": steady}
