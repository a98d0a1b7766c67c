"""Summaries over seeds: epochs to a threshold with censoring, and per-epoch time.

A run that never reached the threshold (capped or diverged) is censored: it counts as +inf, so
a cell's median is censored when half or more of its runs did not get there.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from ..errors import UsageError
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


def _quantile(values: np.ndarray, q: float) -> float:
    # No interpolation: with censored (+inf) runs, interpolating would give inf - inf = NaN.
    return float(np.quantile(values, q, method="inverted_cdf")) if values.size else np.nan


def cell_summary(frame: pd.DataFrame, threshold: float = 0.3,
                 cell: Sequence[str] = CELL) -> pd.DataFrame:
    """One row per cell (``cell`` columns, CELL by default; add "lr" for learning-rate sweeps):
    runs, reached, median / q25 / q75 epochs to the threshold (inf = censored), censored flag,
    epoch cap, median per-epoch time."""
    frame = frame.assign(_epochs=epochs_or_inf(frame, threshold))
    rows = []
    for key, group in frame.groupby(list(cell), sort=True):
        valid = group["_epochs"].dropna().to_numpy()
        median = _quantile(valid, 0.5)
        rows.append(dict(zip(cell, key), runs=len(group), reached=int(np.isfinite(valid).sum()),
                         errors=int((group["status"] == "error").sum()),
                         diverged=int((group["status"] == "diverged").sum()),
                         epochs_median=median, epochs_q25=_quantile(valid, 0.25),
                         epochs_q75=_quantile(valid, 0.75),
                         censored=bool(valid.size == 0 or not np.isfinite(median)),
                         max_epochs=int(group["max_epochs"].max()),
                         epoch_time_s=float(pd.to_numeric(group["epoch_time_median_s"],
                                                          errors="coerce").median())))
    return pd.DataFrame(rows)


def median_epochs(epochs_to: Iterable[int | None]) -> float:
    """Median over runs of the epochs to a threshold (the lower middle value for an even count,
    as in cell_summary), None (not reached) counting as +inf; NaN for no runs."""
    values = np.array([np.inf if e is None else e for e in epochs_to], dtype=float)
    return _quantile(values, 0.5)


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
