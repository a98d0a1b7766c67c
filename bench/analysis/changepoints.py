"""Change points of every series of a nightly history: when did a cell's epochs or time move?

Detection (``detect``). The per-night values of one series (``history.series_values``) are
taken as logarithms, so that a step is a ratio whatever the cell's scale, and handed to
ruptures' PELT search with the linear kernel (``KernelCPD``: least squares, i.e. shifts of the
mean of log values, compiled C). Its penalty is the BIC-like ``PENALTY x sigma^2 x log n``,
with sigma the series' own night-to-night noise, estimated robustly from the median absolute
difference of neighbouring nights (a step moves one difference, an outlier night two, neither
moves the median) and never below ``SIGMA_FLOOR``. Each segment holds at least ``MIN_NIGHTS``
nights, so a change is first reported ``MIN_NIGHTS`` nights after it happened.

Significance. Every change point found is tested: a two-sided Mann-Whitney U test of the
nights of the segment before against those of the segment after (scipy). The least significant
point with p >= alpha is dropped and the neighbours retested, until every point left is
significant.

Verdict. A change point's size is the median of the segment after over that before; its
verdict is a regression when the size exceeds the cell's factor in ``results/thresholds.yaml``
(``epochs_factor`` for epochs, ``time_factor`` for time), or when the median epochs became
censored; an improvement below 1 / factor; else a change (listed, never failing a gate).

New. A change point is new when its series gained a point in the newest night of its machine
and backend, and the same series without that night shows no change point in the same
direction within one night of it: what ``lae-bench history`` exits 1 for.

Series never cross a change of machine, BLAS, backend, data fingerprint or setup
(``history.SERIES_FIELDS``), so such a change is never reported.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, replace
from typing import Any, Iterable, Sequence

import numpy as np
from scipy.stats import mannwhitneyu

from ..errors import UsageError
from ..sweep.record import jsonable
from .history import History, series_values
from .rows import Rows
from .thresholds import Thresholds

METRICS = ("epochs", "time")
METRIC_NAMES = {"epochs": "epochs to threshold", "time": "time per epoch"}
MIN_NIGHTS = 3          # nights in a segment at least
PENALTY = 6.0           # x sigma^2 x log n: 3x BIC's 2, for heavy-tailed timing noise (docs/history.md)
SIGMA_FLOOR = 0.01      # 1 %: deterministic epoch counts have no noise of their own
REGRESSION, IMPROVEMENT, CHANGE = "regression", "improvement", "change"


def noise_sigma(log_values: np.ndarray) -> float:
    """Robust standard deviation of one night's log value: the median absolute difference of
    neighbouring nights / (0.6745 sqrt 2), at least SIGMA_FLOOR."""
    if log_values.size < 2:
        return SIGMA_FLOOR
    mad = float(np.median(np.abs(np.diff(log_values))))
    return max(mad / (0.6745 * math.sqrt(2)), SIGMA_FLOOR)


def detect(values: np.ndarray, alpha: float = 0.01, min_nights: int = MIN_NIGHTS,
           penalty: float = PENALTY) -> list[tuple[int, float]]:
    """Significant change points of one series (n,) of positive values: (index of the first
    night after the change, p-value), in order."""
    try:
        import ruptures    # only the history code paths need it (the GPU image lacks it)
    except ImportError:
        raise UsageError("change points need ruptures: pip install ruptures (a dependency "
                         "of lae-bench)") from None

    y = np.log(np.asarray(values, dtype=float))
    n = y.size
    if n < 2 * min_nights:
        return []
    sigma = noise_sigma(y)
    algo = ruptures.KernelCPD(kernel="linear", min_size=min_nights).fit(y.reshape(-1, 1))
    points = [int(t) for t in algo.predict(pen=penalty * sigma ** 2 * math.log(n))[:-1]]
    return significant(y, points, alpha)


def significant(y: np.ndarray, points: list[int], alpha: float) -> list[tuple[int, float]]:
    """``points`` less the non-significant ones, dropped one at a time, least significant
    first, each test between the neighbouring segments of the points still kept."""
    points = sorted(points)
    while points:
        bounds = [0, *points, y.size]
        p_values = [segment_p(y[bounds[i]:bounds[i + 1]], y[bounds[i + 1]:bounds[i + 2]])
                    for i in range(len(points))]
        worst = int(np.argmax(p_values))
        if p_values[worst] < alpha:
            return list(zip(points, p_values))
        points.pop(worst)
    return []


def segment_p(before: np.ndarray, after: np.ndarray) -> float:
    """Two-sided Mann-Whitney U p-value of the nights of two segments."""
    return float(mannwhitneyu(before, after, alternative="two-sided").pvalue)


@dataclass(frozen=True)
class ChangePoint:
    """A change in one series: between ``night_before`` and ``night_after`` (the commits
    ``commit_before``..``commit_after``: the range holding the cause), by ``ratio`` = median
    after / median before (``censored_*``: the median epochs did not reach the threshold, the
    value is the cap and the ratio a bound), with Mann-Whitney ``p_value``."""

    cell: str
    metric: str
    machine_id: str
    machine: str
    backend: str
    data_fingerprint: str
    setup: str
    date_before: str
    date_after: str
    night_before: str
    night_after: str
    commit_before: str | None
    commit_after: str | None
    before: float
    after: float
    ratio: float
    censored_before: bool
    censored_after: bool
    p_value: float
    nights_before: int
    nights_after: int
    verdict: str
    limit: float
    new: bool = False

    @property
    def model(self) -> str:
        return self.cell.split("/")[1]

    def to_json(self) -> dict[str, Any]:
        return jsonable(asdict(self))


def machine_text(rows: Rows, i: int) -> str:
    """'AMD EPYC, scipy-openblas 0.3.31 x2' (and the GPU when there is one) of row ``i``."""
    parts = [str(rows["cpu_model"][i]), f"{rows['blas'][i]} x{rows['blas_threads'][i]}"]
    if isinstance(rows["gpu"][i], str):
        parts.append(rows["gpu"][i])
    return ", ".join(parts)


def series_change_points(series: Rows, metric: str, thresholds: Thresholds
                         ) -> list[ChangePoint]:
    """The change points of one series (rows of one ``series`` key, in date order)."""
    values = series_values(series, metric)
    keep = np.isfinite(values) & (values > 0)
    rows, values = series.take(keep), values[keep]
    limits = thresholds.for_cell(series.first("model"), series.first("optimizer"),
                                 int(series.first("k")))
    factor = limits.epochs_factor if metric == "epochs" else limits.time_factor
    points = detect(values, limits.alpha)
    bounds = [0, *(t for t, _ in points), values.size]
    return [_change_point(rows, values, metric, bounds[i], t, bounds[i + 2], p, factor)
            for i, (t, p) in enumerate(points)]


def _change_point(rows: Rows, values: np.ndarray, metric: str, start: int, t: int, end: int,
                  p: float, factor: float) -> ChangePoint:
    before, after = float(np.median(values[start:t])), float(np.median(values[t:end]))
    censored = rows["censored"].astype(bool)
    censored = [metric == "epochs" and bool(censored[a:b].mean() >= 0.5)
                for a, b in ((start, t), (t, end))]
    ratio = after / before
    if censored[1] and not censored[0] or ratio > factor:
        verdict = REGRESSION
    elif ratio < 1 / factor or censored[0] and not censored[1]:
        verdict = IMPROVEMENT
    else:
        verdict = CHANGE
    last, first = t - 1, t
    return ChangePoint(
        rows["cell"][first], metric, rows["machine_id"][first], machine_text(rows, first),
        rows["backend"][first], rows["data_fingerprint"][first], rows["setup"][first],
        rows["date"][last].isoformat(), rows["date"][first].isoformat(), rows["night"][last],
        rows["night"][first], rows["commit"][last], rows["commit"][first], before, after,
        ratio, censored[0], censored[1], p, t - start, end - t, verdict, factor)


def find_change_points(history: History, thresholds: Thresholds | None = None,
                       metrics: Sequence[str] = METRICS) -> list[ChangePoint]:
    """Every change point of every series, newest first, each marked new or not."""
    thresholds = thresholds or Thresholds()
    frame = history.frame
    if frame.empty:
        return []
    newest = frame.groupby(["machine_id", "backend"])["date"].transform("max")
    rows = Rows.of(frame.assign(_in_newest=frame["date"] == newest))
    found = []
    for _, series in rows.group("series"):
        for metric in metrics:
            points = series_change_points(series, metric, thresholds)
            if points and series.last("_in_newest"):
                earlier = series_change_points(series.take(slice(0, -1)), metric, thresholds)
                points = [replace(p, new=not _seen(p, earlier, series)) for p in points]
            found.extend(points)
    return sorted(found, key=lambda p: (p.date_after, p.cell, p.metric), reverse=True)


def _seen(point: ChangePoint, earlier: Iterable[ChangePoint], series: Rows) -> bool:
    """Whether ``earlier`` holds ``point``: same direction, within one night."""
    position = {night: i for i, night in enumerate(series["night"])}
    return any((e.ratio > 1) == (point.ratio > 1)
               and abs(position[e.night_after] - position[point.night_after]) <= 1
               for e in earlier)


def new_regressions(points: Iterable[ChangePoint]) -> list[ChangePoint]:
    return [p for p in points if p.new and p.verdict == REGRESSION]


# --- renderings ---------------------------------------------------------------------------------

def commit_range(point: ChangePoint, repo_url: str | None = None, markdown: bool = False
                 ) -> str:
    """'abc12345..def67890' (the commits after the first up to the second), a GitHub compare
    link in markdown when ``repo_url`` is given."""
    before, after = (str(c)[:8] if c else "?" for c in (point.commit_before,
                                                        point.commit_after))
    text = f"{before}..{after}"
    if markdown and repo_url and point.commit_before and point.commit_after:
        return f"[{text}]({compare_url(repo_url, point)})"
    return text


def compare_url(repo_url: str, point: ChangePoint) -> str:
    return f"{repo_url.rstrip('/')}/compare/{point.commit_before}...{point.commit_after}"


def size_text(point: ChangePoint) -> str:
    """'x1.52', with a bound sign where a side is censored (at least its cap)."""
    sign = ">=" if point.censored_after and not point.censored_before else \
        "<=" if point.censored_before and not point.censored_after else ""
    return f"x{sign}{point.ratio:.2f}" if not (point.censored_before and point.censored_after) \
        else "censored in both"


def _label(point: ChangePoint) -> str:
    return "NEW " + point.verdict if point.new else point.verdict


HEADER = ("when", "verdict", "cell", "metric", "size", "p", "commits", "machine", "backend")


def rows(points: Sequence[ChangePoint], repo_url: str | None = None, markdown: bool = False
         ) -> list[list[str]]:
    return [[p.date_after[:10], _label(p), p.cell, METRIC_NAMES[p.metric], size_text(p),
             f"{p.p_value:.2g}", commit_range(p, repo_url, markdown), p.machine, p.backend]
            for p in points]


def summary_line(history: History, points: Sequence[ChangePoint]) -> str:
    frame = history.frame
    machines = frame["machine_id"].nunique() if not frame.empty else 0
    cells = frame["cell"].nunique() if not frame.empty else 0
    series = frame["series"].nunique() if not frame.empty else 0
    counts = ((history.nights, "night"), (machines, "machine"), (cells, "cell"),
              (series, "series"))
    found = ((len(points), "change point"), (len(new_regressions(points)), "new regression"))
    return (", ".join(_plural(n, word) for n, word in counts) + ": "
            + ", ".join(_plural(n, word) for n, word in found))


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 or word.endswith("s") else f"{n} {word}s"


def render_text(history: History, points: Sequence[ChangePoint], repo_url: str | None = None
                ) -> str:
    table = [list(HEADER), *rows(points, repo_url)]
    widths = [max(len(r[i]) for r in table) for i in range(len(HEADER))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in table]
    return summary_line(history, points) + "\n" + ("\n".join(lines) + "\n" if points else "")


def render_markdown(history: History, points: Sequence[ChangePoint],
                    repo_url: str | None = None) -> str:
    out = [f"**lae-bench history**: {summary_line(history, points)}", ""]
    if points:
        out += ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
        out += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |"
                for r in rows(points, repo_url, markdown=True)]
    return "\n".join(out) + "\n"


def render_json(history: History, points: Sequence[ChangePoint], repo_url: str | None = None
                ) -> str:
    return json.dumps({"summary": summary_line(history, points),
                       "nights": history.nights,
                       "new_regressions": len(new_regressions(points)),
                       "skipped": [{"entry": e, "why": w} for e, w in history.skipped],
                       "change_points": [p.to_json() for p in points]}, indent=1) + "\n"


RENDERERS = {"text": render_text, "markdown": render_markdown, "json": render_json}
