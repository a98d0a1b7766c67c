# Over 400 lines: a comparison's cell identity, field differences and three checks are one
# decision read top to bottom; its renderings live apart in compare_render.py.
"""Compare a candidate result set with a baseline, cell by cell: regressions and improvements.

Cell identity. Two cells are the same experiment only when every field that changes their
numbers agrees: ``IDENTITY`` (data recipe, model, optimizer, k, lr, the resolved
hyperparameters, max_epochs, eval_every, the recorded thresholds, dtype, backend). Fields whose
values differ between the two sets are listed at the top of every rendering, so a changed cap
or learning rate is never compared silently. ``match_by`` drops chosen fields from the
identity, to compare across them on purpose (``--match-by lr``). The data recipe (``data_id``)
is the identity of the data; records of schema 2 also carry ``data_fingerprint`` (a hash of
the exact numbers): a different fingerprint under the same recipe is data built on another
machine, reported as a note, never as another cell.

Each matched cell gets three checks:

- epochs: median epochs to d_align <= t over the seeds, censored runs counting as +inf
  (``stats.cell_summary``); worse than ``epochs_factor`` is a regression, and a median that
  becomes censored always is;
- status: seed by seed, reached < capped < diverged < error; any seed that got worse is a
  regression;
- time: the timing gate of ``timing.py``: only the blocks that had the CPU to themselves;
  beyond ``time_factor`` and significant over chunks of blocks. A side timed on a busy
  machine, or two sides whose same-run reference product ran at different speeds, is not
  judged. Timings are compared only between the same CPU model and device, unless
  ``allow_cross_machine``.

Changes beyond 1 / factor the other way are improvements. Exit codes: 0 no regression,
1 regression, 3 nothing comparable (no cell in common).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from ..errors import EXIT_NOTHING_COMPARABLE, EXIT_OK, EXIT_RUN_FAILED, UsageError
from ..sweep.env import recorded_cpu_model
from ..sweep.record import jsonable
from ..sweep.store import load_manifest
from .stats import cell_summary, load_results
from .thresholds import Limits, Thresholds
from .timing import (IMPROVEMENT, NOT_COMPARED, REGRESSION, SAME, timing_change,
                     timing_samples)

IDENTITY = ("data_id", "model", "optimizer", "k", "lr", "hyperparameters", "max_epochs",
            "eval_every", "thresholds", "dtype", "backend")
# Fields listed when they differ although they are not part of a cell's identity.
DESCRIBED = ("seeds", "formulation", "device")
STATUS_RANK = {"reached": 0, "capped": 1, "diverged": 2, "error": 3}
UNKNOWN = "?"       # the hyperparameters of a cell whose runs all errored before training
CROSS_MACHINE_HINT = "pass --allow-cross-machine to compare anyway"
FINGERPRINT_NOTE = "data bitwise different under the same recipe"
# With bitwise-different data, late runs can flip between reached and capped by chance (seen:
# 1 of 72 Adam runs between 1 and 2 BLAS threads), so statuses are judged by counts: more
# seeds worse than this share of the cell (at least one) is a regression.
SAMPLE_TOLERANCE = 0.25
SAMPLE_NOTE = ("seeds judged as a sample: median epochs within epochs_factor, statuses by "
               "counts (tolerance: one seed in four, at least one); errors always count")


@dataclass(frozen=True)
class Check:
    """One quantity of one cell, baseline against candidate.

    quantity: 'epochs' (median epochs to the threshold, inf = censored), 'status' (per seed)
    or 'time' (median seconds per epoch). ratio: candidate / baseline (time: of the blocks
    that had the CPU to themselves, per round with rounds). limit: the allowed factor.
    p_value: Mann-Whitney U over rounds, or chunks of blocks (time only).
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
    cell: dict[str, Any]          # identity field -> value ("b -> c" for a matched-by field)
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
class FieldDifference:
    """A config field whose values differ between the two sets (text per side)."""

    field: str
    baseline: str
    candidate: str
    in_identity: bool      # cells differing in it do not match (unless matched by it)


@dataclass(frozen=True)
class Comparison:
    """Everything ``compare`` found; renderers live in ``compare_render``."""

    cells: tuple[CellComparison, ...]
    only_in_baseline: tuple[dict[str, Any], ...]
    only_in_candidate: tuple[dict[str, Any], ...]
    thresholds: Thresholds
    baseline_dirs: tuple[str, ...]
    candidate_dirs: tuple[str, ...]
    differences: tuple[FieldDifference, ...] = ()
    notes: tuple[str, ...] = ()
    match_by: tuple[str, ...] = ()

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
        return jsonable({
            "verdict": self.verdict, "exit_code": self.exit_code,
            "d_align_threshold": self.thresholds.d_align_threshold,
            "thresholds_source": self.thresholds.source,
            "baseline": list(self.baseline_dirs), "candidate": list(self.candidate_dirs),
            "match_by": list(self.match_by),
            "differences": [asdict(d) for d in self.differences], "notes": list(self.notes),
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
            thresholds: Thresholds | None = None, *, allow_cross_machine: bool = False,
            match_by: Sequence[str] = ()) -> Comparison:
    """Compare the records of the candidate run directories with those of the baseline,
    matching cells on IDENTITY less the ``match_by`` fields."""
    thresholds = thresholds or Thresholds()
    match_by = check_match_by(match_by)
    threshold = thresholds.d_align_threshold
    frames = [load_results(dirs, threshold, side) for dirs, side in
              ((baseline_dirs, "baseline"), (candidate_dirs, "candidate"))]
    frames = with_identity(*frames)
    key_fields = tuple(f for f in IDENTITY if f not in match_by)
    base, cand = (load_cells(frame, threshold, key_fields, side)
                  for frame, side in zip(frames, ("baseline", "candidate")))
    cells = []
    for key in sorted(base.keys() & cand.keys()):
        cell = cell_identity(key_fields, key, base[key], cand[key], match_by)
        limits = thresholds.for_cell(cell["model"], cell["optimizer"], cell["k"])
        cells.append(compare_cell(cell, base[key], cand[key], limits, allow_cross_machine))
    only = [tuple(cell_identity(key_fields, key, a[key], None, match_by)
                  for key in sorted(a.keys() - b.keys())) for a, b in ((base, cand), (cand, base))]
    return Comparison(tuple(cells), only[0], only[1], thresholds,
                      _as_strings(baseline_dirs), _as_strings(candidate_dirs),
                      field_differences(*frames), data_notes(*frames), match_by)


def check_match_by(match_by: Sequence[str]) -> tuple[str, ...]:
    """Validated ``--match-by`` fields (any identity field but model, optimizer and k)."""
    allowed = [f for f in IDENTITY if f not in ("model", "optimizer", "k")]
    for name in match_by:
        if name not in allowed:
            raise UsageError(f"--match-by: {name!r} is not one of {', '.join(allowed)}")
    return tuple(dict.fromkeys(match_by))


# --- identity -----------------------------------------------------------------------------------

def identity_value(field: str, value: Any) -> Any:
    """A record's value of an identity field as a hashable, sortable Python scalar."""
    if field == "hyperparameters":
        return json.dumps(jsonable(value), sort_keys=True)
    if field == "thresholds":
        return ",".join(f"{float(t):g}" for t in sorted(value, reverse=True))
    return value.item() if isinstance(value, np.generic) else value


def with_identity(base: pd.DataFrame, cand: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both frames with ``id_<field>`` columns; a cell whose runs all errored before training
    recorded no hyperparameters: it takes those of the cell with otherwise equal identity on
    either side (UNKNOWN when there is no single such cell)."""
    frames = []
    for frame in (base, cand):
        frame = frame.copy()
        for f in IDENTITY:
            frame[f"id_{f}"] = [identity_value(f, v) for v in frame[f]]
        unknown = (frame["status"] == "error") & (frame["hyperparameters"].map(len) == 0)
        frame.loc[unknown, "id_hyperparameters"] = UNKNOWN
        frames.append(frame)
    rest = [f"id_{f}" for f in IDENTITY if f != "hyperparameters"]
    both = pd.concat(frames)
    known = both[both["id_hyperparameters"] != UNKNOWN].groupby(rest)["id_hyperparameters"]
    lookup = {key: values.iloc[0] for key, values in known
              if values.nunique() == 1}
    for frame in frames:
        unknown = frame["id_hyperparameters"] == UNKNOWN
        frame.loc[unknown, "id_hyperparameters"] = [
            lookup.get(tuple(row), UNKNOWN) for row in frame.loc[unknown, rest].itertuples(
                index=False)]
    return frames[0], frames[1]


@dataclass(frozen=True)
class CellRuns:
    """The runs of one cell on one side: their records and their seed summary."""

    runs: pd.DataFrame      # one row per run (records_frame columns + "timed_on")
    summary: pd.Series      # the cell's row of stats.cell_summary


def load_cells(frame: pd.DataFrame, threshold: float, key_fields: Sequence[str] = IDENTITY,
               side: str = "results") -> dict[tuple, CellRuns]:
    """The cells of one side (a ``with_identity`` frame) keyed by their ``key_fields``
    values. Two cells of one side under one key (fields matched by still differ) are refused."""
    cpu = {run_dir: _cpu_model(run_dir) for run_dir in frame["run_dir"].unique()}
    frame = frame.assign(timed_on=[_timing_host(device, cpu[run_dir]) for device, run_dir
                                   in zip(frame["device"], frame["run_dir"])])
    columns = [f"id_{f}" for f in key_fields]
    cells = {}
    for key, group in frame.groupby(columns, sort=True):
        key = tuple(v.item() if isinstance(v, np.generic) else v for v in key)
        _refuse_mixed(group, key_fields, side)
        summary = cell_summary(group, threshold, cell=columns).iloc[0]
        cells[key] = CellRuns(group, summary)
    return cells


def _refuse_mixed(group: pd.DataFrame, key_fields: Sequence[str], side: str) -> None:
    """One side may hold one cell per key: several values of a matched-by field would pool
    different experiments."""
    for field in IDENTITY:
        if field not in key_fields and group[f"id_{field}"].nunique() > 1:
            values = ", ".join(map(str, sorted(group[field].map(str).unique())))
            raise UsageError(f"--match-by {field}: the {side} holds several cells for "
                             f"{group['model'].iloc[0]} {group['optimizer'].iloc[0]} "
                             f"k={group['k'].iloc[0]} ({field}: {values}); compare one at a "
                             "time, or match by fewer fields")


def cell_identity(key_fields: Sequence[str], key: tuple, base: CellRuns,
                  cand: CellRuns | None, match_by: Sequence[str]) -> dict[str, Any]:
    """The identity of a cell for display: its key, and each matched-by field's value, as
    'baseline -> candidate' where the two differ."""
    cell = dict(zip(key_fields, key))
    cell.pop("hyperparameters", None)     # long; differences are listed at the top
    for field in match_by:
        if field == "hyperparameters":
            continue
        b = base.runs[field].iloc[0]
        b = b.item() if isinstance(b, np.generic) else b
        c = None if cand is None else cand.runs[field].iloc[0]
        c = c.item() if isinstance(c, np.generic) else c
        cell[field] = b if cand is None or identity_value(field, b) == identity_value(
            field, c) else f"{_show(b)} -> {_show(c)}"
    if "thresholds" in cell:
        cell.pop("thresholds")
    return cell


def _show(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


# --- what differs between the two sets ----------------------------------------------------------

def field_differences(base: pd.DataFrame, cand: pd.DataFrame) -> tuple[FieldDifference, ...]:
    """Every identity (and described) field whose set of values differs between the sides."""
    out = []
    for field in IDENTITY + DESCRIBED:
        if field == "hyperparameters":
            diff = _hyperparameter_difference(base, cand)
            if diff:
                out.append(diff)
            continue
        b, c = _values(base, field), _values(cand, field)
        if b != c:
            out.append(FieldDifference(field, _set_text(b), _set_text(c), field in IDENTITY))
    return tuple(out)


def _values(frame: pd.DataFrame, field: str) -> set:
    column = f"id_{field}" if f"id_{field}" in frame else "seed" if field == "seeds" else field
    values = frame[column]
    return {v.item() if isinstance(v, np.generic) else v for v in values if v is not None}


def _set_text(values: set) -> str:
    ordered = sorted(values, key=lambda v: (str(type(v)), v))
    if len(ordered) > 6 and all(isinstance(v, int) for v in ordered):
        return f"{ordered[0]}..{ordered[-1]} ({len(ordered)} values)"
    return ", ".join(_show(v) for v in ordered) or "-"


def _hyperparameter_difference(base: pd.DataFrame, cand: pd.DataFrame
                               ) -> FieldDifference | None:
    """Per model, the hyperparameter names whose values differ ('non_uniform_sum: lam')."""
    changed = []
    for model in sorted(set(base["model"]) & set(cand["model"])):
        b = _model_hyperparameters(base, model)
        c = _model_hyperparameters(cand, model)
        names = sorted(n for n in set(b) | set(c) if b.get(n) != c.get(n))
        if names:
            changed.append(f"{model}: {', '.join(names)}")
    if not changed:
        return None
    text = "; ".join(changed)
    return FieldDifference("hyperparameters", text, text, True)


def _model_hyperparameters(frame: pd.DataFrame, model: str) -> dict[str, set[str]]:
    """name -> the set of canonical values the records of ``model`` hold (per k)."""
    out: dict[str, set[str]] = {}
    for (k, text), _ in frame[frame["model"] == model].groupby(["k", "id_hyperparameters"]):
        if text == UNKNOWN:
            continue
        for name, value in json.loads(text).items():
            out.setdefault(name, set()).add(f"k={k}:{json.dumps(value)}")
    return out


def data_notes(base: pd.DataFrame, cand: pd.DataFrame) -> tuple[str, ...]:
    """A note per data recipe whose numbers are not bit-identical between the sides (another
    data fingerprint, or another BLAS thread count per cell): what differs, from the records
    and manifests, and how such cells are judged."""
    notes = []
    for data_id in sorted(set(base["data_id"]) & set(cand["data_id"])):
        b, c = base[base["data_id"] == data_id], cand[cand["data_id"] == data_id]
        if same_bits(b, c):
            continue
        prints = [sorted(map(str, set(side.get("data_fingerprint", pd.Series()).dropna())))
                  for side in (b, c)]
        what = (f"{FINGERPRINT_NOTE} (fingerprint {', '.join(prints[0])} vs "
                f"{', '.join(prints[1])})" if prints[0] != prints[1]
                else "the same data trained with other BLAS threads")
        differs = environment_differences(b, c) or [
            "nothing the manifests record differs (a BLAS build or CPU feature?)"]
        notes.append(f"{data_id}: {what}; {'; '.join(differs)}; {SAMPLE_NOTE}")
    return tuple(notes)


# What a manifest records that changes a result's last bits: label -> path of keys.
BITS_SOURCES = {"BLAS threads": ("blas", "threads"), "BLAS": ("blas", "name"),
                "BLAS version": ("blas", "version"), "BLAS thread variables":
                ("blas", "thread_variables"), "threads chosen": ("threads", "blas"),
                "CPU": ("machine", "cpu_model"), "numpy": ("packages", "numpy"),
                "device": ("gpu", "name")}


def environment_differences(base: pd.DataFrame, cand: pd.DataFrame) -> list[str]:
    """'BLAS threads 2 vs 1', ...: the recorded facts that differ between the two sides'
    manifests (what can make the same recipe give bitwise-different data)."""
    sides = [[load_manifest(d) for d in sorted(set(frame["run_dir"]))] for frame in (base, cand)]
    found = []
    if "blas_threads" in base and "blas_threads" in cand:
        threads = [sorted(set(frame["blas_threads"].dropna().astype(int))) for frame in
                   (base, cand)]
        if all(threads) and threads[0] != threads[1]:
            found.append(f"BLAS threads per cell {threads[0]} vs {threads[1]}")
    for label, (group, key) in BITS_SOURCES.items():
        values = [{json.dumps(((m.get(group) or {}).get(key)), sort_keys=True) for m in side}
                  for side in sides]
        if values[0] != values[1]:
            found.append(f"{label} {' + '.join(sorted(values[0]))} vs "
                         f"{' + '.join(sorted(values[1]))}".replace('"', ""))
    return found


# --- the checks ---------------------------------------------------------------------------------

def compare_cell(cell: Mapping[str, Any], base: CellRuns, cand: CellRuns, limits: Limits,
                 allow_cross_machine: bool = False) -> CellComparison:
    statuses = (status_check(base.runs, cand.runs) if same_bits(base.runs, cand.runs)
                else status_count_check(base.runs, cand.runs))
    return CellComparison(dict(cell), (
        epochs_check(base.summary, cand.summary, limits.epochs_factor), statuses,
        time_check(base.runs, cand.runs, limits, allow_cross_machine)))


def same_bits(base: pd.DataFrame, cand: pd.DataFrame) -> bool:
    """Were both sides' numbers bit-identical up to training: the same data fingerprint and
    the same BLAS thread count per cell (a field a side did not record counts as the same,
    as before it existed)?"""
    for field in ("data_fingerprint", "blas_threads"):   # same data, same thread count
        if field not in base or field not in cand:
            continue
        b, c = set(base[field].dropna()), set(cand[field].dropna())
        if b and c and b != c:
            return False
    return True


def status_count_check(base: pd.DataFrame, cand: pd.DataFrame) -> Check:
    """Statuses of bitwise-different data, as a sample: the count of seeds that did not
    reach (capped or diverged) may grow by the tolerance; any more errors is a regression."""
    def counts(runs: pd.DataFrame) -> tuple[int, int, int]:
        status = runs["status"]
        return len(runs), int(status.isin(("capped", "diverged")).sum()), int(
            (status == "error").sum())
    (nb, bad_b, err_b), (nc, bad_c, err_c) = counts(base), counts(cand)
    tolerance = max(1, int(SAMPLE_TOLERANCE * min(nb, nc)))
    shown = (_status_counts(dict(enumerate(base["status"])), list(range(nb))),
             _status_counts(dict(enumerate(cand["status"])), list(range(nc))))
    worse, errors = bad_c - bad_b, err_c - err_b
    note = f"counts judged (bitwise-different data): {worse:+d} not reached, tolerance {tolerance}"
    if errors > 0 or worse > tolerance:
        verdict = REGRESSION
    elif errors < 0 or -worse > tolerance:
        verdict = IMPROVEMENT
    else:
        verdict = SAME
    return Check("status", verdict, *shown, note=note)


def epochs_check(base: pd.Series, cand: pd.Series, factor: float) -> Check:
    """Median epochs to the threshold (inf = censored) of two cell summaries."""
    b, c = float(base["epochs_median"]), float(cand["epochs_median"])
    if np.isnan(b) or np.isnan(c):
        return Check("epochs", NOT_COMPARED, b, c, note="every run of one side errored")
    if np.isinf(b) and np.isinf(c):
        return Check("epochs", SAME, b, c, note="censored in both")
    ratio = _censored_ratio(c, b)
    note = "; ".join(f"{side}: half the seeds reached, the middle pair straddles the cap"
                     for side, s in (("baseline", base), ("candidate", cand))
                     if bool(s.get("straddles", False)))
    return Check("epochs", _ratio_verdict(ratio, factor), b, c, ratio, factor, note=note)


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
    """The timing gate (timing.py) on a cell's two batches; baseline / candidate shown as
    their median seconds per epoch over every block, the ratio the gate's (clean blocks)."""
    refusal = _timing_refusal(base, cand, allow_cross_machine)
    if refusal:
        return Check("time", NOT_COMPARED, note=refusal)
    b, c = timing_samples(base), timing_samples(cand)
    if b.epoch_s.size == 0 or c.epoch_s.size == 0:
        return Check("time", NOT_COMPARED, note="no per-epoch timings stored")
    change = timing_change(b, c, limits.time_factor, limits.alpha, limits.reference_factor)
    note = change.note
    if c.cpu_share is not None and change.verdict != NOT_COMPARED:
        kept = f"clean blocks {int(b.clean.sum())}/{b.epoch_s.size} and " \
               f"{int(c.clean.sum())}/{c.epoch_s.size} (all blocks x{change.raw_ratio:.2f})"
        note = "; ".join(filter(None, (kept, note)))
    return Check("time", change.verdict, float(np.median(b.epoch_s)),
                 float(np.median(c.epoch_s)), change.ratio, limits.time_factor,
                 change.p_value, note)


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
    """The CPU model the run directory's manifest records."""
    return recorded_cpu_model(load_manifest(run_dir))


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
    """A short human name of a cell: 'rotation sgd_nesterov k=10 lr=0.0001 numpy/float64',
    with the cap and evaluation interval when they are part of the cell shown."""
    lr = cell.get("lr")
    text = f"{cell['model']} {cell['optimizer']} k={cell['k']}"
    if lr is not None:
        text += f" lr={_show(lr)}"
    for field in ("max_epochs", "eval_every"):
        if isinstance(cell.get(field), str):     # matched by it, and it differs
            text += f" {field}={cell[field]}"
    return text + f" {cell.get('backend', '?')}/{cell.get('dtype', '?')}"


def benchmark_action_entries(run_dirs: str | Path | Iterable[str | Path],
                             threshold: float = 0.3) -> list[dict[str, Any]]:
    """github-action-benchmark ``customSmallerIsBetter`` entries, two per cell.

    ``{"name", "unit", "value", "extra"}``: the median epochs to d_align <= threshold (a
    censored median is exported as the epoch cap, marked in ``extra``) and the median seconds
    per epoch. Names hold the data id so that series from different data never merge.
    """
    frame, _ = with_identity(*(load_results(run_dirs, threshold),) * 2)
    entries = []
    for key, cell in load_cells(frame, threshold).items():
        identity = dict(zip(IDENTITY, key))
        name = f"{identity['data_id']} {cell_label(identity)}"
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
