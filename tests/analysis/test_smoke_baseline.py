"""A fresh ``smoke`` run against the committed baseline (results/baselines/smoke).

With the same backend (NumPy) and dtype (float64) every epoch count is deterministic: all
randomness is drawn from seeded host generators. So epochs to every threshold and every status
must match exactly, run by run. Timings are not checked here: the baseline comes from another
machine, and ``compare`` refuses cross-machine timings anyway.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from bench.cli import main
from bench.analysis.compare import compare
from bench.sweep.store import records_frame
from bench.analysis.thresholds import Limits, Thresholds

BASELINE = Path(__file__).resolve().parents[2] / "results" / "baselines" / "smoke"
RUN_KEY = ["data_id", "model", "optimizer", "k", "lr", "seed", "backend", "dtype"]

pytestmark = pytest.mark.skipif(
    not (BASELINE / "manifest.json").is_file(),
    reason="results/baselines/smoke is not committed yet; create it with "
           "`lae-bench run smoke --backend numpy --out results/baselines/smoke`")


def test_smoke_reproduces_the_committed_baseline_exactly(tmp_path):
    run = tmp_path / "smoke"
    assert main(["run", "smoke", "--backend", "numpy", "--out", str(run), "--quiet"]) == 0
    base, fresh = records_frame(BASELINE), records_frame(run)
    merged = base.merge(fresh, on=RUN_KEY, suffixes=("_baseline", "_fresh"))
    assert len(merged) == len(base) == len(fresh), "the runs of the two sets differ"
    assert (merged["status_baseline"] == merged["status_fresh"]).all()
    for column in (c for c in base if c.startswith("epochs_to_")):
        pd.testing.assert_series_equal(merged[f"{column}_baseline"], merged[f"{column}_fresh"],
                                       check_names=False)
    # The same answer through the regression gate, with no tolerance on epochs.
    exact = Thresholds(default=Limits(epochs_factor=1.0))
    comparison = compare(BASELINE, run, exact)
    assert not [(cell.cell, check) for cell, check in comparison.findings("regression")
                if check.quantity != "time"]
