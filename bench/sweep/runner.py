"""The sweep driver: config -> cells -> one batched run per cell -> one record per run.

A cell is one (model, optimizer, k) with its learning rate; all its seeds train together as one
``lae_core.run_batch``. Each run's record is written atomically as soon as its cell finishes, so
an interrupted sweep loses at most the cell in progress, and running the same sweep again
resumes it: runs whose record exists are skipped (records with status "error" are retried).

The default run directory is ``results/runs/<name>-<config hash>/`` (name: the preset, or the
config file's stem), so the same command always finds its own results again.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, TextIO

import numpy as np
from tqdm import tqdm

from lae_core import BatchResult, Dataset, Schedule, choose_formulation, get_objective, run_batch
from lae_core.backend import backend_name, get_namespace
from lae_core.calibrate import fastest_backend

from ..errors import UsageError
from ..formatting import format_seconds
from . import env
from .censored import median_epochs
from .config import SweepConfig
from .dataset import data_recipe, load_dataset
from .record import Record
from .reference import ReferenceClock
from .store import (MANIFEST, load_manifest, load_records, record_key, write_manifest,
                    write_record)

RESULTS_ROOT = Path("results/runs")
# Timing probes for the cost estimate: 4 evaluation blocks, the first (warm-up) discarded. The
# learning rate is tiny so that no probe diverges and stops early: cost does not depend on it.
PROBE_BLOCKS, PROBE_EVERY, PROBE_LR = 4, 5, 1e-12


@dataclass(frozen=True)
class Cell:
    """One (model, optimizer, k) of a sweep and its learning rate."""

    model: str
    optimizer: str
    k: int
    lr: float

    @property
    def label(self) -> str:
        return f"{self.model}/{self.optimizer} k={self.k}"

    def key(self, seed: int) -> str:
        return record_key(self.model, self.optimizer, self.k, self.lr, seed)


def curves(config: SweepConfig) -> list[list[Cell]]:
    """The cells of each (model, optimizer) curve, k ascending (as stop_on_failure needs)."""
    return [[Cell(model, opt, k, config.lr.lookup(model, opt, k)) for k in config.ks_for(model)]
            for model in config.models for opt in config.optimizers]


def default_run_dir(config: SweepConfig, root: Path = RESULTS_ROOT) -> Path:
    """results/runs/<name>-<hash>: found again by the same command, so that it resumes."""
    return root / f"{config.name}-{config.hash}"


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- the run directory --------------------------------------------------------------------------

def check_run_dir(run_dir: Path, config: SweepConfig) -> bool:
    """True when ``run_dir`` already holds this sweep; refuse one that holds something else."""
    if run_dir.exists() and not run_dir.is_dir():
        raise UsageError(f"--out: {run_dir} is a file, not a directory")
    if not run_dir.exists() or not any(run_dir.iterdir()):
        return False
    if not (run_dir / MANIFEST).is_file():
        raise UsageError(f"--out: {run_dir} is not empty and is not a lae-bench run directory; "
                         "choose another --out")
    manifest = load_manifest(run_dir)
    if manifest.get("config_hash") != config.hash:
        raise UsageError(f"--out: {run_dir} holds another sweep (config hash "
                         f"{manifest.get('config_hash')}, this one is {config.hash}); choose "
                         "another --out, or pass --force-new to discard its results")
    return True


def discard_results(run_dir: Path) -> None:
    """Delete the manifest, records and histories of a run directory (only lae-bench's files)."""
    if not (run_dir / MANIFEST).is_file():
        return
    for sub, suffix in (("records", ".json"), ("histories", ".npz")):
        for path in run_dir.glob(f"{sub}/*"):
            if path.name.endswith((suffix, ".tmp")):
                path.unlink()
        if (run_dir / sub).is_dir() and not any((run_dir / sub).iterdir()):
            (run_dir / sub).rmdir()
    (run_dir / MANIFEST).unlink()


def start_session(run_dir: Path, config: SweepConfig, facts: dict[str, Any],
                  execution: dict[str, Any] | None = None) -> None:
    """Write the manifest (first session) or append this session to it (resume).
    ``execution``: where this session's cells ran (default: in this process)."""
    session = {"started_utc": utc_now(), "device": env.device_name(facts), "git": facts["git"],
               **(execution or {"scheduler": "in-process"})}
    if (run_dir / MANIFEST).is_file():
        manifest = load_manifest(run_dir)
        manifest["sessions"] = manifest.get("sessions", []) + [session]
    else:
        manifest = {"run_id": run_dir.name, "created_utc": session["started_utc"],
                    "config": config.to_dict(), "config_hash": config.hash, **facts,
                    "sessions": [session]}
    write_manifest(run_dir, manifest)
    for orphan in run_dir.glob("*/.*.tmp"):  # left by a kill during an atomic write
        orphan.unlink()


# --- progress -----------------------------------------------------------------------------------

class Progress:
    """Progress on stderr: tqdm bars (cells, and epochs of the cell with its current d_align)
    on a terminal, a line per finished cell everywhere, nothing at all when quiet."""

    def __init__(self, total_cells: int, max_epochs: int, *, quiet: bool = False,
                 stream: TextIO | None = None):
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.bars = not quiet and self.stream.isatty()
        self.max_epochs = max_epochs
        self.cells = tqdm(total=total_cells, unit="cell", desc="sweep", file=self.stream,
                          disable=not self.bars, dynamic_ncols=True)
        self.epochs: tqdm | None = None

    def say(self, message: str) -> None:
        if not self.quiet:
            tqdm.write(message, file=self.stream)

    def cell_started(self, cell: Cell, runs: int) -> Callable[[int, np.ndarray], None] | None:
        """Open the epoch bar; return the on_eval callback for run_batch (None: no bar)."""
        if not self.bars:
            return None
        self.epochs = tqdm(total=self.max_epochs, unit="epoch", desc=f"{cell.label} x{runs}",
                           file=self.stream, leave=False, dynamic_ncols=True)
        return self._on_eval

    def _on_eval(self, epoch: int, align: np.ndarray) -> None:
        self.epochs.set_postfix_str(f"d_align best {np.min(align):.3f} median "
                                    f"{np.median(align):.3f}", refresh=False)
        self.epochs.update(epoch - self.epochs.n)

    def cell_done(self, message: str | None = None) -> None:
        if self.epochs is not None:
            self.epochs.close()
            self.epochs = None
        self.cells.update()
        if message:
            self.say(message)

    def close(self) -> None:
        if self.epochs is not None:
            self.epochs.close()
        self.cells.close()


# --- the sweep ----------------------------------------------------------------------------------

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
    """One sweep over one run directory: what is done, what is pending, and running it."""

    def __init__(self, config: SweepConfig, run_dir: Path | None):
        """``run_dir`` None: a Dask worker's sweep, which trains cells and stores nothing."""
        self.config, self.run_dir = config, None if run_dir is None else Path(run_dir)
        self.xp = get_namespace(config.backend)   # a missing GPU fails here, before any work
        self.facts = env.collect(self.xp)
        self.resuming = run_dir is not None and check_run_dir(self.run_dir, config)
        self.stored = ({r.key: r for r in load_records(self.run_dir)} if self.resuming
                       else {})

    @cached_property
    def dataset(self) -> Dataset:
        """Loaded on first use, once: a finished sweep that is re-run never loads it."""
        keep = any(get_objective(m).needs_samples for m in self.config.models)
        return load_dataset(self.config.data, keep_samples=keep)

    @cached_property
    def data_fields(self) -> dict[str, Any]:
        """m, n, recipe and fingerprint of every record (the fingerprint hashes C: once)."""
        return {"m": self.dataset.m, "n": self.dataset.n,
                "data_id": data_recipe(self.config.data),
                "data_fingerprint": self.dataset.fingerprint}

    def pending_seeds(self, cell: Cell) -> list[int]:
        """Seeds of ``cell`` without a finished record (an error record is retried)."""
        return [s for s in self.config.seeds
                if cell.key(s) not in self.stored or self.stored[cell.key(s)].status == "error"]

    def run(self, *, quiet: bool = False) -> Outcome:
        """Train every pending run in this process, writing records as cells finish
        (``distributed.run_on_cluster`` runs them as Dask tasks instead)."""
        return self.run_with(self._run_curves, quiet=quiet)

    def run_with(self, execute: Callable[[list[list[Cell]], Outcome, Progress], None], *,
                 quiet: bool = False, execution: dict[str, Any] | None = None) -> Outcome:
        """Open the session and the progress display, then ``execute(curves, outcome,
        progress)``, which runs the pending cells and fills ``outcome``."""
        start_session(self.run_dir, self.config, self.facts, execution)
        grid = curves(self.config)
        cells = [c for curve in grid for c in curve]
        outcome = Outcome()
        progress = Progress(len(cells), self.config.max_epochs, quiet=quiet)
        done = sum(not self.pending_seeds(c) for c in cells)
        if done:
            progress.say(f"resuming {self.run_dir}: {done} of {len(cells)} cells already done")
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
        seeds = self.pending_seeds(cell)
        finished = [self.stored[cell.key(s)] for s in self.config.seeds if s not in seeds]
        outcome.reused_runs += len(finished)
        if not seeds:
            progress.cell_done()
            return finished
        started = time.perf_counter()
        results = self.train_cell(cell, seeds, progress.cell_started(cell, len(seeds)))
        for record, history in results:
            write_record(self.run_dir, record, history)
        new = [r for r, _ in results]
        outcome.written += new
        progress.cell_done(self.describe(cell, new, time.perf_counter() - started))
        return finished + new

    def train_cell(self, cell: Cell, seeds: list[int],
                   on_eval: Callable[[int, np.ndarray], None] | None = None
                   ) -> list[tuple[Record, dict[str, np.ndarray] | None]]:
        """Train ``seeds`` of ``cell`` as one batch: a record (and history) per seed, error
        records when the cell fails. Stores nothing (a Dask worker runs this too)."""
        self.data_fields  # loads the data outside the try: a data error is the user's
        started = time.perf_counter()
        try:
            clock = self._reference_clock(cell, on_eval)
            batch = self._batch(cell, seeds, self.config.schedule, clock)
            return [(self._run_record(cell, batch, run, clock), self._history(cell, run))
                    for run in batch.runs]
        except Exception as exc:  # one failing cell must not stop the sweep
            elapsed = time.perf_counter() - started
            return [(self.error_record(cell, s, len(seeds), exc, elapsed), None) for s in seeds]

    def _history(self, cell: Cell, run) -> dict[str, np.ndarray] | None:
        """The metric history plus the final decoder and U_k^T W2 (for the decoder plots)."""
        if run.history is None:
            return None
        W2 = run.params[1]
        return {**run.history, "W2_final": W2, "Uk_T_W2": self.dataset.eigvecs[:, :cell.k].T @ W2}

    def _batch(self, cell: Cell, seeds: list[int], schedule: Schedule,
               on_eval: Callable[[int, np.ndarray], None] | None = None) -> BatchResult:
        """run_batch of ``cell`` with this sweep's data, dtype, backend, formulation and
        hyperparameters. A model with a closed form (eigh) starts at its answer and reaches
        at epoch 0; the batch's wall time then includes the decomposition, its time to the
        principal components."""
        closed_form = get_objective(cell.model).closed_form
        started = time.perf_counter()
        initial = (None if closed_form is None
                   else closed_form(self.dataset.C, cell.k, len(seeds)))
        solve_s = time.perf_counter() - started
        batch = run_batch(self.dataset, cell.model, cell.optimizer, cell.k,
                          [cell.lr] * len(seeds), seeds, schedule=schedule,
                          dtype=self.config.dtype, backend=self.backend_for(cell),
                          formulation=self.config.formulation, on_eval=on_eval,
                          initial=initial,
                          hyperparameters=self.config.hyperparameters.resolve(
                              cell.model, cell.k, self.dataset, self.config.data.kind))
        return replace(batch, wall_time=batch.wall_time + solve_s)

    def backend_for(self, cell: Cell) -> Any:
        """The sweep's namespace; with ``backend: auto`` on a GPU, NumPy for the problems
        that a short, cached calibration finds faster there (``lae_core.calibrate``)."""
        if self.config.backend != "auto" or backend_name(self.xp) != "cupy":
            return self.xp
        return fastest_backend(self.dataset, cell.model, cell.optimizer, cell.k,
                               self.config.dtype, (self.xp, get_namespace("numpy")),
                               formulation=self.config.formulation)

    def describe(self, cell: Cell, records: list[Record], seconds: float) -> str:
        """The progress line of a finished cell."""
        statuses = [r.status for r in records]
        median = self._median_epochs(records)
        result = ("error: " + str(records[0].error) if "error" in statuses
                  else f"median {median:.0f} epochs to {self.config.headline}"
                  if np.isfinite(median)
                  else f"not reached within {self.config.max_epochs} epochs")
        counts = ", ".join(f"{statuses.count(s)} {s}" for s in dict.fromkeys(statuses))
        return f"{cell.label}: {counts}; {result} ({seconds:.1f} s)"

    # --- records --------------------------------------------------------------------------------

    def _common(self, cell: Cell, seed: int, runs: int) -> dict[str, Any]:
        """The fields every record of a cell shares, whatever happened to the run."""
        config = self.config
        return {"key": cell.key(seed), "model": cell.model, "optimizer": cell.optimizer,
                "k": cell.k, **self.data_fields, "lr": cell.lr, "seed": seed, "dtype": config.dtype,
                "backend": backend_name(self.xp), "device": env.device_name(self.facts),
                "thresholds": list(config.thresholds), "max_epochs": config.max_epochs,
                "eval_every": config.eval_every, "batch_size": runs}

    def _reference_clock(self, cell: Cell, on_eval: Callable[[int, np.ndarray], None] | None
                         ) -> ReferenceClock:
        """The same-run reference product timed beside every block (the timing gate's), on
        the namespace that trains the cell."""
        form = choose_formulation(cell.model, cell.optimizer, self.config.formulation)
        return ReferenceClock(self.backend_for(cell), self.config.dtype, cell.model, form, cell.k,
                              self.dataset.m, self.dataset.n, self.config.eval_every, on_eval)

    def _run_record(self, cell: Cell, batch, run, clock: ReferenceClock) -> Record:
        common = {**self._common(cell, run.seed, len(batch.runs)), "backend": batch.backend}
        return Record(**common, step=batch.step,
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
        formulation = choose_formulation(cell.model, cell.optimizer, self.config.formulation)
        message = " ".join(f"{type(exc).__name__}: {exc}".split())
        return Record(**self._common(cell, seed, runs),
                      formulation=formulation, hyperparameters={}, status="error",
                      error=message, epochs=0,
                      epochs_to={str(t): None for t in self.config.thresholds},
                      wall_time_s=float(elapsed), final={}, **epoch_timing([]))

    # --- cost estimate --------------------------------------------------------------------------

    def estimate(self) -> str:
        """The time the pending runs would take if every one went to the epoch cap, from
        per-epoch times measured at the smallest, middle and largest k of each curve."""
        config = self.config
        lines, total, probe_ks = [], 0.0, set()
        for curve in curves(config):
            pending = [c for c in curve if self.pending_seeds(c)]
            if not pending:
                continue
            ks = [c.k for c in curve]
            probes = sorted({ks[0], ks[len(ks) // 2], ks[-1]})
            probe_ks.update(probes)
            times = [self._probe(replace(curve[0], k=k, lr=PROBE_LR)) for k in probes]
            per_epoch = np.interp([c.k for c in pending], probes, times)
            seconds = float(np.sum(per_epoch)) * config.max_epochs
            total += seconds
            lines.append(f"  {curve[0].model + '/' + curve[0].optimizer:<30} "
                         f"{len(pending):>3} cells  {min(per_epoch) * 1e3:.2g}-"
                         f"{max(per_epoch) * 1e3:.2g} ms per epoch  {format_seconds(seconds)}")
        if not lines:
            return f"estimated cost of {config.name}: nothing left to run in {self.run_dir}"
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

    def _probe(self, cell: Cell) -> float:
        """Mean seconds per epoch of a batch of all the seeds (the mean, not the median: the
        sweep's time is a sum, slow epochs included)."""
        schedule = Schedule((), PROBE_BLOCKS * PROBE_EVERY, PROBE_EVERY)
        batch = self._batch(cell, list(self.config.seeds), schedule)
        return float(np.mean(batch.runs[0].epoch_times[1:]))


def epoch_timing(epoch_times: list[float]) -> dict[str, Any]:
    """Median and interquartile range of the per-epoch times, the first block (warm-up:
    allocations, caches, BLAS threads starting) excluded."""
    steady = list(epoch_times[1:])
    if not steady:
        return {"epoch_time_median_s": None, "epoch_time_iqr_s": None, "epoch_times_s": []}
    q25, q50, q75 = np.percentile(steady, [25, 50, 75])
    return {"epoch_time_median_s": float(q50), "epoch_time_iqr_s": float(q75 - q25),
            "epoch_times_s": steady}
