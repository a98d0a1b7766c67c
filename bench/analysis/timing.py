"""The timing gate: is a cell's epoch really slower, or was the machine busy?

Samples. A cell's seeds train as one batch, timed block by block (``eval_every`` epochs each,
warm-up block excluded). Beside every block the sweep records (``bench.sweep.reference``):

- the block's CPU share: the training thread's CPU time over the wall time. Other processes
  that take the CPU away leave it below 1, and nothing measured in the same run undoes that (a
  pre-empted block is late by whole scheduler slices, a short reference product is rarely
  hit). Only *clean* blocks, share >= ``CLEAN_SHARE``, are timed samples; a side with fewer
  than ``MIN_CLEAN_BLOCKS`` of them was timed on a busy machine and its time is not judged.
- a fixed reference product of the cell's dominant shape, timed just before each block. It is
  a check of the conditions, not a divisor: a machine that runs at another speed without
  taking the CPU away (a virtual machine's host, a busy sibling hyperthread, the memory bus,
  another clock) shows in it, but not in proportion (measured: under two busy loops on a
  2-core VM the reference slowed 1.1-2.9x while the clean epochs slowed 0.8-1.4x). When the
  medians of the two sides' reference times differ by more than ``REFERENCE_TOLERANCE``, the
  two sides did not run under the same conditions and the time is not judged (the
  thresholds' ``reference_factor``, default ``REFERENCE_TOLERANCE``). This check is for two
  separate runs. Interleaved rounds share the machine's conditions by construction, and a
  reference that moves with the candidate in every round is the candidate's own doing
  (measured: beside a real 2x slow-down the reference ran 1.3-1.4x slower in every round of
  some cells, p < 0.01): for them the reference ratio is reported, never a reason to refuse.

Records without these (older runs, other tools) fall back to every block, with a note that
load is not accounted for there.

Independence. Neighbouring blocks share the machine's state, so they are not independent
samples. A side made of several rounds (``lae-bench interleave``: the same sweep run again and
again, alternately with the other side's code) gives one sample per round: the median of its
clean blocks. A side of one run falls back to cutting its clean blocks into up to
``TIMING_CHUNKS`` contiguous chunks, each chunk's median one sample. Only rounds run alternately
with the other side's also share its conditions: a machine whose speed drifts between runs (a
VM's host, measured here: 1.3-1.9x from one process to the next) moves two separate runs
apart, and then the reference check above can only refuse to judge.

Decision (asv's rule: big enough and not noise): a regression when the candidate's epoch time
over the baseline's (``epoch_ratio``: with rounds, the median of the per-round ratios; else of
the sides' clean-block medians) exceeds the cell's ``time_factor`` AND a one-sided
Mann-Whitney U test on the samples gives p < ``alpha``; an improvement the same way below
1 / factor. With 8 samples a side the smallest p is 1/12870, with 6 rounds 1/924, with 5
rounds 1/252; with fewer than 5 a side, p cannot go below 0.01 and nothing is flagged at the
default alpha.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import mannwhitneyu

from .stats import batch_timings

REGRESSION, IMPROVEMENT, SAME, NOT_COMPARED = "regression", "improvement", "same", "not_compared"
TIMING_CHUNKS = 8
CLEAN_SHARE = 0.9
MIN_CLEAN_BLOCKS = 5
REFERENCE_TOLERANCE = 1.25
RAW_NOTE = "no CPU shares or reference times recorded: machine load not accounted for"


@dataclass(frozen=True)
class TimingSamples:
    """One side of a cell: its batch's per-block epoch times, the same-run reference times and
    CPU shares beside them, over one or more rounds.

    epoch_s: (b,) seconds per epoch per block; reference_s: (b,) seconds per reference
    product, or None; cpu_share: (b,) training-thread CPU time / wall time, or None;
    rounds: (b,) the round of each block, or None for one run."""

    epoch_s: np.ndarray
    reference_s: np.ndarray | None = None
    cpu_share: np.ndarray | None = None
    rounds: np.ndarray | None = None

    @property
    def has_reference(self) -> bool:
        return self.reference_s is not None

    @property
    def clean(self) -> np.ndarray:
        """(b,) bool: the blocks that had the CPU to themselves (all, without shares)."""
        if self.cpu_share is None:
            return np.ones(self.epoch_s.size, dtype=bool)
        return self.cpu_share >= CLEAN_SHARE

    def samples(self) -> np.ndarray:
        """The epoch times of the clean blocks, in block order."""
        return self.epoch_s[self.clean]

    @property
    def has_rounds(self) -> bool:
        return self.rounds is not None

    def independent(self) -> np.ndarray:
        """The samples the test runs on: each round's median clean-block epoch time (rounds
        without a clean block give none), or for one run the chunk medians."""
        if not self.has_rounds:
            return chunk_medians(self.samples())
        return self.round_medians(self.epoch_s)

    def by_round(self, values: np.ndarray) -> dict[int, float]:
        """Round -> the median of ``values`` (b,) over that round's clean blocks."""
        clean = self.clean
        return {int(r): float(np.median(values[clean & (self.rounds == r)]))
                for r in np.unique(self.rounds[clean])}

    def round_medians(self, values: np.ndarray) -> np.ndarray:
        """Per round, the median of ``values`` (b,) over its clean blocks."""
        return np.array(list(self.by_round(values).values()))

    def reference(self) -> float:
        """Median seconds of the reference product beside the clean blocks (NaN: none); with
        rounds, the median of the rounds' medians."""
        if not self.has_reference or not self.clean.any():
            return np.nan
        if self.has_rounds:
            return float(np.median(self.round_medians(self.reference_s)))
        return float(np.median(self.reference_s[self.clean]))


def _per_block(runs: pd.DataFrame, column: str, size: int) -> np.ndarray | None:
    values = batch_timings(runs, column)
    ok = values.size == size and size > 0 and bool(np.all(np.isfinite(values) & (values > 0)))
    return values if ok else None


def epoch_ratio(base: TimingSamples, cand: TimingSamples) -> float:
    """Candidate over baseline epoch time. With rounds on both sides, the median over rounds of
    round r's candidate median over round r's baseline median: ``lae-bench interleave`` ran the
    two back to back, so each ratio compares runs made in the same state of the machine
    (measured here: 2x slow-downs read 1.71-2.18 this way, 1.31-2.37 as a ratio of the sides'
    medians). Otherwise the ratio of the medians of the clean blocks."""
    if base.has_rounds and cand.has_rounds:
        b, c = base.by_round(base.epoch_s), cand.by_round(cand.epoch_s)
        pairs = [c[r] / b[r] for r in sorted(b.keys() & c.keys())]
        if pairs:
            return float(np.median(pairs))
    return float(np.median(cand.samples()) / np.median(base.samples()))


def timing_samples(runs: pd.DataFrame) -> TimingSamples:
    """The timing samples of one side of a cell, from its records: one batch per run
    directory (a round), concatenated."""
    sides = [_batch_samples(group) for _, group in runs.groupby("run_dir", sort=True)]
    if len(sides) == 1:
        return sides[0]
    rounds = np.concatenate([np.full(s.epoch_s.size, i) for i, s in enumerate(sides)])
    return TimingSamples(*(_joined(sides, name) for name in ("epoch_s", "reference_s",
                                                             "cpu_share")), rounds)


def _joined(sides: list[TimingSamples], name: str) -> np.ndarray | None:
    parts = [getattr(side, name) for side in sides]
    return None if any(part is None for part in parts) else np.concatenate(parts)


def _batch_samples(runs: pd.DataFrame) -> TimingSamples:
    epoch = batch_timings(runs)
    return TimingSamples(epoch, _per_block(runs, "reference_times_s", epoch.size),
                         _per_block(runs, "block_cpu_shares", epoch.size))


def chunk_medians(values: np.ndarray, chunks: int = TIMING_CHUNKS) -> np.ndarray:
    """Medians of up to ``chunks`` contiguous, nearly equal runs of ``values`` (b,) -> (c,)."""
    parts = np.array_split(np.asarray(values, dtype=float), min(chunks, len(values)))
    return np.array([np.median(p) for p in parts if p.size])


@dataclass(frozen=True)
class TimingChange:
    """Candidate against baseline: ratio of the median q (or raw times), p, verdict."""

    verdict: str
    ratio: float | None        # median clean-block epoch time, candidate / baseline
    raw_ratio: float | None    # the same over every block, for the reader
    p_value: float | None
    reference_ratio: float | None   # median reference product time, candidate / baseline
    note: str = ""


def busy_note(base: TimingSamples, cand: TimingSamples,
              tolerance: float = REFERENCE_TOLERANCE) -> str:
    """Why the two sides' times cannot be judged ('' when both had enough clean blocks and,
    for two separate runs, their reference products ran within ``tolerance`` of each other)."""
    for side, s in (("baseline", base), ("candidate", cand)):
        clean = int(s.clean.sum())
        if s.cpu_share is not None and clean < MIN_CLEAN_BLOCKS:
            return (f"{side} timed on a busy machine: {clean} of {s.epoch_s.size} blocks had "
                    f"the CPU to themselves (share >= {CLEAN_SHARE:g}, {MIN_CLEAN_BLOCKS} "
                    "needed); rerun it where nothing else runs")
    if base.has_rounds and cand.has_rounds:
        return ""      # interleaved: the conditions are shared by construction (docstring)
    ratio = cand.reference() / base.reference()
    if np.isfinite(ratio) and not 1 / tolerance <= ratio <= tolerance:
        return (f"not timed under the same conditions: the same-run reference product ran "
                f"x{ratio:.2f} the baseline's time (tolerance x{tolerance:g}); "
                "rerun both where nothing else runs")
    return ""


def timing_change(base: TimingSamples, cand: TimingSamples, factor: float, alpha: float,
                  reference_factor: float = REFERENCE_TOLERANCE) -> TimingChange:
    """The gate's decision (module docstring): the conditions check, then factor and
    significance on the clean blocks."""
    raw_ratio = float(np.median(cand.epoch_s) / np.median(base.epoch_s))
    reference_ratio = (cand.reference() / base.reference() if base.has_reference and
                       cand.has_reference else None)
    busy = busy_note(base, cand, reference_factor)
    if busy:
        return TimingChange(NOT_COMPARED, None, raw_ratio, None, reference_ratio, busy)
    ratio = epoch_ratio(base, cand)
    note = "" if base.cpu_share is not None and cand.cpu_share is not None else RAW_NOTE
    direction = REGRESSION if ratio > factor else IMPROVEMENT if ratio < 1 / factor else SAME
    if direction == SAME:
        return TimingChange(SAME, ratio, raw_ratio, None, reference_ratio, note)
    b_samples, c_samples = base.independent(), cand.independent()
    p = float(mannwhitneyu(c_samples, b_samples, alternative="greater" if direction == REGRESSION
                           else "less").pvalue)
    if p >= alpha:
        unit = "rounds" if base.has_rounds and cand.has_rounds else "samples"
        why = (f"not significant (p = {p:.2g} >= {alpha:g} with {b_samples.size} and "
               f"{c_samples.size} {unit})")
        return TimingChange(SAME, ratio, raw_ratio, p, reference_ratio,
                            "; ".join(filter(None, (why, note))))
    return TimingChange(direction, ratio, raw_ratio, p, reference_ratio, note)
