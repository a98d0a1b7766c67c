"""The one statistics module: midpoint medians with explicit censoring, one per-epoch time,
the same numbers in show, report, compare and tune (issue 15, finding 1)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from bench.analysis.compare import compare
from bench.analysis.report import write_report
from bench.analysis.stats import cell_summary
from bench.sweep.censored import censored_summary, median_epochs, midpoint_quantile
from bench.analysis.table import figure_table, render
from bench.sweep.store import load_manifest, records_frame, write_manifest

from .helpers import cell_records, write_run

INF = math.inf


def sweep_run(run_dir, records):
    """write_run with the manifest config keys that ``show`` reads."""
    run = write_run(run_dir, records)
    manifest = load_manifest(run)
    manifest["config"] = {"name": "test", "headline": 0.3, "thresholds": [0.3],
                          "stop_on_failure": False, "models": ["rotation"],
                          "optimizers": ["sgd_nesterov"], "k": [2, 10], "seeds": [0, 1, 2],
                          "dtype": "float64", "data": {"kind": "synthetic"}}
    write_manifest(run, {k: v for k, v in manifest.items() if k != "schema_version"})
    return run


@pytest.mark.parametrize("epochs, median, censored, straddles", [
    ([210, 260], 235.0, False, False),                # the midpoint, not the lower value
    ([40, None], INF, True, True),                     # half reached: censored, and says so
    ([40, 50, None, None], INF, True, True),
    ([40, 50, 60, None], 55.0, False, False),
    ([10, None, None], INF, True, False),
    ([10, 20, None], 20.0, False, False),
    ([None], INF, True, False),
])
def test_median_is_the_midpoint_and_censored_when_half_or_more_did_not_reach(
        epochs, median, censored, straddles):
    s = censored_summary(epochs)
    assert (s.median, s.censored, s.straddles) == (median, censored, straddles)
    assert median_epochs(epochs) == median


def test_quantiles_never_produce_nan_from_censored_runs():
    assert midpoint_quantile(np.array([1.0, INF, INF]), 0.25) == INF
    assert midpoint_quantile(np.array([1.0, 3.0, INF]), 0.25) == 2.0
    assert math.isnan(midpoint_quantile(np.array([]), 0.5))
    np.testing.assert_equal(
        [midpoint_quantile(np.arange(10.0), q) for q in (0.25, 0.5, 0.75)],
        np.quantile(np.arange(10.0), [0.25, 0.5, 0.75], method="midpoint"))


def test_errors_are_left_out_of_the_median():
    assert censored_summary([100, float("nan"), 300]).median == 200.0


def test_show_says_that_a_straddling_pair_is_censored(tmp_path):
    run = sweep_run(tmp_path / "run", cell_records([40, None], max_epochs=2000, batch_size=2)
                    + cell_records([210, 260], k=2, batch_size=2))
    cells = figure_table(run).cells.set_index("k")
    assert cells.loc[10, "epochs_text"] == ">2000 (half reached)"
    assert cells.loc[2, "epochs_text"].startswith("235 ")


def _uneven_timing_run(tmp_path):
    """One cell whose seeds hold different numbers of blocks (seeds that stop early were timed
    in fewer blocks, with a smaller batch); the batch's timings are the longest list."""
    records = [cell_records([300], epoch_times=[1e-3] * 10)[0],
               *cell_records([None, 200], epoch_times=[4e-4] * 3)[1:]]
    records[1]["epoch_times_s"] = [2e-3] * 12
    return sweep_run(tmp_path / "run", [dict(r, seed=s, key=f"{r['key'][:-1]}{s}")
                                        for s, r in enumerate(records)])


def test_every_verb_shows_the_same_epoch_time(tmp_path):
    run = _uneven_timing_run(tmp_path)
    shown = figure_table(run).cells["epoch_time_s"].iloc[0]
    summary = cell_summary(records_frame(run))["epoch_time_s"].iloc[0]
    compared = compare(run, run).cells[0].check("time").baseline
    assert shown == summary == compared == pytest.approx(2e-3)
    assert "  2\n" in render(figure_table(run)) + "\n"          # ms in the table
    assert "2 ms" in write_report(run, tmp_path / "r.html").read_text()
