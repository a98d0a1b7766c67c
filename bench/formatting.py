"""Numbers as a reader wants them: durations with units, epoch counts with censoring.

Shared by the comparison renderings, the HTML report and the plot axes, so a time or an epoch
count reads the same everywhere.
"""
from __future__ import annotations

import math


def format_seconds(seconds: float | None) -> str:
    """A duration with a unit a reader can take in, from an epoch to a sweep: '35.2 us',
    '4.1 ms', '1.25 s', '3 min 20 s', '2 h 05 min'. The one duration formatter of lae-bench."""
    if seconds is None or not math.isfinite(seconds):
        return "-"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.3g} us"
    if seconds < 1:
        return f"{seconds * 1e3:.3g} ms"
    if seconds < 59.5:   # rounds to at most '59.5 s'; one minute and above in whole seconds
        return f"{seconds:.3g} s"
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


def format_epochs(epochs: float | None) -> str:
    """An epoch count with thousands separators; +inf (censored: not reached within the cap)
    reads 'censored', a missing value '-'."""
    if epochs is None or math.isnan(epochs):
        return "-"
    return "censored" if math.isinf(epochs) else f"{epochs:,.0f}"
