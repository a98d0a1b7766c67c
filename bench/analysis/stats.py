"""Summaries over seeds, the one place every verb gets its numbers from: epochs to a threshold
with censoring, and a cell's per-epoch time.

Censoring: a run that never reached the threshold counts as +inf, medians by the midpoint
rule (``bench.sweep.censored``, which the sweep's stop_on_failure uses too).

Time. The seeds of a cell train as one batch, so their records repeat the batch's block
timings; a cell's per-epoch time is the median of the batch's block timings (``batch_timings``),
the same number in ``show``, ``report``, ``compare`` and the plots.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from ..errors import UsageError
from ..sweep.censored import censored_summary
from ..sweep.store import records_frame

CELL = ["data_id", "model", "optimizer", "k", "backend", "device", "dtype"]


def epochs_or_inf(frame: pd.DataFrame, threshold: float) -> pd.Series:
    """Epochs to ``threshold`` per run, +inf where it was not reached (errors: NaN)."""
    col = f"epochs_to_{threshold}"
    if col not in frame:
        raise KeyError(f"threshold {threshold} was not recorded "
                       f"(recorded: {sorted(c[10:] for c in frame if c.startswith('epochs_to_'))})")
    values = pd.to_numeric(frame[col], errors="coerce").astype(float)
    values = values.where(values.notna(), np.inf)
    return values.where(frame["status"] != "error", np.nan)


def batch_timings(runs: pd.DataFrame, column: str = "epoch_times_s") -> np.ndarray:
    """The per-epoch block timings (s) of a cell's batch, warm-up excluded.

    The seeds of a cell train as one batch, so their records repeat the same block timings;
    pooling them would count each block several times. The run that trained longest was timed
    in every block, so its list is the batch's. ``column``: another per-block list of the
    records (the same-run reference times, ``reference_times_s``)."""
    if column not in runs:
        return np.array([])
    lengths = runs["epoch_times_s"].map(len).to_numpy()
    longest = runs[column].iloc[int(np.argmax(lengths))] if lengths.size else None
    if not isinstance(longest, (list, tuple, np.ndarray)):
        return np.array([])
    return np.asarray(longest, dtype=float)


def cell_epoch_time(runs: pd.DataFrame) -> float:
    """A cell's per-epoch time: the median of its batch's block timings (NaN if none)."""
    times = batch_timings(runs)
    return float(np.median(times)) if times.size else np.nan


def cell_summary(frame: pd.DataFrame, threshold: float = 0.3,
                 cell: Sequence[str] = CELL) -> pd.DataFrame:
    """One row per cell (``cell`` columns, CELL by default; add "lr" for learning-rate sweeps):
    runs, reached, errors, diverged, median / q25 / q75 epochs to the threshold (inf =
    censored), every non-error seed's epochs (seed_epochs, sorted), censored and straddles flags, epoch cap, per-epoch time (cell_epoch_time)."""
    frame = frame.assign(_epochs=epochs_or_inf(frame, threshold))
    rows = []
    for key, group in frame.groupby(list(cell), sort=True):
        s = censored_summary(group["_epochs"])
        rows.append(dict(zip(cell, key), runs=len(group), reached=s.runs - s.censored_runs,
                         errors=int((group["status"] == "error").sum()),
                         diverged=int((group["status"] == "diverged").sum()),
                         epochs_median=s.median, epochs_q25=s.q25, epochs_q75=s.q75,
                         seed_epochs=tuple(sorted(group.loc[group["status"] != "error",
                                                            "_epochs"])),
                         censored=s.censored, straddles=s.straddles,
                         max_epochs=int(group["max_epochs"].max()),
                         epoch_time_s=cell_epoch_time(group)))
    return pd.DataFrame(rows)


def load_results(run_dirs, threshold: float, what: str = "results") -> pd.DataFrame:
    """``records_frame`` of run directories, checked to hold runs that recorded ``threshold``.

    ``what`` names the set in the error (e.g. "baseline"); UsageError, one line, otherwise.
    """
    frame = records_frame(run_dirs)
    if frame.empty:
        raise UsageError(f"{what}: {run_dirs} holds no records")
    if f"epochs_to_{threshold}" not in frame:
        recorded = sorted(c[len("epochs_to_"):] for c in frame if c.startswith("epochs_to_"))
        raise UsageError(f"threshold: d_align {threshold} was not recorded in the {what} "
                         f"(recorded: {', '.join(recorded)})")
    return frame
