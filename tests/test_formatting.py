"""The one duration formatter reads right from a microsecond epoch to a day-long sweep."""
from __future__ import annotations

import math

import pytest

from bench.formatting import format_epochs, format_seconds


@pytest.mark.parametrize("seconds, text", [
    (3.52e-5, "35.2 us"), (4.1e-3, "4.1 ms"), (0.9994, "999 ms"), (1.25, "1.25 s"),
    (42.0, "42 s"), (59.4, "59.4 s"), (59.6, "1 min 00 s"), (200.2, "3 min 20 s"),
    (3599.6, "1 h 00 min"), (7500.0, "2 h 05 min"), (None, "-"), (math.inf, "-"),
])
def test_durations(seconds, text):
    assert format_seconds(seconds) == text


def test_epoch_counts_say_censored():
    assert (format_epochs(12345.0), format_epochs(math.inf), format_epochs(None)) \
        == ("12,345", "censored", "-")
