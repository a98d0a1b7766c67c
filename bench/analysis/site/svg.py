"""Charts as inline SVG text, drawn here in Python: sparklines and line charts with axes.

The site must open offline and load fast with hundreds of charts, so nothing is rendered by a
plotting library or a script: each chart is a few polylines, circles and text elements.
Coordinates are rounded to 0.1 px to keep pages small.

Lines carry per-point flags: a hollow circle marks a censored point (the epoch cap stands in
for a run that did not reach the threshold: at least that many epochs).
"""
from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

DAY = 86400.0
VERDICT_COLOURS = {"regression": "#c62828", "improvement": "#2e7d32", "change": "#757575"}


@dataclass(frozen=True)
class Line:
    """One curve: x (days since the epoch, or k), y > 0 where log_y, NaN = gap."""

    label: str
    x: np.ndarray
    y: np.ndarray
    colour: str = "#1f77b4"
    dashed: bool = False
    hollow: np.ndarray | None = None     # (n,) bool: drawn as a hollow circle (censored)
    tips: Sequence[str] | None = None    # (n,) tooltip per point


@dataclass(frozen=True)
class Mark:
    """A vertical line at x (a change point), coloured by its verdict."""

    x: float
    colour: str
    tip: str = ""


@dataclass
class Axis:
    """Maps data values to pixels along one side of the plot area."""

    low: float
    high: float
    start: float
    end: float
    log: bool = False

    def __post_init__(self) -> None:
        if self.log:
            self.low, self.high = math.log10(self.low), math.log10(self.high)
        if self.high <= self.low:
            self.low, self.high = self.low - 0.5, self.high + 0.5

    def __call__(self, values: np.ndarray) -> np.ndarray:
        v = np.log10(values) if self.log else np.asarray(values, dtype=float)
        return self.start + (v - self.low) / (self.high - self.low) * (self.end - self.start)


def _f(v: float) -> str:
    return f"{v:.1f}".rstrip("0").rstrip(".")


def _polylines(x: np.ndarray, y: np.ndarray) -> list[str]:
    """'x,y x,y ...' per run of finite points (NaN breaks the line)."""
    ok = np.isfinite(x) & np.isfinite(y)
    runs, current = [], []
    for xi, yi, good in zip(x, y, ok):
        if good:
            current.append(f"{_f(xi)},{_f(yi)}")
        elif current:
            runs.append(" ".join(current))
            current = []
    if current:
        runs.append(" ".join(current))
    return runs


def _finite(values: Sequence[np.ndarray], positive: bool) -> np.ndarray:
    joined = np.concatenate([np.asarray(v, dtype=float) for v in values]) if values else \
        np.array([])
    ok = np.isfinite(joined) & ((joined > 0) if positive else True)
    return joined[ok]


def sparkline(x: np.ndarray, y: np.ndarray, x_range: tuple[float, float], mark: Mark | None,
              width: int = 160, height: int = 26, log_y: bool = True,
              hollow: np.ndarray | None = None) -> str:
    """A small chart without axes: the curve, its last point, the latest change marked."""
    ys = _finite([y], log_y)
    if ys.size == 0:
        return f'<svg class="spark" width="{width}" height="{height}"></svg>'
    ax = Axis(*x_range, 1, width - 3)
    ay = Axis(float(ys.min()), float(ys.max()), height - 3, 3, log=log_y)
    px, py = ax(x), ay(np.where(np.isfinite(y) & (y > 0), y, np.nan) if log_y else y)
    parts = [f'<svg class="spark" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}">']
    if mark is not None:
        mx = _f(float(ax(np.array([mark.x]))[0]))
        parts.append(f'<line x1="{mx}" x2="{mx}" y1="0" y2="{height}" stroke="{mark.colour}" '
                     f'stroke-width="1.5"><title>{html.escape(mark.tip)}</title></line>')
    for points in _polylines(px, py):
        parts.append(f'<polyline points="{points}" fill="none" stroke="#1f77b4" '
                     f'stroke-width="1"/>')
    last = np.flatnonzero(np.isfinite(py))
    if last.size:
        i = last[-1]
        fill = "white" if hollow is not None and hollow[i] else "#1f77b4"
        parts.append(f'<circle cx="{_f(px[i])}" cy="{_f(py[i])}" r="2" fill="{fill}" '
                     f'stroke="#1f77b4"/>')
    return "".join(parts) + "</svg>"


@dataclass
class Chart:
    """A line chart with axes, ticks, a legend and vertical marks."""

    title: str
    y_label: str
    lines: list[Line]
    marks: list[Mark] = field(default_factory=list)
    log_y: bool = True
    log_x: bool = False
    dates: bool = True          # x holds days since the epoch: date ticks
    width: int = 760
    height: int = 260
    x_label: str = ""
    y_format: Callable[[float], str] | None = None    # tick labels (default: 3 digits)

    def svg(self) -> str:
        left, right, top, bottom = 62, 16, 24, 40
        legend_rows = math.ceil(len(self.lines) / 3)
        height = self.height + 16 * legend_rows
        xs = _finite([ln.x for ln in self.lines] + [np.array([m.x for m in self.marks])],
                     self.log_x)
        ys = _finite([ln.y for ln in self.lines], self.log_y)
        head = (f'<svg class="chart" width="{self.width}" height="{height}" '
                f'viewBox="0 0 {self.width} {height}" role="img">'
                f'<title>{html.escape(self.title)}</title>'
                f'<text x="{left}" y="15" font-size="13" font-weight="600">'
                f'{html.escape(self.title)}</text>')
        if xs.size == 0 or ys.size == 0:
            return head + f'<text x="{left}" y="60" fill="#777">no data</text></svg>'
        ax = Axis(float(xs.min()), float(xs.max()), left, self.width - right, self.log_x)
        ay = Axis(float(ys.min()) / (1.1 if self.log_y else 1),
                  float(ys.max()) * (1.1 if self.log_y else 1), self.height - bottom, top,
                  self.log_y)
        body = [self._axes(ax, ay, left, top, bottom), *self._marks(ax, top, bottom)]
        body += [self._line(ln, ax, ay) for ln in self.lines]
        body.append(self._legend(left, self.height + 4))
        return head + "".join(body) + "</svg>"

    def _axes(self, ax: Axis, ay: Axis, left: int, top: int, bottom: int) -> str:
        y0, y1 = self.height - bottom, top
        out = [f'<line x1="{left}" x2="{left}" y1="{y1}" y2="{y0}" stroke="#999"/>',
               f'<line x1="{left}" x2="{self.width - 16}" y1="{y0}" y2="{y0}" stroke="#999"/>']
        for value, text in value_ticks(ay.low, ay.high, ay.log):
            text = html.escape(self.y_format(value)) if self.y_format else text
            y = _f(float(ay(np.array([value]))[0]))
            out.append(f'<line x1="{left}" x2="{self.width - 16}" y1="{y}" y2="{y}" '
                       f'stroke="#eee"/><text x="{left - 4}" y="{y}" font-size="10" '
                       f'text-anchor="end" dominant-baseline="middle">{text}</text>')
        ticks = date_ticks(ax.low, ax.high) if self.dates else value_ticks(ax.low, ax.high,
                                                                         ax.log)
        for value, text in ticks:
            x = _f(float(ax(np.array([value]))[0]))
            out.append(f'<line x1="{x}" x2="{x}" y1="{y0}" y2="{y0 + 4}" stroke="#999"/>'
                       f'<text x="{x}" y="{y0 + 15}" font-size="10" text-anchor="middle">'
                       f'{text}</text>')
        out.append(f'<text x="12" y="{(y0 + y1) / 2:.0f}" font-size="10" text-anchor="middle" '
                   f'transform="rotate(-90 12 {(y0 + y1) / 2:.0f})">'
                   f'{html.escape(self.y_label)}</text>')
        if self.x_label:
            out.append(f'<text x="{(left + self.width) / 2:.0f}" y="{y0 + 30}" font-size="10" '
                       f'text-anchor="middle">{html.escape(self.x_label)}</text>')
        return "".join(out)

    def _marks(self, ax: Axis, top: int, bottom: int) -> list[str]:
        out = []
        for mark in self.marks:
            x = _f(float(ax(np.array([mark.x]))[0]))
            out.append(f'<line class="change" x1="{x}" x2="{x}" y1="{top}" '
                       f'y2="{self.height - bottom}" stroke="{mark.colour}" stroke-width="1.5" '
                       f'stroke-dasharray="4 3"><title>{html.escape(mark.tip)}</title></line>')
        return out

    def _line(self, line: Line, ax: Axis, ay: Axis) -> str:
        y = np.where(np.isfinite(line.y) & ((line.y > 0) if self.log_y else True), line.y,
                     np.nan)
        px, py = ax(line.x), ay(y)
        dash = ' stroke-dasharray="6 3"' if line.dashed else ""
        out = [f'<polyline points="{p}" fill="none" stroke="{line.colour}" stroke-width="1.4"'
               f'{dash}/>' for p in _polylines(px, py)]
        radius = "2.2" if px.size <= 120 else "1.4"
        for i in np.flatnonzero(np.isfinite(px) & np.isfinite(py)):
            hollow = line.hollow is not None and bool(line.hollow[i])
            fill = "white" if hollow else line.colour
            tip = f"<title>{html.escape(line.tips[i])}</title>" if line.tips else ""
            out.append(f'<circle cx="{_f(px[i])}" cy="{_f(py[i])}" r="{radius}" fill="{fill}" '
                       f'stroke="{line.colour}">{tip}</circle>')
        return "".join(out)

    def _legend(self, left: int, top: int) -> str:
        out = []
        for i, line in enumerate(self.lines):
            x, y = left + (i % 3) * 230, top + 16 * (i // 3)
            dash = ' stroke-dasharray="6 3"' if line.dashed else ""
            out.append(f'<line x1="{x}" x2="{x + 22}" y1="{y + 6}" y2="{y + 6}" '
                       f'stroke="{line.colour}" stroke-width="2"{dash}/><text x="{x + 27}" '
                       f'y="{y + 10}" font-size="11">{html.escape(line.label)}</text>')
        return "".join(out)


def value_ticks(low: float, high: float, log: bool) -> list[tuple[float, str]]:
    """Tick values (in data units) and labels for an axis spanning [low, high] (log10 units
    when ``log``)."""
    if log:
        decades = range(math.floor(low), math.ceil(high) + 1)
        steps = (1, 2, 5) if high - low < 2.5 else (1,)
        values = [m * 10.0 ** d for d in decades for m in steps
                  if low - 1e-9 <= math.log10(m * 10.0 ** d) <= high + 1e-9]
        if len(values) < 2:     # less than a factor 2: three ticks evenly in log space
            values = [float(f"{10 ** e:.2g}") for e in np.linspace(low, high, 5)[1:4]]
        return [(v, f"{v:.3g}") for v in values]
    step = 10 ** math.floor(math.log10((high - low) / 4 or 1))
    for factor in (1, 2, 5, 10):
        if (high - low) / (step * factor) <= 6:
            step *= factor
            break
    start = math.ceil(low / step) * step
    return [(v, f"{v:.4g}") for v in np.arange(start, high + step / 2, step)]


def date_ticks(low: float, high: float, count: int = 6) -> list[tuple[float, str]]:
    """About ``count`` ticks between two dates (days since the epoch), labelled YYYY-MM-DD."""
    if high - low < 1:
        return [(low, np.datetime64(int(low * DAY), "s").astype("datetime64[D]").astype(str))]
    step = max(1, round((high - low) / (count - 1)))
    days = np.arange(math.ceil(low), high + 1e-9, step)
    return [(float(d), str(np.datetime64(int(d), "D"))) for d in days]

