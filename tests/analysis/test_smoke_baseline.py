"""A fresh ``smoke`` run against the committed baseline (results/baselines/smoke), on any machine.

Where the data is bitwise the baseline's (same fingerprint) and the BLAS is the same build with
the same thread count, every epoch count is deterministic (all randomness comes from seeded host
generators): epochs to every threshold and every status must match exactly, run by run. On
another machine the BLAS rounds X^T X and every product after it differently, so trajectories
drift apart by rounding: then each run's epochs to every threshold must lie within one
evaluation step of the baseline's, every status must be the same, and the regression gate with
the committed thresholds file must find nothing. The exact test skips, saying why, where only
the portable one applies; each test also records which check it made (``check`` property).
Timings are not checked: the baseline comes from another machine.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.analysis.compare import compare
from bench.analysis.thresholds import Limits, Thresholds, load_thresholds
from bench.cli import main
from bench.sweep.store import load_manifest, records_frame

ROOT = Path(__file__).resolve().parents[2]
BASELINE = ROOT / "results" / "baselines" / "smoke"
THRESHOLDS = ROOT / "results" / "thresholds.yaml"
RUN_KEY = ["data_id", "model", "optimizer", "k", "lr", "seed", "backend", "dtype"]
BLAS_FACTS = ("name", "version", "threads", "openblas configuration")


@pytest.fixture(scope="module")
def fresh(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("fresh") / "smoke"
    assert main(["run", "smoke", "--backend", "numpy", "--out", str(run), "--quiet"]) == 0
    return run


def why_not_exact(baseline: Path, candidate: Path) -> str | None:
    """None where the two sets ran on bitwise the same data with the same BLAS; else why not."""
    fingerprints = [set(records_frame(d)["data_fingerprint"]) for d in (baseline, candidate)]
    if fingerprints[0] != fingerprints[1]:
        return (f"data built on another machine (fingerprint {', '.join(sorted(fingerprints[0]))}"
                f" in the baseline, {', '.join(sorted(fingerprints[1]))} here)")
    blas = [{k: (load_manifest(d).get("blas") or {}).get(k) for k in BLAS_FACTS}
            for d in (baseline, candidate)]
    if blas[0] != blas[1]:
        differ = [k for k in BLAS_FACTS if blas[0][k] != blas[1][k]]
        return "another BLAS: " + ", ".join(f"{k} {blas[0][k]} vs {blas[1][k]}" for k in differ)
    return None


def joined(baseline: Path, candidate: Path) -> pd.DataFrame:
    """The runs of both sets side by side (suffixes _baseline, _fresh); every run must join."""
    base, fresh = records_frame(baseline), records_frame(candidate)
    merged = base.merge(fresh, on=RUN_KEY, suffixes=("_baseline", "_fresh"))
    assert len(merged) == len(base) == len(fresh), "the runs of the two sets differ"
    return merged


def epoch_columns(frame: pd.DataFrame) -> list[str]:
    return sorted({c.removesuffix("_baseline") for c in frame if c.startswith("epochs_to_")
                   and c.endswith("_baseline")})


def assert_exact(baseline: Path, candidate: Path) -> None:
    merged = joined(baseline, candidate)
    assert (merged["status_baseline"] == merged["status_fresh"]).all()
    for column in epoch_columns(merged):
        pd.testing.assert_series_equal(merged[f"{column}_baseline"], merged[f"{column}_fresh"],
                                       check_names=False)
    exact = Thresholds(default=Limits(epochs_factor=1.0))   # no tolerance on epochs
    assert not [(cell.cell, check) for cell, check in compare(baseline, candidate, exact)
                .findings("regression") if check.quantity != "time"]


def assert_within_one_step(baseline: Path, candidate: Path) -> None:
    merged = joined(baseline, candidate)
    assert (merged["status_baseline"] == merged["status_fresh"]).all(), "a status changed"
    step = merged["eval_every_baseline"].to_numpy()
    for column in epoch_columns(merged):
        a = pd.to_numeric(merged[f"{column}_baseline"], errors="coerce").to_numpy(float)
        b = pd.to_numeric(merged[f"{column}_fresh"], errors="coerce").to_numpy(float)
        assert np.array_equal(np.isnan(a), np.isnan(b)), f"{column}: reached on one side only"
        gap = np.abs(np.nan_to_num(a) - np.nan_to_num(b))
        assert np.all(gap <= step), f"{column}: moved by {gap.max():.0f} epochs"
    comparison = compare(baseline, candidate, load_thresholds(THRESHOLDS))
    assert len(comparison.cells) == merged.groupby(["model", "optimizer", "k"]).ngroups
    assert not [(cell.cell, check) for cell, check in comparison.findings("regression")
                if check.quantity != "time"]


def test_exact_where_data_and_blas_are_the_baselines(fresh, record_property):
    reason = why_not_exact(BASELINE, fresh)
    if reason:
        record_property("check", "within one evaluation step")
        pytest.skip(f"not exact here: {reason}; test_within_one_evaluation_step_anywhere "
                    "checked the baseline instead")
    record_property("check", "exact")
    assert_exact(BASELINE, fresh)


def test_within_one_evaluation_step_anywhere(fresh, record_property):
    record_property("check", "within one evaluation step, identical statuses")
    assert_within_one_step(BASELINE, fresh)


def altered_copy(run: Path, out: Path) -> Path:
    """``run`` as if its data had been built on another machine: every fingerprint changed."""
    shutil.copytree(run, out)
    for path in (out / "records").glob("*.json"):
        record = json.loads(path.read_text())
        if record["schema_version"] == 1:       # the committed baseline: hash ends data_id
            record["data_id"] = record["data_id"][:-10] + "0000000000"
        else:
            record["data_fingerprint"] = "0000000000"
        path.write_text(json.dumps(record))
    return out


def test_a_baseline_from_another_machine_is_checked_within_one_step(fresh, tmp_path):
    other = altered_copy(BASELINE, tmp_path / "other")
    assert why_not_exact(other, fresh).startswith("data built on another machine")
    assert_within_one_step(other, fresh)


def test_the_portable_check_catches_a_run_that_moved_two_steps(fresh, tmp_path):
    moved = altered_copy(fresh, tmp_path / "moved")
    path = next(p for p in sorted((moved / "records").glob("*.json"))
                if json.loads(p.read_text())["epochs_to"]["0.3"] is not None)
    record = json.loads(path.read_text())
    record["epochs_to"]["0.3"] += 2 * record["eval_every"]
    record["epochs"] += 2 * record["eval_every"]     # the run went on as long (else damaged)
    path.write_text(json.dumps(record))
    with pytest.raises(AssertionError, match="epochs_to_0.3: moved by"):
        assert_within_one_step(BASELINE, moved)
