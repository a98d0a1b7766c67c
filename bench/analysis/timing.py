"""The timing gate: is a cell's epoch really slower, or was the machine busy?

Samples. A cell's seeds train as one batch, timed block by block (``eval_every`` epochs each,
warm-up block excluded). Next to every block the sweep times a fixed reference product of the
cell's dominant shape (``bench.perf.reference``), so each block has a load-cancelling ratio

    q_b = epoch_time_b / reference_time_b        (block b; unitless, "epochs in products")

Other processes slow both terms of a block alike, so q does not move with machine load, while a
slower epoch (more work, a worse code path) moves q and not the reference. Records without
reference times (older runs) fall back to the raw epoch times, with a note that load is not
cancelled there.

Independence. Neighbouring blocks share the machine's state (a burst of load, a frequency
step), so they are not independent samples. The blocks are cut into up to ``TIMING_CHUNKS``
contiguous chunks and each chunk's median is one sample; the test runs on those.

Decision (asv's rule: big enough and not noise): a regression when the ratio of the medians of
q, candidate over baseline, exceeds the cell's ``time_factor`` AND a one-sided Mann-Whitney U
test on the chunk medians gives p < ``alpha``; an improvement the same way below 1 / factor.
With 8 chunks a side the smallest p is 1/12870; with fewer than 5 a side, p cannot go below
0.01 and nothing is flagged at the default alpha.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import mannwhitneyu

from .stats import batch_timings

REGRESSION, IMPROVEMENT, SAME = "regression", "improvement", "same"
TIMING_CHUNKS = 8
RAW_NOTE = "raw epoch times (no same-run reference recorded): machine load is not cancelled"


@dataclass(frozen=True)
class TimingSamples:
    """One side of a cell: its batch's per-block epoch times and same-run reference times.

    epoch_s: (b,) seconds per epoch per block; reference_s: (b,) seconds per reference
    product measured beside each block, or None when the records have none."""

    epoch_s: np.ndarray
    reference_s: np.ndarray | None = None

    @property
    def normalized(self) -> bool:
        return self.reference_s is not None

    def ratios(self) -> np.ndarray:
        """q_b = epoch_s / reference_s per block (epoch_s where there is no reference)."""
        return self.epoch_s / self.reference_s if self.normalized else self.epoch_s


def timing_samples(runs: pd.DataFrame) -> TimingSamples:
    """The timing samples of one side of a cell, from its records."""
    epoch = batch_timings(runs)
    reference = batch_timings(runs, "reference_times_s")
    usable = (reference.size == epoch.size and reference.size > 0
              and bool(np.all(np.isfinite(reference) & (reference > 0))))
    return TimingSamples(epoch, reference if usable else None)


def chunk_medians(values: np.ndarray, chunks: int = TIMING_CHUNKS) -> np.ndarray:
    """Medians of up to ``chunks`` contiguous, nearly equal runs of ``values`` (b,) -> (c,)."""
    parts = np.array_split(np.asarray(values, dtype=float), min(chunks, len(values)))
    return np.array([np.median(p) for p in parts if p.size])


@dataclass(frozen=True)
class TimingChange:
    """Candidate against baseline: ratio of the median q (or raw times), p, verdict."""

    verdict: str
    ratio: float
    raw_ratio: float          # ratio of the median raw epoch times, for the reader
    p_value: float | None
    normalized: bool
    note: str = ""


def timing_change(base: TimingSamples, cand: TimingSamples, factor: float, alpha: float
                  ) -> TimingChange:
    """The gate's decision (module docstring): factor and significance, on q when both sides
    recorded reference times, on raw epoch times otherwise."""
    normalized = base.normalized and cand.normalized
    b = base.ratios() if normalized else base.epoch_s
    c = cand.ratios() if normalized else cand.epoch_s
    ratio = float(np.median(c) / np.median(b))
    raw_ratio = float(np.median(cand.epoch_s) / np.median(base.epoch_s))
    note = "" if normalized else RAW_NOTE
    direction = REGRESSION if ratio > factor else IMPROVEMENT if ratio < 1 / factor else SAME
    if direction == SAME:
        return TimingChange(SAME, ratio, raw_ratio, None, normalized, note)
    b_chunks, c_chunks = chunk_medians(b), chunk_medians(c)
    p = float(mannwhitneyu(c_chunks, b_chunks, alternative="greater" if direction == REGRESSION
                           else "less").pvalue)
    if p >= alpha:
        why = (f"not significant (p = {p:.2g} >= {alpha:g} with {b_chunks.size} and "
               f"{c_chunks.size} chunks of blocks)")
        return TimingChange(SAME, ratio, raw_ratio, p, normalized, "; ".join(filter(None, (
            why, note))))
    return TimingChange(direction, ratio, raw_ratio, p, normalized, note)
