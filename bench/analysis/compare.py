"""Compare a candidate result set with a baseline, cell by cell: regressions and improvements.

A cell is one (data_id, model, optimizer, k, lr, backend, dtype); its runs are the seeds. Each
matched cell gets three checks:

- epochs: median epochs to d_align <= t over the seeds, censored runs counting as +inf
  (``stats.cell_summary``); worse than ``epochs_factor`` is a regression, and a median that
  becomes censored always is;
- status: seed by seed, reached < capped < diverged < error; any seed that got worse is a
  regression;
- time: median per-epoch time worse than ``time_factor`` AND a one-sided Mann-Whitney U test
  on the repeated timings with p < alpha (asv's rule: big enough and not noise). Timings are
  compared only between the same CPU model and device, unless ``allow_cross_machine``.

Changes beyond 1 / factor the other way are improvements. Exit codes: 0 no regression,
1 regression, 3 nothing comparable (no cell in common).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd
from scipy.stats import mannwhitneyu

from ..errors import EXIT_NOTHING_COMPARABLE, EXIT_OK, EXIT_RUN_FAILED
from .stats import cell_summary, load_results
from ..sweep.store import _jsonable, load_manifest
from .thresholds import Limits, Thresholds

MATCH_KEY = ("data_id", "model", "optimizer", "k", "lr", "backend", "dtype")
STATUS_RANK = {"reached": 0, "capped": 1, "diverged": 2, "error": 3}
REGRESSION, IMPROVEMENT, SAME, NOT_COMPARED = "regression", "improvement", "same", "not_compared"
CROSS_MACHINE_HINT = "pass --allow-cross-machine to compare anyway"


@dataclass(frozen=True)
class Check:
    """One quantity of one cell, baseline against candidate.

    quantity: 'epochs' (median epochs to the threshold, inf = censored), 'status' (per seed)
    or 'time' (median seconds per epoch). ratio: candidate / baseline. limit: the allowed
    factor. p_value: Mann-Whitney U (time only).
    """

    quantity: str
    verdict: str
    baseline: Any = None
    candidate: Any = None
    ratio: float | None = None
    limit: float | None = None
    p_value: float | None = None
    note: str = ""


@dataclass(frozen=True)
class CellComparison:
    cell: dict[str, Any]          # MATCH_KEY -> value
    checks: tuple[Check, ...]

    def check(self, quantity: str) -> Check:
        return next(c for c in self.checks if c.quantity == quantity)

    @property
    def verdict(self) -> str:
        """regression if any check regressed, else improvement if any improved, else same."""
        verdicts = {c.verdict for c in self.checks}
        for verdict in (REGRESSION, IMPROVEMENT, SAME):
            if verdict in verdicts:
                return verdict
        return NOT_COMPARED


@dataclass(frozen=True)
class Comparison:
    """Everything ``compare`` found; renderers live in ``compare_render``."""

    cells: tuple[CellComparison, ...]
    only_in_baseline: tuple[dict[str, Any], ...]
    only_in_candidate: tuple[dict[str, Any], ...]
    thresholds: Thresholds
    baseline_dirs: tuple[str, ...]
    candidate_dirs: tuple[str, ...]

    def findings(self, verdict: str) -> list[tuple[CellComparison, Check]]:
        """(cell, check) pairs with the given verdict, in cell order."""
        return [(cell, c) for cell in self.cells for c in cell.checks if c.verdict == verdict]

    @property
    def exit_code(self) -> int:
        if not self.cells:
            return EXIT_NOTHING_COMPARABLE
        return EXIT_RUN_FAILED if self.findings(REGRESSION) else EXIT_OK

    @property
    def verdict(self) -> str:
        return {EXIT_OK: "no regression", EXIT_RUN_FAILED: "regression",
                EXIT_NOTHING_COMPARABLE: "nothing comparable"}[self.exit_code]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (censored epochs, stored as inf, become null)."""
        return _jsonable({
            "verdict": self.verdict, "exit_code": self.exit_code,
            "d_align_threshold": self.thresholds.d_align_threshold,
            "thresholds_source": self.thresholds.source,
            "baseline": list(self.baseline_dirs), "candidate": list(self.candidate_dirs),
            "summary": {"cells_matched": len(self.cells),
                        "regressions": len(self.findings(REGRESSION)),
                        "improvements": len(self.findings(IMPROVEMENT)),
                        "only_in_baseline": len(self.only_in_baseline),
                        "only_in_candidate": len(self.only_in_candidate)},
            "cells": [{**cell.cell, "verdict": cell.verdict,
                       "checks": [asdict(c) for c in cell.checks]} for cell in self.cells],
            "only_in_baseline": list(self.only_in_baseline),
            "only_in_candidate": list(self.only_in_candidate),
        })


def compare(baseline_dirs: str | Path | Iterable[str | Path],
            candidate_dirs: str | Path | Iterable[str | Path],
            thresholds: Thresholds | None = None, *,
            allow_cross_machine: bool = False) -> Comparison:
    """Compare the records of the candidate run directories with those of the baseline."""
    thresholds = thresholds or Thresholds()
    base, cand = (load_cells(dirs, thresholds.d_align_threshold, side)
                  for dirs, side in ((baseline_dirs, "baseline"), (candidate_dirs, "candidate")))
    cells = []
    for key in sorted(base.keys() & cand.keys()):
        cell = dict(zip(MATCH_KEY, key))
        limits = thresholds.for_cell(cell["model"], cell["optimizer"], cell["k"])
        cells.append(compare_cell(cell, base[key], cand[key], limits, allow_cross_machine))
    only = [tuple(dict(zip(MATCH_KEY, key)) for key in sorted(a.keys() - b.keys()))
            for a, b in ((base, cand), (cand, base))]
    return Comparison(tuple(cells), only[0], only[1], thresholds,
                      _as_strings(baseline_dirs), _as_strings(candidate_dirs))


@dataclass(frozen=True)
class CellRuns:
    """The runs of one cell on one side: their records and their seed summary."""

    runs: pd.DataFrame      # one row per run (records_frame columns + "timed_on")
    summary: pd.Series      # the cell's row of stats.cell_summary


def load_cells(run_dirs: str | Path | Iterable[str | Path], threshold: float,
               side: str = "results") -> dict[tuple, CellRuns]:
    """The cells of one side keyed by their MATCH_KEY values (Python scalars, sortable)."""
    frame = load_results(run_dirs, threshold, side)
    cpu = {run_dir: _cpu_model(run_dir) for run_dir in frame["run_dir"].unique()}
    frame = frame.assign(timed_on=[_timing_host(device, cpu[run_dir]) for device, run_dir
                                   in zip(frame["device"], frame["run_dir"])])
    summaries = {_python_key(row): row for _, row in
                 cell_summary(frame, threshold, cell=MATCH_KEY).iterrows()}
    cells = {}
    for _, group in frame.groupby(list(MATCH_KEY), sort=True):
        key = _python_key(group.iloc[0])
        cells[key] = CellRuns(group, summaries[key])
    return cells


def _python_key(row: pd.Series) -> tuple:
    """A row's MATCH_KEY values as plain Python scalars (hashable, sortable, JSON-ready)."""
    return tuple(v.item() if isinstance(v, np.generic) else v for v in row[list(MATCH_KEY)])


def compare_cell(cell: Mapping[str, Any], base: CellRuns, cand: CellRuns, limits: Limits,
                 allow_cross_machine: bool = False) -> CellComparison:
    return CellComparison(dict(cell), (
        epochs_check(base.summary, cand.summary, limits.epochs_factor),
        status_check(base.runs, cand.runs),
        time_check(base.runs, cand.runs, limits, allow_cross_machine)))


def epochs_check(base: pd.Series, cand: pd.Series, factor: float) -> Check:
    """Median epochs to the threshold (inf = censored) of two cell summaries."""
    b, c = float(base["epochs_median"]), float(cand["epochs_median"])
    if np.isnan(b) or np.isnan(c):
        return Check("epochs", NOT_COMPARED, b, c, note="every run of one side errored")
    if np.isinf(b) and np.isinf(c):
        return Check("epochs", SAME, b, c, note="censored in both")
    ratio = _censored_ratio(c, b)
    return Check("epochs", _ratio_verdict(ratio, factor), b, c, ratio, factor)


def status_check(base: pd.DataFrame, cand: pd.DataFrame) -> Check:
    """Seed-by-seed statuses; worse = further along reached < capped < diverged < error."""
    b, c = dict(zip(base["seed"], base["status"])), dict(zip(cand["seed"], cand["status"]))
    seeds = sorted(b.keys() & c.keys())
    if not seeds:
        return Check("status", NOT_COMPARED, note="no seed in common")
    worse = [f"seed {s}: {b[s]} -> {c[s]}" for s in seeds if STATUS_RANK[c[s]] > STATUS_RANK[b[s]]]
    better = [f"seed {s}: {b[s]} -> {c[s]}" for s in seeds if STATUS_RANK[c[s]] < STATUS_RANK[b[s]]]
    verdict = REGRESSION if worse else IMPROVEMENT if better else SAME
    return Check("status", verdict, _status_counts(b, seeds), _status_counts(c, seeds),
                 note="; ".join(worse or better))


def time_check(base: pd.DataFrame, cand: pd.DataFrame, limits: Limits,
               allow_cross_machine: bool = False) -> Check:
    """Median per-epoch time, flagged only when beyond the factor and significant."""
    refusal = _timing_refusal(base, cand, allow_cross_machine)
    if refusal:
        return Check("time", NOT_COMPARED, note=refusal)
    b, c = cell_timings(base), cell_timings(cand)
    if b.size == 0 or c.size == 0:
        return Check("time", NOT_COMPARED, note="no per-epoch timings stored")
    b_median, c_median = float(np.median(b)), float(np.median(c))
    ratio = c_median / b_median
    verdict = _ratio_verdict(ratio, limits.time_factor)
    if verdict == SAME:
        return Check("time", SAME, b_median, c_median, ratio, limits.time_factor)
    p = float(mannwhitneyu(c, b, alternative="greater" if verdict == REGRESSION else "less"
                           ).pvalue)
    if p >= limits.alpha:
        return Check("time", SAME, b_median, c_median, ratio, limits.time_factor, p,
                     note=f"not significant (p = {p:.2g} >= {limits.alpha:g} with "
                          f"{b.size} and {c.size} timings)")
    return Check("time", verdict, b_median, c_median, ratio, limits.time_factor, p)


def cell_timings(runs: pd.DataFrame) -> np.ndarray:
    """The repeated per-epoch timings (s) of a cell's batch.

    The seeds of a cell train as one batch, so their records repeat the same block timings;
    pooling them would count each block several times and overstate significance. The run
    that trained longest was timed in every block, so its list is the batch's.
    """
    longest = max(runs["epoch_times_s"], key=len, default=[])
    return np.asarray(longest, dtype=float)


def _timing_refusal(base: pd.DataFrame, cand: pd.DataFrame, allow_cross_machine: bool) -> str:
    """Why the timings of two cells cannot be compared ('' when they can)."""
    b_size, c_size = int(base["batch_size"].max()), int(cand["batch_size"].max())
    if b_size != c_size:
        # A batch-epoch of r runs costs more than one of fewer runs: not the same work.
        return f"batch sizes differ ({b_size} vs {c_size} runs per batch)"
    b_on, c_on = _timed_on(base), _timed_on(cand)
    if b_on != c_on and not allow_cross_machine:
        return f"baseline timed on {b_on}, candidate on {c_on}; {CROSS_MACHINE_HINT}"
    return ""


def _timing_host(device: str, cpu_model: str) -> str:
    """Where a run was timed: its device, and the host CPU when the device is a GPU (the host
    still issues every kernel, so a different CPU can change small-k GPU timings)."""
    return device if device == cpu_model else f"{device} (host {cpu_model})"


def _timed_on(runs: pd.DataFrame) -> str:
    return " + ".join(sorted(set(runs["timed_on"])))


def _cpu_model(run_dir: str) -> str:
    """The CPU model the manifest records (env.py's key, or a common alternative)."""
    machine = load_manifest(run_dir).get("machine") or {}
    for key in ("cpu_model", "cpu", "processor"):
        if machine.get(key):
            return str(machine[key])
    return "unknown CPU"


def _censored_ratio(candidate: float, baseline: float) -> float:
    """candidate / baseline where either may be +inf (censored) or 0; not both inf."""
    if np.isinf(baseline):
        return 0.0                       # only the candidate reached the threshold
    if baseline == 0:
        return 1.0 if candidate == 0 else np.inf
    return candidate / baseline


def _ratio_verdict(ratio: float, factor: float) -> str:
    if ratio > factor:
        return REGRESSION
    if ratio < 1 / factor:
        return IMPROVEMENT
    return SAME


def _status_counts(status_by_seed: Mapping[int, str], seeds: list[int]) -> str:
    counts = pd.Series([status_by_seed[s] for s in seeds]).value_counts()
    return ", ".join(f"{n} {status}" for status, n in
                     sorted(counts.items(), key=lambda item: STATUS_RANK[item[0]]))


def _as_strings(dirs: str | Path | Iterable[str | Path]) -> tuple[str, ...]:
    return (str(dirs),) if isinstance(dirs, (str, Path)) else tuple(str(d) for d in dirs)


def cell_label(cell: Mapping[str, Any]) -> str:
    """A short human name of a cell: 'rotation sgd_nesterov k=10 lr=0.0001 numpy/float64'."""
    return (f"{cell['model']} {cell['optimizer']} k={cell['k']} lr={cell['lr']:g} "
            f"{cell['backend']}/{cell['dtype']}")


def benchmark_action_entries(run_dirs: str | Path | Iterable[str | Path],
                             threshold: float = 0.3) -> list[dict[str, Any]]:
    """github-action-benchmark ``customSmallerIsBetter`` entries, two per cell.

    ``{"name", "unit", "value", "extra"}``: the median epochs to d_align <= threshold (a
    censored median is exported as the epoch cap, marked in ``extra``) and the median seconds
    per epoch. Names hold the data id so that series from different data never merge.
    """
    entries = []
    for key, cell in load_cells(run_dirs, threshold).items():
        name = f"{key[0]} {cell_label(dict(zip(MATCH_KEY, key)))}"   # key[0]: the data id
        s = cell.summary
        censored = not np.isfinite(s["epochs_median"])
        entries.append({"name": f"{name}: epochs to d_align {threshold}", "unit": "epochs",
                        "value": float(s["max_epochs"] if censored else s["epochs_median"]),
                        "extra": (f"censored: median run did not reach {threshold} within "
                                  f"{s['max_epochs']} epochs" if censored else
                                  f"median of {s['runs']} seeds")})
        if np.isfinite(s["epoch_time_s"]):
            entries.append({"name": f"{name}: time per epoch", "unit": "s",
                            "value": float(s["epoch_time_s"]),
                            "extra": f"timed on {_timed_on(cell.runs)}"})
    return entries
