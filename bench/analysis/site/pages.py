"""The pages of the published site (``site.publish``): HTML text from a history frame.

A *stream* is a cell's nights on one machine with one backend; its series (``history``) split
it where the data fingerprint or the setup changed. Times shown are the per-epoch times that
change points are found on (``history.TIME_COLUMN``: the blocks that had the CPU to
themselves).
"""
from __future__ import annotations

import html
import re
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ...formatting import format_epochs, format_seconds
from ..changepoints import METRIC_NAMES, ChangePoint, commit_range, compare_url, size_text
from ..history import TIME_COLUMN, History, series_values
from ..plotkit import MODEL_COLOURS, OPTIMIZER_NAMES
from ..report import CSS
from ..rows import Rows
from .svg import VERDICT_COLOURS, Chart, Line, Mark, sparkline

STREAM = ["machine_id", "backend"]
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#17becf", "#bcbd22", "#7f7f7f")
SITE_CSS = CSS + """
nav a { margin-right: 1.2em; } svg.spark { vertical-align: middle; }
td.spark { padding: 1px 4px; } .regression { color: #c62828; font-weight: 600; }
.improvement { color: #2e7d32; } .change { color: #555; } .new { background: #fce8e6; }
"""


def page_name(key: str) -> str:
    """A file name for a cell or night key: '/' -> '__', other odd characters -> '_'."""
    stem = re.sub(r"\.json$", "", key).replace("/", "__")
    return re.sub(r"[^A-Za-z0-9._-]", "_", stem) + ".html"


def document(title: str, body: str, depth: int = 0) -> str:
    """A whole page with the site's navigation (``depth``: folders below the site root)."""
    up = "../" * depth
    nav = (f'<nav><a href="{up}index.html">Overview</a><a href="{up}speedup.html">GPU / CPU '
           f'speed-up</a><a href="{up}nights/index.html">Nights (Figure 4)</a></nav>')
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>"
            f"{html.escape(title)}</title><style>{SITE_CSS}</style></head><body>{nav}"
            f"<h1>{html.escape(title)}</h1>{body}</body></html>\n")


def stream_label(rows: Rows) -> str:
    """'AMD EPYC, scipy-openblas 0.3.31 x2 (numpy)': the machine and backend of the last row."""
    gpu = f", {rows.last('gpu')}" if isinstance(rows.last("gpu"), str) else ""
    return (f"{rows.last('cpu_model')}{gpu}, {rows.last('blas')} x{rows.last('blas_threads')} "
            f"({rows.last('backend')})")


def _date(day: float, fmt: str = "%Y-%m-%d") -> str:
    return (pd.Timestamp(0, tz="UTC") + pd.Timedelta(days=float(day))).strftime(fmt)


def _latest(points: Sequence[ChangePoint], metric: str) -> ChangePoint | None:
    return next((p for p in points if p.metric == metric), None)   # newest first


def _mark(point: ChangePoint | None) -> Mark | None:
    if point is None:
        return None
    return Mark(pd.Timestamp(point.date_after).timestamp() / 86400.0,
                VERDICT_COLOURS[point.verdict], _point_tip(point))


def _point_tip(point: ChangePoint) -> str:
    return (f"{point.verdict} {size_text(point)} in {METRIC_NAMES[point.metric]} "
            f"(p = {point.p_value:.2g}) between {point.date_before[:10]} and "
            f"{point.date_after[:10]}, commits {commit_range(point)}")


def _verdict_html(point: ChangePoint | None) -> str:
    if point is None:
        return ""
    new = " NEW" if point.new else ""
    return (f'<span class="{point.verdict}">{point.date_after[:10]} {point.verdict}{new} '
            f'{html.escape(METRIC_NAMES[point.metric])} {html.escape(size_text(point))}</span>')


# --- overview -----------------------------------------------------------------------------------

def overview_page(history: History, rows: Rows, points: Sequence[ChangePoint],
                  context: dict[str, Any]) -> str:
    by_stream: dict[tuple, list[ChangePoint]] = {}
    for p in points:
        by_stream.setdefault((p.cell, p.machine_id, p.backend), []).append(p)
    sections = []
    for data_id, data_rows in rows.group("data_id"):
        table_rows = [_overview_row(stream, by_stream.get(
            (stream.first("cell"), *key[-2:]), []), context) for key, stream in data_rows.group(
            "model", "optimizer", "k", "dtype", *STREAM)]
        sections.append(f"<h2>{html.escape(str(data_id))}</h2>" + OVERVIEW_HEAD.format(
            threshold=context["threshold"]) + "".join(table_rows) + "</tbody></table>")
    frame = history.frame
    new = [p for p in points if p.new]
    head = (f"<p>{history.nights} nights from {frame['date'].min():%Y-%m-%d} to "
            f"{frame['date'].max():%Y-%m-%d}, {frame['cell'].nunique()} cells, "
            f"{len(points)} change points ({len(new)} new). Sparklines span the whole "
            f"history; a vertical line marks the latest change point (red: regression, green: "
            f"improvement, grey: within the thresholds); a hollow last point is censored (the "
            f"cap: at least that many epochs).</p>")
    return document("lae-bench nightly history", head + "".join(sections))


OVERVIEW_HEAD = ("<table><thead><tr><th>cell</th><th>machine (backend)</th><th>epochs to "
                 "{threshold:g}</th><th></th><th>time per epoch</th><th></th>"
                 "<th>latest change</th></tr></thead><tbody>")


def _overview_row(stream: Rows, points: Sequence[ChangePoint], context: dict[str, Any]
                  ) -> str:
    x = stream["day"].astype(float)
    epochs, times = series_values(stream, "epochs"), series_values(stream, "time")
    censored = stream["censored"].astype(bool)
    spark_e = sparkline(x, epochs, context["x_range"], _mark(_latest(points, "epochs")),
                        hollow=censored)
    spark_t = sparkline(x, times, context["x_range"], _mark(_latest(points, "time")))
    last_epochs = (f"&ge; {format_epochs(float(stream.last('max_epochs')))}"
                   if stream.last("censored") else format_epochs(float(epochs[-1])))
    newest = points[0] if points else None
    name = (f"{stream.first('model')} {stream.first('optimizer')} k={stream.first('k')} "
            f"{stream.first('dtype')}")
    gpu = stream.last("gpu")
    machine = f"{gpu if isinstance(gpu, str) else stream.last('cpu_model')} " \
              f"({stream.last('backend')})"
    return (f'<tr><td><a href="cells/{page_name(stream.first("cell"))}">{html.escape(name)}'
            f"</a></td>"
            f'<td title="{html.escape(stream_label(stream))}">{html.escape(machine)}</td>'
            f"<td class=num>{last_epochs}</td>"
            f'<td class="spark">{spark_e}</td><td class=num>{format_seconds(times[-1])}</td>'
            f'<td class="spark">{spark_t}</td><td>{_verdict_html(newest)}</td></tr>')


# --- one cell -----------------------------------------------------------------------------------

def cell_page(cell: str, runs: Rows, points: Sequence[ChangePoint],
              context: dict[str, Any]) -> str:
    parts = []
    for key, stream in runs.group(*STREAM):
        mine = [p for p in points if (p.machine_id, p.backend) == tuple(key)]
        parts.append(f"<h2>{html.escape(stream_label(stream))}</h2>")
        parts += [_series_chart(stream, metric, mine).svg() for metric in ("epochs", "time")]
        parts.append(_normalised_chart(stream).svg())
    parts.append("<h2>Change points</h2>" + _points_table(points, context["repo_url"]))
    speedup = _cell_speedup(runs)
    if speedup is not None:
        parts.append("<h2>GPU / CPU speed-up</h2>" + speedup.svg())
    return document(cell, "".join(parts), depth=1)


def _tips(rows: Rows, values: np.ndarray, metric: str) -> list[str]:
    show = format_epochs if metric == "epochs" else format_seconds
    bound = rows["censored"].astype(bool) & (metric == "epochs")
    return [f"{d} {str(c)[:8]}: {'>= ' if b else ''}{show(v)}"
            for d, c, v, b in zip(rows["day_text"], rows["commit"], values, bound)]


def _series_chart(stream: Rows, metric: str, points: Sequence[ChangePoint]) -> Chart:
    lines = []
    several = len(set(stream["series"])) > 1
    for i, (_, series) in enumerate(stream.group("series")):
        values = series_values(series, metric)
        hollow = series["censored"].astype(bool) if metric == "epochs" else None
        label = METRIC_NAMES[metric] + (f" (series {i + 1})" if several else "")
        lines.append(Line(label, series["day"].astype(float), values,
                          PALETTE[i % len(PALETTE)], hollow=hollow,
                          tips=_tips(series, values, metric)))
    marks = [_mark(p) for p in points if p.metric == metric]
    unit = "epochs (hollow: censored, at the cap)" if metric == "epochs" else "per epoch"
    return Chart(METRIC_NAMES[metric], unit, lines, marks, log_y=True,
                 y_format=format_epochs if metric == "epochs" else format_seconds)


def _normalised_chart(stream: Rows) -> Chart:
    values = stream["normalised_time"].astype(float)
    line = Line("epoch time / same-run reference product", stream["day"].astype(float), values,
                PALETTE[2], tips=[f"{d}: {v:.3g}" for d, v in
                                  zip(stream["day_text"], values)])
    return Chart("machine-normalised time per epoch", "epoch / reference", [line], log_y=True)


def _points_table(points: Sequence[ChangePoint], repo_url: str | None) -> str:
    if not points:
        return "<p>No change point in any series of this cell.</p>"
    header = ("first night after", "verdict", "metric", "size", "p", "nights before / after",
              "commits", "machine", "backend")
    body = []
    for p in points:
        commits = html.escape(commit_range(p))
        if repo_url and p.commit_before and p.commit_after:
            commits = f'<a href="{html.escape(compare_url(repo_url, p))}">{commits}</a>'
        cells = [f'<a href="../nights/{page_name(p.night_after)}">{p.date_after[:10]}</a>',
                 f'<span class="{p.verdict}">{p.verdict}{" NEW" if p.new else ""}</span>',
                 html.escape(METRIC_NAMES[p.metric]), html.escape(size_text(p)),
                 f"{p.p_value:.2g}", f"{p.nights_before} / {p.nights_after}", commits,
                 html.escape(p.machine), html.escape(p.backend)]
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


# --- GPU / CPU speed-up -------------------------------------------------------------------------

def speedup_series(runs: Rows) -> tuple[np.ndarray, np.ndarray]:
    """Per commit that ran on both backends: its first day and numpy time / cupy time (the
    medians over the machines and nights of that commit), in date order."""
    times: dict[str, dict[str, list[float]]] = {}
    first_day: dict[str, float] = {}
    for commit, backend, day, t in zip(runs["commit"], runs["backend"], runs["day"],
                                       runs[TIME_COLUMN]):
        times.setdefault(commit, {}).setdefault(backend, []).append(float(t))
        first_day[commit] = min(first_day.get(commit, np.inf), float(day))
    pairs = sorted((first_day[c], np.nanmedian(b["numpy"]) / np.nanmedian(b["cupy"]))
                   for c, b in times.items() if "numpy" in b and "cupy" in b)
    return np.array([d for d, _ in pairs]), np.array([r for _, r in pairs])


def _cell_speedup(runs: Rows) -> Chart | None:
    x, ratio = speedup_series(runs)
    if x.size == 0:
        return None
    line = Line("numpy / cupy time per epoch", x, ratio, PALETTE[3])
    return Chart("GPU / CPU speed-up", "x faster on the GPU", [line], log_y=True)


def speedup_page(rows: Rows, context: dict[str, Any]) -> str:
    charts = []
    if context["has_speedup"]:
        for key, group in rows.group("data_id", "model", "optimizer", "dtype"):
            lines = []
            for i, (k, runs) in enumerate(group.group("k")):
                x, ratio = speedup_series(runs)
                if x.size:
                    lines.append(Line(f"k = {k}", x, ratio, PALETTE[i % len(PALETTE)]))
            if lines:
                charts.append(Chart(" ".join(map(str, key)), "x faster on the GPU", lines,
                                    log_y=True).svg())
    body = "".join(charts) or ("<p>No commit ran on both backends (numpy and cupy): nothing "
                               "to compare.</p>")
    intro = ("<p>Per commit that ran on both backends: the CPU's time per epoch over the "
             "GPU's, one line per k.</p>")
    return document("GPU / CPU speed-up per k", intro + body)


# --- nights and Figure 4 ------------------------------------------------------------------------

def nights_index(rows: Rows, context: dict[str, Any]) -> str:
    nights = sorted(rows.group("night"), key=lambda item: -float(item[1].first("day")))
    lines = []
    repo = context["repo_url"]
    for night, n in nights:
        commit_text = html.escape(str(n.first("commit"))[:8])
        if repo and isinstance(n.first("commit"), str):
            commit_text = (f'<a href="{html.escape(repo.rstrip("/"))}/commit/'
                           f'{html.escape(n.first("commit"))}">{commit_text}</a>')
        lines.append(f'<tr><td><a href="{page_name(night)}">'
                     f'{_date(n.first("day"), "%Y-%m-%d %H:%M")}</a></td><td>{commit_text}</td>'
                     f"<td>{html.escape(stream_label(n))}</td><td class=num>"
                     f"{len(set(n['cell']))}</td></tr>")
    table = ("<table><thead><tr><th>night (Figure 4)</th><th>commit</th><th>machine "
             "(backend)</th><th>cells</th></tr></thead><tbody>" + "".join(lines)
             + "</tbody></table>")
    return document("Nights", table, depth=1)


def night_page(rows: Rows, context: dict[str, Any]) -> str:
    charts = [figure4(key, group, context["threshold"]).svg() for key, group in
              rows.group("data_id", "dtype")]
    intro = (f"<p>{_date(rows.first('day'), '%Y-%m-%d %H:%M')} UTC, commit <code>"
             f"{html.escape(str(rows.first('commit')))}</code>, "
             f"{html.escape(stream_label(rows))}. Median epochs over the seeds to d_align "
             f"&le; {context['threshold']:g}; a hollow point did not get there within the cap "
             f"(drawn at the cap).</p>")
    return document(f"Figure 4: {_date(rows.first('day'))}", intro + "".join(charts), depth=1)


def figure4(key: tuple, rows: Rows, threshold: float) -> Chart:
    """Epochs to the threshold against k, log-log, a line per model and optimizer."""
    lines = []
    for (model, optimizer), group in rows.group("model", "optimizer"):
        group = group.take(np.argsort(group["k"].astype(float), kind="stable"))
        values = series_values(group, "epochs")
        lines.append(Line(f"{model} {OPTIMIZER_NAMES.get(optimizer, optimizer)}",
                          group["k"].astype(float), values, MODEL_COLOURS.get(model, "#333"),
                          dashed=optimizer == "adam", hollow=group["censored"].astype(bool),
                          tips=[f"k = {k}: {format_epochs(v)}" for k, v in
                                zip(group["k"], values)]))
    return Chart(f"{key[0]} ({key[1]})", f"epochs to d_align {threshold:g}", lines, log_y=True,
                 log_x=True, dates=False, x_label="k", y_format=format_epochs)
