"""The Figure 4 table of a run directory: epochs to a d_align threshold and per-epoch time.

Rows are model x optimizer (plus data/backend/device/dtype when a directory mixes several),
columns are k. An epochs cell reads ``3100 [2800-3400]``: the median over seeds and the 25th-75th
percentiles; ``>50000`` when half or more of the runs did not reach the threshold within the 50,000-epoch
cap (censored; ``>50000 (half reached)`` when exactly half did, an even count whose middle
pair straddles the cap), ``diverged`` when most runs diverged, ``error`` when every run errored,
``fails`` when stop_on_failure skipped it after a smaller k of the curve failed (as the paper
does), ``-`` when it has not run (yet).

text and markdown give the two tables side by side in k; csv and json give one row per cell
with the numbers (censored medians are inf in csv, null in json) and the text shown.
"""
from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lae_core import get_objective

from ..errors import UsageError
from .stats import CELL, cell_summary
from ..sweep.store import load_manifest, records_frame

FORMATS = ("text", "csv", "markdown", "json")
NOT_RUN, SKIPPED = "-", "fails"


@dataclass
class FigureTable:
    """The cells of one run directory at one threshold, one row per (label, k)."""

    run_dir: str
    manifest: dict
    threshold: float
    labels: list[str]       # columns naming a row: model, optimizer, and what varies
    cells: pd.DataFrame     # cell_summary's columns + skipped, epochs_text, time_text

    def pivot(self, column: str) -> pd.DataFrame:
        """Rows = labels in the sweep's order, columns = k, values = ``column``."""
        wide = self.cells.pivot_table(index=self.labels, columns="k", values=column,
                                      aggfunc="first", sort=False)
        return wide.reindex(columns=sorted(wide.columns)).fillna(NOT_RUN)


def figure_table(run_dir: str | Path, threshold: float | None = None) -> FigureTable:
    """Summarise a run directory (see the module docstring)."""
    manifest = load_manifest(run_dir)
    config = manifest["config"]
    threshold = float(config["headline"] if threshold is None else threshold)
    if threshold not in config["thresholds"]:
        raise UsageError(f"--threshold: {threshold} was not recorded in this run (recorded: "
                         f"{', '.join(map(str, config['thresholds']))})")
    frame = records_frame(run_dir)
    if frame.empty:
        summary = headline = pd.DataFrame(columns=CELL)
    else:
        summary = cell_summary(frame, threshold)
        # stop_on_failure decided on the headline threshold, whichever one is shown
        headline = (summary if threshold == config["headline"]
                    else cell_summary(frame, config["headline"]))
    cells = pd.concat([summary.assign(skipped=False), _skipped_cells(config, headline)],
                      ignore_index=True)
    cells = _in_sweep_order(cells, config).merge(_final_d_sub(frame), how="left",
                                                 on=["model", "optimizer", "k"])
    cells["epochs_text"] = [epochs_text(row) for row in cells.itertuples()]
    cells["time_text"] = [time_text(row) for row in cells.itertuples()]
    varying = [c for c in ("data_id", "backend", "device", "dtype") if cells[c].nunique() > 1]
    return FigureTable(str(run_dir), manifest, threshold, ["model", "optimizer"] + varying,
                       cells)


def _final_d_sub(frame: pd.DataFrame) -> pd.DataFrame:
    """Median final d_sub per (model, optimizer, k): what a subspace learner (Oja) converges
    in while its d_align need not (column d_sub_text)."""
    if frame.empty or "final_d_sub" not in frame:
        return pd.DataFrame(columns=["model", "optimizer", "k", "d_sub_text"])
    medians = frame.groupby(["model", "optimizer", "k"], sort=False)["final_d_sub"].median()
    return medians.map(lambda v: f"{max(v, 0.0):.2g}" if np.isfinite(v) else NOT_RUN
                       ).rename("d_sub_text").reset_index()


def subspace_only(table: FigureTable) -> bool:
    """Does the table hold a model that recovers only the subspace (objective registry)?"""
    return any(get_objective(m).recovers == "subspace" for m in table.cells["model"].unique())


def _skipped_cells(config: dict, summary: pd.DataFrame) -> pd.DataFrame:
    """Placeholder rows for the cells stop_on_failure skipped: every k after the first failed
    one of a (model, optimizer) curve (``summary`` at the headline threshold) without records."""
    if not config["stop_on_failure"] or summary.empty:
        return pd.DataFrame(columns=CELL)
    rows = []
    for (model, optimizer), curve in summary.groupby(["model", "optimizer"], sort=False):
        failed = curve[curve["censored"] & (curve["errors"] < curve["runs"])]
        if failed.empty:
            continue
        first = failed.sort_values("k").iloc[0]
        rows += [{**first[CELL].to_dict(), "k": k, "runs": 0, "reached": 0, "errors": 0,
                  "diverged": 0, "censored": True, "skipped": True}
                 for k in config["k"] if k > first["k"] and k not in set(curve["k"])]
    return pd.DataFrame(rows, columns=CELL + ["runs", "reached", "errors", "diverged",
                                              "censored", "skipped"])


def _in_sweep_order(cells: pd.DataFrame, config: dict) -> pd.DataFrame:
    """Models and optimizers in the config's order, then k ascending."""
    rank = {name: i for i, name in enumerate(config["models"] + config["optimizers"])}
    return cells.sort_values(["model", "optimizer", "k"], key=lambda col: col.map(
        lambda v: rank.get(v, len(rank)) if isinstance(v, str) else v),
        kind="stable").reset_index(drop=True)


def epochs_text(row) -> str:
    """What the seeds of a cell did: ``3100 [2800-3400]`` (median [IQR], 4 or more seeds),
    ``520 (240, 800)`` (median (each seed), 2 or 3 seeds), ``>50000``, ``>50000 (half
    reached)``, ``diverged``, ``error`` or ``fails``, followed by the seeds that diverged or
    errored when only some did: ``410 (380, 410, 440; 1 error)``."""
    if row.skipped:
        return SKIPPED
    valid = row.runs - row.errors
    if valid == 0:
        return "error"
    if row.diverged == valid:
        return "diverged"
    cap = row.max_epochs
    if row.censored:
        text = f">{cap:.0f}"
    else:
        text = _epochs(row.epochs_median, cap)
    seeds = tuple(getattr(row, "seed_epochs", ()) or ())
    spread = ""
    if 2 <= valid <= 3 and len(seeds) == valid and any(np.isfinite(seeds)):
        spread = ", ".join(_epochs(v, cap) for v in seeds)
    elif valid > 3 and not row.censored:
        spread = f"[{_epochs(row.epochs_q25, cap)}-{_epochs(row.epochs_q75, cap)}]"
    notes = [f"{n} {what}" for n, what in ((row.diverged, "diverged"), (row.errors, "error"))
             if n]
    if spread.startswith("["):
        text += f" {spread}"
        spread = ""
    inside = "; ".join(filter(None, [spread, ", ".join(notes)]))
    if row.censored and getattr(row, "straddles", False):
        inside = "half reached" + (f": {inside}" if inside else "")
    return f"{text} ({inside})" if inside else text


def _epochs(value: float, cap: float) -> str:
    return f"{value:.0f}" if np.isfinite(value) else f">{cap:.0f}"


def time_text(row) -> str:
    """Median per-epoch time in milliseconds, 3 significant digits."""
    if row.skipped:
        return SKIPPED
    if not np.isfinite(row.epoch_time_s):
        return NOT_RUN
    return f"{row.epoch_time_s * 1e3:.3g}"


# --- rendering ----------------------------------------------------------------------------------

def render(table: FigureTable, fmt: str = "text") -> str:
    """The table as text (aligned), markdown, csv or json."""
    if fmt not in FORMATS:
        raise UsageError(f"--format: {fmt!r} is not one of {', '.join(FORMATS)}")
    if fmt in ("csv", "json"):
        return _tidy(table, fmt)
    if table.cells.empty:
        return f"{_title(table)}\nno finished runs yet"
    grid = _aligned if fmt == "text" else _markdown
    config = table.manifest["config"]
    seeds = len(config["seeds"])
    legend = (f"epochs to d_align <= {table.threshold}: median [25th-75th percentile] over "
              f"{seeds} seed{'s' * (seeds > 1)}, midpoint rule (2 or 3 seeds: median (each "
              f"seed)); >N: half or more did not reach within N epochs (half reached: exactly "
              f"half did); diverged / error: seeds whose weights became non-finite / whose run "
              f"failed, counted after ';' when only some did; fails: skipped after a smaller k "
              f"failed; {NOT_RUN}: not run")
    timing = ("per-epoch time, ms (one epoch of the whole batch of seeds: median over its "
              "timing blocks, warm-up excluded)")
    parts = [_title(table), legend, grid(table.pivot("epochs_text")), "", timing,
             grid(table.pivot("time_text"))]
    if fmt == "markdown":
        parts = [f"**{parts[0]}**", "", parts[1], "", parts[2], "", parts[4], "", parts[5]]
    if subspace_only(table):
        parts += ["", "final d_sub (median over seeds): a subspace learner (oja) converges in "
                  "d_sub while its d_align need not", grid(table.pivot("d_sub_text"))]
    return "\n".join(parts)


def _title(table: FigureTable) -> str:
    m, config = table.manifest, table.manifest["config"]
    cells = table.cells
    data = ", ".join(sorted(cells["data_id"].dropna().unique())) or config["data"]["kind"]
    device = ", ".join(sorted(cells["device"].dropna().unique())) or "-"
    return (f"{table.run_dir} ({config['name']}, run {m['run_id']}): {data}; "
            f"{config['dtype']} on {device}")


def _header(wide: pd.DataFrame) -> list[str]:
    return list(wide.index.names) + [f"k={k}" for k in wide.columns]


def _body(wide: pd.DataFrame) -> list[list[str]]:
    return [[*(key if isinstance(key, tuple) else (key,)), *map(str, values)]
            for key, values in zip(wide.index, wide.to_numpy())]


def _aligned(wide: pd.DataFrame) -> str:
    rows = [_header(wide)] + _body(wide)
    labels = len(wide.index.names)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) if i < labels else cell.rjust(w)
                               for i, (cell, w) in enumerate(zip(r, widths))).rstrip()
                     for r in rows)


def _markdown(wide: pd.DataFrame) -> str:
    header = _header(wide)
    labels = len(wide.index.names)
    rule = ["---"] * labels + ["---:"] * (len(header) - labels)
    return "\n".join("| " + " | ".join(r) + " |" for r in [header, rule] + _body(wide))


TIDY = ["model", "optimizer", "k", "data_id", "backend", "device", "dtype", "runs", "reached",
        "errors", "diverged", "skipped", "censored", "straddles", "epochs_median", "epochs_q25",
        "epochs_q75", "max_epochs", "epoch_time_s", "epochs_text"]


def _tidy(table: FigureTable, fmt: str) -> str:
    cells = table.cells.reindex(columns=TIDY)
    if fmt == "csv":
        out = io.StringIO()
        cells.to_csv(out, index=False, lineterminator="\n")
        return out.getvalue().rstrip("\n")
    rows = [{k: _json_value(v) for k, v in row.items()} for row in cells.to_dict("records")]
    return json.dumps({"run_dir": table.run_dir, "run_id": table.manifest["run_id"],
                       "threshold": table.threshold, "cells": rows}, indent=1)


def _json_value(value):
    """NumPy scalars to Python; inf / NaN (censored, missing) to null."""
    value = value.item() if isinstance(value, np.generic) else value
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
