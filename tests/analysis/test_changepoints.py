"""Change points of a nightly history: the detection targets on seeded synthetic histories with
this machine's measured noise, verdicts against the thresholds, censoring, commit ranges, what
counts as new, and the exit code of `lae-bench history`."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bench.analysis.changepoints import (CHANGE, IMPROVEMENT, REGRESSION, RENDERERS, detect,
                                         find_change_points, new_regressions)
from bench.analysis.thresholds import Thresholds
from bench.cli import main
from bench.perf.history_check import (detection_targets, history_of, load_residuals,
                                      synthetic_nights, write_history)

HISTORIES, NIGHTS = 40, 60
NOISE = (Path(__file__).resolve().parents[2] / "results" / "measurements"
         / "history_noise-2026-12-03.json")


@pytest.fixture(scope="module")
def residuals() -> np.ndarray:
    """Night-to-night log residuals of per-epoch times measured on this project's machine
    (results/measurements/history_noise-*.json)."""
    return load_residuals(NOISE)


@pytest.fixture(scope="module")
def targets(residuals) -> dict:
    return detection_targets(HISTORIES, NIGHTS, residuals)


def test_a_planted_1_5x_step_is_found_at_its_night_in_95_percent(targets):
    assert targets["steps_found"] >= 0.95 * HISTORIES


def test_histories_without_a_step_give_at_most_2_false_change_points(targets):
    assert targets["false_change_points"] <= 2


def test_a_machine_change_in_the_middle_is_never_reported(targets):
    assert targets["machine_change_reports"] == 0


def test_the_measured_noise_is_heavy_enough_to_matter(residuals):
    """The targets are met on real noise: per-night spread of ~10 % with tails past 30 %."""
    assert 0.05 < 1.4826 * np.median(np.abs(residuals)) < 0.3
    assert np.abs(residuals).max() > 0.3


def test_detect_finds_nothing_in_a_flat_or_short_series():
    assert detect(np.full(50, 7.0)) == []
    assert detect(np.array([1.0, 2.0, 3.0, 4.0, 5.0])) == []


def _epoch_step_history(after: float, censored_after: bool = False, nights: int = 20):
    """One cell whose epochs go from 1000 to ``after`` (or to censored) at night 10."""
    history = synthetic_nights(nights, 1, 0.0)
    for i, night in enumerate(history):
        cell = night["cells"][0]
        cell.update(epochs_median=1000.0, max_epochs=20000)
        if i >= 10:
            cell.update(epochs_median=None if censored_after else after,
                        censored=censored_after)
    return history_of(history)


@pytest.mark.parametrize("after, verdict", [(1300.0, REGRESSION), (1100.0, CHANGE),
                                            (700.0, IMPROVEMENT)])
def test_epoch_steps_are_judged_by_the_cells_epochs_factor(after, verdict):
    (point,) = [p for p in find_change_points(_epoch_step_history(after))
                if p.metric == "epochs"]
    assert point.verdict == verdict and point.ratio == after / 1000.0
    assert point.limit == Thresholds().default.epochs_factor


def test_a_median_that_becomes_censored_counts_as_at_least_its_cap():
    (point,) = find_change_points(_epoch_step_history(0.0, censored_after=True))
    assert point.verdict == REGRESSION and point.censored_after
    assert point.after == 20000 and point.ratio == 20.0


def test_a_change_point_names_the_commit_range_and_nights_around_it():
    nights = synthetic_nights(30, 1, 0.02, seed=3, step_night=12, step=2.0)
    (point,) = find_change_points(history_of(nights))
    assert point.commit_before == nights[11]["commit"]
    assert point.commit_after == nights[12]["commit"]
    assert (point.nights_before, point.nights_after) == (12, 18)
    assert point.ratio == pytest.approx(2.0, rel=0.05) and point.p_value < 1e-4


def test_a_change_is_new_only_on_the_night_it_first_shows():
    def points(nights: int):
        return find_change_points(history_of(synthetic_nights(nights, 1, 0.02, seed=5,
                                                              step_night=20, step=2.0)))
    assert points(22) == []                   # two nights after the step: not yet a segment
    first = points(23)                        # three (MIN_NIGHTS): found, and new
    assert [p.new for p in first] == [True] and new_regressions(first) == first
    assert [p.new for p in points(24)] == [False]


def test_the_history_verb_exits_1_on_a_new_regression_and_0_after(tmp_path, capsys):
    history = write_history(synthetic_nights(23, 2, 0.02, seed=5, step_night=20, step=2.0),
                            tmp_path / "h")
    assert main(["history", str(history)]) == 1
    assert "NEW regression" in capsys.readouterr().out
    write_history(synthetic_nights(24, 2, 0.02, seed=5, step_night=20, step=2.0), history)
    assert main(["history", str(history)]) == 0


def test_renderings_list_points_newest_first_and_link_commits(tmp_path):
    nights = synthetic_nights(40, 1, 0.02, seed=2, step_night=10, step=2.0)
    for night in nights[25:]:
        night["cells"][0]["clean_epoch_time_s"] *= 4       # a second, later step
    history = history_of(nights)
    points = find_change_points(history)
    assert len(points) == 2 and points[0].date_after > points[1].date_after
    url = "https://github.com/example/lae-bench"
    markdown = RENDERERS["markdown"](history, points, url)
    assert f"{url}/compare/{nights[24]['commit']}...{nights[25]['commit']}" in markdown
    data = json.loads(RENDERERS["json"](history, points, url))
    assert [p["commit_after"] for p in data["change_points"]] == [nights[25]["commit"],
                                                                   nights[10]["commit"]]
    assert RENDERERS["text"](history, points).count("\n") == 2 + len(points)


def test_without_ruptures_the_history_says_what_to_install(monkeypatch):
    import sys

    from bench.errors import UsageError

    monkeypatch.setitem(sys.modules, "ruptures", None)      # import fails as if not installed
    with pytest.raises(UsageError, match="pip install ruptures"):
        detect(np.arange(1.0, 20.0))
