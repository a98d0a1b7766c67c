"""compare: each verdict and exit code from constructed baseline / candidate pairs."""
from __future__ import annotations

import json

import numpy as np
import pytest

from bench.cli import main
from bench.analysis.compare import IMPROVEMENT, NOT_COMPARED, REGRESSION, SAME, compare
from bench.analysis.compare_render import RENDERERS
from bench.errors import EXIT_NOTHING_COMPARABLE, EXIT_OK, EXIT_RUN_FAILED, EXIT_USAGE
from bench.analysis.thresholds import Override, Thresholds

from ..helpers import cell_records, write_run

RNG = np.random.default_rng(7)


def timings(median: float, repeats: int = 10) -> list[float]:
    """Repeated per-epoch timings with 2 % noise around ``median``."""
    return list(median * RNG.lognormal(0, 0.02, size=repeats))


@pytest.fixture
def pair(tmp_path):
    """pair(baseline_records, candidate_records, candidate_cpu=...) -> (baseline, candidate)."""
    def make(base, cand, **candidate_run):
        return (write_run(tmp_path / "baseline", base),
                write_run(tmp_path / "candidate", cand, **candidate_run))
    return make


def only_cell(comparison):
    (cell,) = comparison.cells
    return cell


def test_identical_results_pass(pair):
    records = cell_records([300, 310, 320], epoch_times=timings(1e-3))
    comparison = compare(*pair(records, records))
    assert comparison.exit_code == EXIT_OK
    assert {c.verdict for c in only_cell(comparison).checks} == {SAME}


def test_a_significantly_slower_epoch_is_a_performance_regression(pair):
    comparison = compare(*pair(cell_records([300] * 3, epoch_times=timings(1e-3)),
                               cell_records([300] * 3, epoch_times=timings(2e-3))))
    check = only_cell(comparison).check("time")
    assert check.verdict == REGRESSION and check.ratio == pytest.approx(2, rel=0.05)
    assert check.p_value < 0.01
    assert comparison.exit_code == EXIT_RUN_FAILED


def test_a_slower_epoch_without_enough_repeats_is_not_flagged(pair):
    # Three timings per side: the smallest one-sided Mann-Whitney p is 1/20 > 0.01.
    comparison = compare(*pair(cell_records([300] * 3, epoch_times=timings(1e-3, 3)),
                               cell_records([300] * 3, epoch_times=timings(2e-3, 3))))
    check = only_cell(comparison).check("time")
    assert check.verdict == SAME and "not significant" in check.note
    assert comparison.exit_code == EXIT_OK


def test_slower_within_the_allowed_factor_passes(pair):
    comparison = compare(*pair(cell_records([300] * 3, epoch_times=timings(1e-3)),
                               cell_records([300] * 3, epoch_times=timings(1.3e-3))))
    assert only_cell(comparison).check("time").verdict == SAME


def test_more_epochs_to_threshold_is_an_algorithmic_regression(pair):
    dirs = pair(cell_records([300, 310, 320]), cell_records([400, 410, 420]))
    check = only_cell(compare(*dirs)).check("epochs")
    assert (check.verdict, check.baseline, check.candidate) == (REGRESSION, 310, 410)
    assert compare(*dirs).exit_code == EXIT_RUN_FAILED
    relaxed = Thresholds(overrides=(Override("rotation", None, None, {"epochs_factor": 1.5}),))
    assert compare(*dirs, relaxed).exit_code == EXIT_OK


def test_a_median_that_becomes_censored_is_a_regression(pair):
    check = only_cell(compare(*pair(cell_records([300] * 3),
                                    cell_records([300, None, None])))).check("epochs")
    assert check.verdict == REGRESSION and check.ratio == np.inf


def test_a_worse_status_is_a_regression_even_when_the_median_holds(pair):
    comparison = compare(*pair(cell_records([300, 310, 320]),
                               cell_records([300, 310, None])))
    cell = only_cell(comparison)
    assert cell.check("epochs").verdict == SAME
    assert cell.check("status").verdict == REGRESSION
    assert cell.check("status").note == "seed 2: reached -> capped"
    assert comparison.exit_code == EXIT_RUN_FAILED


def test_improvements_are_listed_and_pass(pair):
    comparison = compare(*pair(cell_records([300, 310, None], epoch_times=timings(2e-3)),
                               cell_records([100, 110, 120], epoch_times=timings(1e-3))))
    assert {c.quantity for _, c in comparison.findings(IMPROVEMENT)} == {"epochs", "status",
                                                                       "time"}
    assert comparison.exit_code == EXIT_OK


def test_timings_across_machines_are_refused_unless_allowed(pair):
    dirs = pair(cell_records([300] * 3, epoch_times=timings(1e-3)),
                cell_records([300] * 3, epoch_times=timings(3e-3), device="Other CPU"),
                cpu="Other CPU")
    check = only_cell(compare(*dirs)).check("time")
    assert check.verdict == NOT_COMPARED and "--allow-cross-machine" in check.note
    assert compare(*dirs).exit_code == EXIT_OK     # epochs and statuses still compared
    assert compare(*dirs, allow_cross_machine=True).exit_code == EXIT_RUN_FAILED


def test_timings_of_different_batch_sizes_are_not_compared(pair):
    check = only_cell(compare(*pair(cell_records([300] * 3, epoch_times=timings(1e-3)),
                                    cell_records([300] * 3, epoch_times=timings(3e-3),
                                                 batch_size=2)))).check("time")
    assert check.verdict == NOT_COMPARED and "batch sizes differ" in check.note


def test_disjoint_results_are_nothing_comparable(pair):
    comparison = compare(*pair(cell_records([300] * 3, k=2), cell_records([300] * 3, k=5)))
    assert comparison.exit_code == EXIT_NOTHING_COMPARABLE
    assert [c["k"] for c in comparison.only_in_baseline] == [2]
    assert [c["k"] for c in comparison.only_in_candidate] == [5]


def test_every_rendering_tells_the_same_story(pair):
    comparison = compare(*pair(cell_records([300] * 3), cell_records([500] * 3)))
    text, markdown = RENDERERS["text"](comparison), RENDERERS["markdown"](comparison)
    assert "REGRESSIONS (1)" in text and "verdict: regression (exit 1)" in text
    assert "#### Regressions" in markdown and "| 300 | 500 | x1.67 (limit x1.25) |" in markdown
    data = json.loads(RENDERERS["json"](comparison))
    assert data["exit_code"] == 1 and data["summary"]["regressions"] == 1
    assert data["cells"][0]["checks"][0]["candidate"] == 500


@pytest.mark.parametrize("candidate_epochs, expected", [
    ([300] * 3, EXIT_OK), ([500] * 3, EXIT_RUN_FAILED)])
def test_compare_command_exit_codes_and_exports(pair, tmp_path, capsys, candidate_epochs,
                                                expected):
    base, cand = pair(cell_records([300] * 3), cell_records(candidate_epochs))
    gab = tmp_path / "gab.json"
    code = main(["compare", str(base), str(cand), "--format", "json", "--export-gab", str(gab),
                 "--thresholds", "results/thresholds.yaml"])
    assert code == expected
    assert json.loads(capsys.readouterr().out)["exit_code"] == expected
    entries = json.loads(gab.read_text())
    assert {e["unit"] for e in entries} == {"epochs", "s"}
    assert all(set(e) >= {"name", "unit", "value"} for e in entries)
    assert [e["value"] for e in entries if e["unit"] == "epochs"] == [candidate_epochs[1]]


def test_compare_command_nothing_comparable(pair, capsys):
    base, cand = pair(cell_records([300] * 3, k=2), cell_records([300] * 3, k=5))
    assert main(["compare", str(base), str(cand)]) == EXIT_NOTHING_COMPARABLE
    assert "verdict: nothing comparable (exit 3)" in capsys.readouterr().out


def test_compare_command_bad_usage_is_one_line(pair, tmp_path, capsys):
    base, cand = pair(cell_records([300]), cell_records([300]))
    bad = tmp_path / "bad.yaml"
    bad.write_text("default: {time_factor: 0.5}\n")
    assert main(["compare", str(base), str(cand), "--thresholds", str(bad)]) == EXIT_USAGE
    assert main(["compare", str(base), str(tmp_path / "missing")]) == EXIT_USAGE
    errors = capsys.readouterr().err.strip().splitlines()
    assert errors[0].endswith("default.time_factor: 0.5 is not allowed; "
                              "expected a number >= 1")
    assert "has no manifest.json" in errors[1] and len(errors) == 2
