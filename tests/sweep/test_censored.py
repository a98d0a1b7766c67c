"""Censored medians: the midpoint rule, +inf for a run that did not reach, a median censored
exactly when half or more of the runs are, errors (NaN) left out."""
from __future__ import annotations

import math

import numpy as np
import pytest

from bench.sweep.censored import censored_summary, median_epochs, midpoint_quantile

INF = math.inf


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
