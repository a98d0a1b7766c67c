"""Thresholds file: the committed one loads, overrides apply in order, bad input is one line."""
from __future__ import annotations

from pathlib import Path

import pytest

from bench.errors import UsageError
from bench.analysis.thresholds import Limits, load_thresholds, parse_thresholds

COMMITTED = Path(__file__).resolve().parents[2] / "results" / "thresholds.yaml"


def test_the_committed_thresholds_load_with_their_overrides():
    thresholds = load_thresholds(COMMITTED)
    assert thresholds.d_align_threshold == 0.3
    assert thresholds.default == Limits(epochs_factor=1.25, time_factor=1.5, alpha=0.01)
    assert thresholds.for_cell("rotation", "sgd_nesterov", 100).time_factor == 1.5
    assert thresholds.for_cell("rotation", "adam", 4).time_factor == 2.0
    assert thresholds.for_cell("nd", "adam", 100).time_factor == 2.0


def test_no_file_gives_the_built_in_defaults():
    assert load_thresholds(None).for_cell("vae", "adam", 5) == Limits()


def test_a_later_matching_override_wins_and_others_keep_their_values():
    thresholds = parse_thresholds({"overrides": [
        {"model": "nd", "epochs_factor": 2.0, "alpha": 0.05},
        {"model": "nd", "k": [2, 5], "epochs_factor": 3.0},
        {"k_max": 2, "time_factor": 4.0}]})
    assert thresholds.for_cell("nd", "adam", 5) == Limits(3.0, 1.5, 0.05)
    assert thresholds.for_cell("nd", "adam", 10) == Limits(2.0, 1.5, 0.05)
    assert thresholds.for_cell("nd", "adam", 2) == Limits(3.0, 4.0, 0.05)
    assert thresholds.for_cell("rotation", "adam", 5) == Limits()


@pytest.mark.parametrize("raw, message", [
    ({"defaults": {}}, "t.yaml: defaults: unknown key; expected one of version, "
                       "d_align_threshold, default, overrides"),
    ({"default": {"time_factor": 0.9}}, "t.yaml: default.time_factor: 0.9 is not allowed; "
                                        "expected a number >= 1"),
    ({"default": {"alpha": 1.5}}, "t.yaml: default.alpha: 1.5 is not allowed; expected a "
                                  "number in (0, 1)"),
    ({"default": {"alpha": "low"}}, "t.yaml: default.alpha: 'low' is not allowed; "
                                    "expected a number in (0, 1)"),
    ({"d_align_threshold": 2}, "t.yaml: d_align_threshold: 2 is not allowed; expected a "
                                 "number in (0, 1)"),
    ({"version": 2}, "t.yaml: version: 2 is not allowed; expected 1"),
    ({"overrides": {"model": "nd"}}, "t.yaml: overrides: {'model': 'nd'} is not allowed; "
                                        "expected a list"),
    ({"overrides": [{"model": "pca", "alpha": 0.1}]}, "t.yaml: overrides[0].model: 'pca' is "
                                                      "not allowed; expected one of uniform_sum"),
    ({"overrides": [{"optimizer": "sgd", "alpha": 0.1}]}, "overrides[0].optimizer: 'sgd' is "
                                                          "not allowed; expected one of gd, "
                                                          "sgd_nesterov, adam"),
    ({"overrides": [{"k": "large", "alpha": 0.1}]}, "overrides[0].k: 'large' is not "
                                                    "allowed; expected an integer from 1"),
    ({"overrides": [{"k_max": 0, "alpha": 0.1}]}, "overrides[0].k_max: 0 is not allowed; "
                                                  "expected an integer from 1"),
    ({"overrides": [{"model": "nd"}]}, "overrides[0]: sets no limit (allowed: epochs_factor"),
    ({"overrides": [{"model": "nd", "time": 2}]}, "overrides[0].time: unknown key"),
])
def test_invalid_thresholds_name_the_key_the_value_and_what_is_allowed(raw, message):
    with pytest.raises(UsageError) as err:
        parse_thresholds(raw, source="t.yaml")
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_missing_or_broken_file_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        load_thresholds(tmp_path / "none.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("default: [unclosed\n")
    with pytest.raises(UsageError, match="broken.yaml: not valid YAML"):
        load_thresholds(broken)
