"""Censored epoch counts: the median and quartiles of epochs to a threshold over seeds.

A run that never reached the threshold (capped or diverged) is censored: it counts as +inf.
Medians and quartiles use the midpoint rule: with an even count the median is the mean of the
middle pair, so seeds that reached after 210 and 260 epochs give 235. A median is censored
exactly when half or more of the runs are; with an even count and exactly half censored, the
middle pair straddles the cap (one reached, the next did not) and the cell says so
(``straddles``) instead of showing a finite number.

The sweep's stop_on_failure and progress lines, ``tune``'s scores and every table of the
analysis layer take their medians from here, so a cell reads the same everywhere.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np


@dataclass(frozen=True)
class CensoredSummary:
    """Median and quartiles of epochs to a threshold over runs, +inf = censored.

    runs: runs counted (errors excluded); censored_runs: how many did not reach;
    straddles: even count, exactly half censored (the middle pair straddles the cap).
    """

    runs: int
    censored_runs: int
    median: float
    q25: float
    q75: float

    @property
    def censored(self) -> bool:
        """Half or more of the runs did not reach (or there are none)."""
        return self.runs == 0 or 2 * self.censored_runs >= self.runs

    @property
    def straddles(self) -> bool:
        return self.runs > 0 and self.runs % 2 == 0 and 2 * self.censored_runs == self.runs


def midpoint_quantile(values: np.ndarray, q: float) -> float:
    """The q-quantile of ``values`` by the midpoint rule, +inf allowed (NaN for none).

    Position h = (n - 1) q in the sorted values; between two values, their mean (an infinite
    neighbour gives +inf, never the inf - inf = NaN of linear interpolation)."""
    x = np.sort(np.asarray(values, dtype=float))
    if x.size == 0:
        return np.nan
    h = (x.size - 1) * q
    low, high = x[int(np.floor(h))], x[int(np.ceil(h))]
    return float(low) if low == high else float(np.inf if np.isinf(high) else (low + high) / 2)


def censored_summary(epochs: Iterable[float | None]) -> CensoredSummary:
    """Summary of epochs to a threshold, None or inf = censored, NaN (errors) left out."""
    x = np.array([np.inf if e is None else e for e in epochs], dtype=float)
    x = x[~np.isnan(x)]
    censored_runs = int(np.isinf(x).sum())
    # The midpoint rule makes the median +inf exactly when half or more are +inf.
    return CensoredSummary(int(x.size), censored_runs, midpoint_quantile(x, 0.5),
                           midpoint_quantile(x, 0.25), midpoint_quantile(x, 0.75))


def median_epochs(epochs_to: Iterable[float | None]) -> float:
    """Median over runs of the epochs to a threshold, None (not reached) counting as +inf;
    +inf when half or more did not reach, NaN for no runs."""
    return censored_summary(epochs_to).median
