"""``lae-bench publish``: a static site of a nightly history, one folder that opens offline.

    index.html             every cell: sparklines of epochs to the threshold and time per
                           epoch per machine and backend, the latest change point marked
    cells/<cell>.html      a cell's full series per machine and backend, its change points
                           with their commit ranges, its GPU / CPU speed-up over time
    speedup.html           the GPU / CPU speed-up per k over time (where both backends ran)
    nights/index.html      every night; nights/<night>.html its Figure 4 scaling plot

Pages hold inline CSS and inline SVG (``svg.py``), and no script: nothing is fetched.
"""
from __future__ import annotations

from pathlib import Path

from ..changepoints import ChangePoint, find_change_points
from ..history import History, load_history
from ..thresholds import Thresholds
from ..rows import Rows
from .pages import (cell_page, nights_index, night_page, overview_page, page_name,
                    speedup_page)


def publish(history: History | str | Path, out: str | Path,
            thresholds: Thresholds | None = None, repo_url: str | None = None,
            points: list[ChangePoint] | None = None) -> Path:
    """Write the site of ``history`` (a History or a history folder) into ``out``; the path of
    its index.html."""
    thresholds = thresholds or Thresholds()
    if not isinstance(history, History):
        history = load_history(history, thresholds.d_align_threshold)
    out = Path(out)
    (out / "cells").mkdir(parents=True, exist_ok=True)
    (out / "nights").mkdir(parents=True, exist_ok=True)
    if points is None:
        points = find_change_points(history, thresholds)
    rows = Rows.of(history.frame)
    context = {"repo_url": repo_url, "threshold": thresholds.d_align_threshold,
               "x_range": _day_range(rows), "has_speedup": {"numpy", "cupy"} <= set(
                   rows["backend"])}
    by_cell: dict[str, list[ChangePoint]] = {}
    for point in points:
        by_cell.setdefault(point.cell, []).append(point)
    _write(out / "index.html", overview_page(history, rows, points, context))
    for cell, runs in rows.group("cell"):
        _write(out / "cells" / page_name(cell), cell_page(cell, runs, by_cell.get(cell, []),
                                                          context))
    _write(out / "speedup.html", speedup_page(rows, context))
    _write(out / "nights" / "index.html", nights_index(rows, context))
    for night, night_rows in rows.group("night"):
        _write(out / "nights" / page_name(night), night_page(night_rows, context))
    return out / "index.html"


def _write(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


def _day_range(rows: Rows) -> tuple[float, float]:
    days = rows["day"].astype(float)
    return (float(days.min()), float(days.max())) if days.size else (0.0, 1.0)


__all__ = ["publish"]
