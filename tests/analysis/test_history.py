"""The nightly history store: a night's summary equals the numbers every other verb shows, the
folder round-trips, series split on machine changes, and bad entries are skipped in one line."""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from bench.analysis.history import (NIGHT_KIND, add_night, load_history, machine_fingerprint,
                                    summarise)
from bench.analysis.stats import cell_summary
from bench.cli import main
from bench.sweep.store import load_manifest, records_frame

from ..helpers import cell_records, make_record, write_run

BASELINES = Path(__file__).resolve().parents[2] / "results" / "baselines"


@pytest.fixture
def run(tmp_path):
    """A run of two cells: one reached (3 seeds), one censored (2 of 3 capped)."""
    records = (cell_records([100, 120, 140], k=2, reference_times_s=[2e-3] * 8,
                            block_cpu_shares=[1.0] * 8)
               + cell_records([300, None, None], k=5, epoch_times=[4e-3] * 8))
    return write_run(tmp_path / "night", records)


def test_a_night_holds_the_same_numbers_as_cell_summary(run):
    night = summarise(run)
    summary = cell_summary(records_frame(run), 0.3).set_index("k")
    cells = {c["k"]: c for c in night["cells"]}
    assert cells[2]["epochs_median"] == summary.loc[2, "epochs_median"] == 120
    assert cells[2]["epoch_time_s"] == summary.loc[2, "epoch_time_s"] == 1e-3
    assert cells[2]["statuses"] == {"reached": 3}
    assert cells[2]["normalised_time"] == pytest.approx(1e-3 / 2e-3, rel=1e-12)
    assert cells[5]["censored"] and cells[5]["epochs_median"] is None
    assert math.isinf(summary.loc[5, "epochs_median"])
    assert cells[5]["statuses"] == {"reached": 1, "capped": 2}
    assert cells[5]["max_epochs"] == 50_000 and cells[5]["normalised_time"] is None


def test_a_night_records_commit_date_and_machine_fingerprint(run):
    night = summarise(run)
    manifest = load_manifest(run)
    assert night["kind"] == NIGHT_KIND and night["commit"] == manifest["git"]["commit"]
    assert night["date"] == manifest["created_utc"] and night["backend"] == "numpy"
    assert night["machine"] == machine_fingerprint(manifest)
    assert len(json.dumps(night)) < 2000        # compact: about 400 bytes a cell


def test_the_history_folder_round_trips_and_adding_twice_rewrites_one_file(run, tmp_path):
    history = tmp_path / "history"
    first = add_night(run, history)
    assert add_night(run, history) == first and len(list(history.iterdir())) == 1
    loaded = load_history(history)
    assert loaded.skipped == [] and loaded.nights == 1
    frame = loaded.frame
    assert sorted(frame["k"]) == [2, 5]
    assert math.isinf(frame.loc[frame["k"] == 5, "epochs_median"].iloc[0])
    assert set(frame["capped"]) == {0, 2}


def test_committed_baselines_of_both_schemas_summarise():
    for name in ("smoke", "quick"):          # schema 1 and schema 2 run directories
        night = summarise(BASELINES / name)
        assert night["cells"] and all(c["data_fingerprint"] for c in night["cells"])


def test_a_change_of_machine_starts_a_new_series(tmp_path):
    history = tmp_path / "history"
    for cpu in ("CPU A", "CPU B"):
        add_night(write_run(tmp_path / cpu, cell_records([100, 100, 100]), cpu=cpu), history)
    frame = load_history(history).frame
    assert frame["cell"].nunique() == 1 and frame["series"].nunique() == 2


def _bad_history(tmp_path, run) -> Path:
    history = tmp_path / "history"
    add_night(run, history)
    (history / "corrupt.json").write_text("{\"kind\": ")
    (history / "benchmark.json").write_text(json.dumps([{"name": "x", "value": 1}]))
    old = json.loads(next(history.glob("2*.json")).read_text())
    (history / "old.json").write_text(json.dumps({**old, "schema_version": 1}))
    (history / "binary.json").write_bytes(b"\xff\xfe\x00")
    (history / "README.md").write_text("not an entry")       # only .json files are entries
    (history / ".git").mkdir()
    return history


def test_corrupt_foreign_and_schema_1_entries_are_skipped_and_named(tmp_path, run):
    loaded = load_history(_bad_history(tmp_path, run))
    assert loaded.nights == 1
    why = dict(loaded.skipped)
    assert set(why) == {"corrupt.json", "benchmark.json", "old.json", "binary.json"}
    assert "not valid JSON" in why["corrupt.json"]
    assert "not a lae-bench night" in why["benchmark.json"]
    assert "schema_version 1" in why["old.json"] and "history add" in why["old.json"]
    line = loaded.skipped_line()
    assert "\n" not in line and all(name in line for name in why)


def test_the_cli_loads_what_it_can_and_says_what_it_skipped_in_one_line(tmp_path, run,
                                                                         capsys):
    assert main(["history", str(_bad_history(tmp_path, run))]) == 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "skipped 4 of 5 entries" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("words, message", [
    (["missing"], "is not a directory"),
    (["empty"], "holds no readable night"),
    (["add", "missing", "h"], "has no manifest.json"),
    (["a", "b"], "expected HISTORY or add RUN_DIR HISTORY"),
])
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, monkeypatch, words, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty").mkdir()
    assert main(["history", *words]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_history_add_via_the_cli_prints_the_file(tmp_path, run, capsys):
    assert main(["history", "add", str(run), str(tmp_path / "h")]) == 0
    written = capsys.readouterr().out.split()[-1]
    assert Path(written).is_file() and json.loads(Path(written).read_text())["cells"]


def test_a_run_directory_inside_the_history_is_read_as_a_night(tmp_path, run):
    history = tmp_path / "history"
    history.mkdir()
    shutil.copytree(run, history / "night-1")
    loaded = load_history(history)
    assert loaded.nights == 1 and loaded.skipped == []
    assert np.isfinite(loaded.frame["epoch_time_s"]).all()


def test_records_with_no_timing_leave_times_missing(tmp_path):
    run_dir = write_run(tmp_path / "r", [make_record(seed=s, epoch_times=[], status="error",
                                                     epochs=None) for s in range(3)])
    cell = summarise(run_dir)["cells"][0]
    assert cell["epoch_time_s"] is None and cell["statuses"] == {"error": 3}
