"""The sweep driver: config -> cells -> one batched run per cell -> one record per run.

A cell is one (model, optimizer, k) with its learning rate (``cells``); all its seeds train
together as one ``lae_core.run_batch`` (``trainer``). Each run's record is written atomically
as soon as its cell finishes (``rundir``), so an interrupted sweep loses at most the cell in
progress, and running the same sweep again resumes it: runs whose record exists are skipped
(records with status "error" are retried). ``distributed`` runs the same cells as Dask tasks.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from lae_core import get_objective
from lae_core.backend import backend_name

from ..exits import check_signals
from ..formatting import format_seconds
from . import env, memory
from .cells import Cell, curves
from .censored import median_epochs
from .config import SweepConfig
from .dataset import load_dataset
from .progress import Progress
from .record import Record
from .rundir import RunDirectory
from .trainer import PROBE_BLOCKS, PROBE_EVERY, CellTrainer, sweep_namespace

Execute = Callable[[list[list[Cell]], "Outcome", Progress], None]


@dataclass
class Outcome:
    """What one invocation did: the records it wrote and the cells stop_on_failure skipped."""

    written: list[Record] = field(default_factory=list)
    skipped: list[Cell] = field(default_factory=list)
    reused_runs: int = 0

    @property
    def errors(self) -> int:
        return sum(r.status == "error" for r in self.written)

    def summary(self) -> str:
        counts = {s: sum(r.status == s for r in self.written)
                  for s in ("reached", "capped", "diverged", "error")}
        parts = [f"{n} {s}" for s, n in counts.items() if n]
        text = f"{len(self.written)} runs ({', '.join(parts) or 'none'})"
        if self.reused_runs:
            text += f", {self.reused_runs} already done"
        if self.skipped:
            text += f", {len(self.skipped)} cells skipped after a failure (stop_on_failure)"
        return text


class Sweep:
    """One sweep over one run directory: what is pending, and running it in this process
    (``distributed.run_on_cluster`` runs it as Dask tasks through ``run_with``)."""

    def __init__(self, config: SweepConfig, run_dir: Path):
        self.config = config
        self.xp, self.facts = sweep_namespace(config)   # a missing GPU fails before any work
        self.memory_needed()                            # before anything is allocated
        self.run_dir = RunDirectory(run_dir, config)

    def memory_needed(self) -> memory.Need:
        """The bytes the sweep's data and largest cell take (``bench.sweep.memory``);
        UsageError, with the number and what would fit, when they exceed what is free."""
        config = self.config
        keep = any(get_objective(m).needs_samples for m in config.models)
        return memory.check(config.data.m, config.data.n, max(config.k), len(config.seeds),
                            np.dtype(config.dtype).itemsize, keep, backend_name(self.xp))

    @cached_property
    def trainer(self) -> CellTrainer:
        """Built on first use, once: a finished sweep that is re-run never loads its data."""
        keep = any(get_objective(m).needs_samples for m in self.config.models)
        return CellTrainer(self.config, load_dataset(self.config.data, keep_samples=keep),
                           self.xp, self.facts, limit_threads=True)

    def run(self, *, quiet: bool = False) -> Outcome:
        """Train every pending run in this process, writing records as cells finish."""
        return self.run_with(self._run_curves, quiet=quiet)

    def run_with(self, execute: Execute, *, quiet: bool = False,
                 execution: Mapping[str, Any] | None = None) -> Outcome:
        """Open the session and the progress display, then ``execute(curves, outcome,
        progress)``, which runs the pending cells and fills ``outcome``."""
        self.run_dir.start_session(self.facts, execution)
        grid = curves(self.config)
        cells = [c for curve in grid for c in curve]
        outcome = Outcome()
        progress = Progress(len(cells), self.config.max_epochs, quiet=quiet)
        done = sum(not self.run_dir.pending_seeds(c) for c in cells)
        if done:
            progress.say(f"resuming {self.run_dir.path}: {done} of {len(cells)} cells "
                         "already done")
        try:
            execute(grid, outcome, progress)
        finally:
            progress.close()
        return outcome

    def _run_curves(self, grid: list[list[Cell]], outcome: Outcome, progress: Progress) -> None:
        for curve in grid:
            self._run_curve(curve, outcome, progress)

    def _run_curve(self, curve: list[Cell], outcome: Outcome, progress: Progress) -> None:
        """The cells of one (model, optimizer) curve; with stop_on_failure, those after the
        first k whose median run did not reach the headline threshold are skipped."""
        failed_at = None
        for cell in curve:
            if failed_at is not None:
                outcome.skipped.append(cell)
                progress.cell_done(f"{cell.label}: skipped, the curve failed at k={failed_at}")
                continue
            records = self._run_cell(cell, outcome, progress)
            if self.stops_curve(records):
                failed_at = cell.k

    def stops_curve(self, records: list[Record]) -> bool:
        """stop_on_failure: the larger k of a curve are skipped after these records of a
        cell, whose median run did not reach the headline threshold."""
        return self.config.stop_on_failure and self._median_epochs(records) == np.inf

    def _median_epochs(self, records: list[Record]) -> float:
        """Median epochs to the headline threshold over the runs that did not error."""
        return median_epochs(r.epochs_to[str(self.config.headline)] for r in records
                             if r.status != "error")

    def _run_cell(self, cell: Cell, outcome: Outcome, progress: Progress) -> list[Record]:
        """Run the pending seeds of ``cell`` as one batch; return all its records."""
        check_signals()            # a Ctrl-C whose exception a callback swallowed stops here
        seeds = self.run_dir.pending_seeds(cell)
        finished = self.run_dir.finished(cell, seeds)
        outcome.reused_runs += len(finished)
        if not seeds:
            progress.cell_done()
            return finished
        trainer = self.trainer     # the data loads here, outside train's try: its errors are
        #                            the user's, not the cell's
        started = time.perf_counter()
        results = trainer.train(trainer.resolve(cell), seeds,
                                progress.cell_started(cell, len(seeds)))
        new = self.run_dir.write(results)
        outcome.written += new
        progress.cell_done(self.describe(cell, new, time.perf_counter() - started))
        return finished + new

    def describe(self, cell: Cell, records: list[Record], seconds: float) -> str:
        """The progress line of a finished cell."""
        statuses = [r.status for r in records]
        median = self._median_epochs(records)
        result = ("error: " + str(records[0].error) if "error" in statuses
                  else f"median {median:.0f} epochs to {self.config.headline}"
                  if np.isfinite(median)
                  else "diverged (non-finite weights)" if set(statuses) == {"diverged"}
                  else f"median not reached within {self.config.max_epochs} epochs")
        counts = ", ".join(f"{statuses.count(s)} {s}" for s in dict.fromkeys(statuses))
        return f"{cell.label}: {counts}; {result} ({seconds:.1f} s)"

    # --- cost estimate --------------------------------------------------------------------------

    def estimate(self) -> str:
        """The time the pending runs would take if every one went to the epoch cap, from
        per-epoch times measured at the smallest, middle and largest k of each curve."""
        config = self.config
        lines, total, probe_ks = [], 0.0, set()
        for curve in curves(config):
            pending = [c for c in curve if self.run_dir.pending_seeds(c)]
            if not pending:
                continue
            probes = sorted({curve[0], curve[len(curve) // 2], curve[-1]}, key=lambda c: c.k)
            probe_ks.update(c.k for c in probes)
            times = [self.trainer.probe(self.trainer.resolve(c)) for c in probes]
            per_epoch = np.interp([c.k for c in pending], [c.k for c in probes], times)
            seconds = float(np.sum(per_epoch)) * config.max_epochs
            total += seconds
            lines.append(f"  {curve[0].model + '/' + curve[0].optimizer:<30} "
                         f"{len(pending):>3} cells  {min(per_epoch) * 1e3:.2g}-"
                         f"{max(per_epoch) * 1e3:.2g} ms per epoch  {format_seconds(seconds)}")
        if not lines:
            return (f"estimated cost of {config.name}: nothing left to run in "
                    f"{self.run_dir.path}")
        head = (f"estimated cost of {config.name} on {backend_name(self.xp)} "
                f"({env.device_name(self.facts)}), {len(config.seeds)} seeds per batch: "
                f"{format_seconds(total)} if every run went to the {config.max_epochs}-epoch "
                f"cap. Runs that reach d_align {min(config.thresholds)} stop early"
                + (" and stop_on_failure skips the rest of a failed curve"
                   if config.stop_on_failure else "")
                + "; slow-downs that short probes cannot see (subnormal numbers later in "
                "training, other work on this machine) add time.")
        tail = (f"  (per-epoch times measured over {PROBE_BLOCKS * PROBE_EVERY} epochs at k = "
                f"{', '.join(map(str, sorted(probe_ks)))}; other k interpolated)")
        return "\n".join([head, *lines, tail])
