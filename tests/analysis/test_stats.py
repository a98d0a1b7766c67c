"""Midpoint medians with explicit censoring and one per-epoch time per cell: the same numbers
in show, report, compare and tune."""
from __future__ import annotations

import math

import pytest

from bench.analysis.compare import compare
from bench.analysis.report import write_report
from bench.analysis.stats import cell_summary
from bench.analysis.table import figure_table, render
from bench.sweep.store import load_manifest, records_frame, write_manifest

from ..helpers import cell_records, write_run

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


def test_show_says_that_a_straddling_pair_is_censored(tmp_path):
    run = sweep_run(tmp_path / "run", cell_records([40, None], max_epochs=2000, batch_size=2)
                    + cell_records([210, 260], k=2, batch_size=2))
    cells = figure_table(run).cells.set_index("k")
    assert cells.loc[10, "epochs_text"] == ">2000 (half reached: 40, >2000)"
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
