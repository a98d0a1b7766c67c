"""The plotting kit of lae-bench's figures: the ``Plot`` value (a figure and the numbers it
drew), one style, colours per model and line styles per optimizer, selecting the best rate of
each cell, and log axes over k. ``plots`` draws the paper's figures with it, ``bench.perf.hessian``
its conditioning plot.
"""
from __future__ import annotations

import functools
import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import pandas as pd
from matplotlib import rc_context
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullFormatter

from lae_core.objectives import ALL_MODELS
from lae_core.optim import OPTIMIZERS

from ..formatting import format_seconds
from .stats import CELL, cell_summary

# The six LAEs, then the PCA learners (GHA, EigenGame, Oja, eigh).
MODEL_COLOURS = dict(zip(ALL_MODELS, ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                      "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f")))
OPTIMIZER_STYLES = {"sgd_nesterov": "-", "adam": "--", "gd": ":"}
OPTIMIZER_NAMES = {"sgd_nesterov": "Nesterov SGD", "adam": "Adam", "gd": "GD"}
STYLE = {"font.size": 9.5, "axes.titlesize": 10.5, "axes.labelsize": 9.5,
         "axes.grid": True, "grid.alpha": 0.3, "grid.linewidth": 0.6,
         "axes.spines.top": False, "axes.spines.right": False, "legend.frameon": False,
         "legend.fontsize": 8.5, "svg.hashsalt": "lae-bench"}  # salt: reproducible SVG ids


@dataclass
class Plot:
    """One figure and the data behind it.

    name: file stem. series: curve name -> the values drawn (lists or arrays). A plot the
    results cannot support has ``figure`` None and the reason in ``skipped``.
    """

    name: str
    title: str
    series: dict[str, Any] = field(default_factory=dict)
    figure: Figure | None = None
    skipped: str | None = None

    def save(self, out_dir: str | Path) -> list[Path]:
        """Write NAME.png and NAME.svg into ``out_dir``; return their paths."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        paths = [out_dir / f"{self.name}.{ext}" for ext in ("png", "svg")]
        for path in paths:
            with rc_context(STYLE):
                self.figure.savefig(path, dpi=150, bbox_inches="tight")
        return paths

    def svg(self) -> str:
        """The figure as SVG text (what the HTML report embeds)."""
        buf = io.StringIO()
        with rc_context(STYLE):
            self.figure.savefig(buf, format="svg", bbox_inches="tight")
        return buf.getvalue()


def styled(draw: Callable[..., Plot]) -> Callable[..., Plot]:
    """Draw under the house style: matplotlib reads rcParams when each artist is created."""
    @functools.wraps(draw)
    def wrapper(*args: Any, **kwargs: Any) -> Plot:
        with rc_context(STYLE):
            return draw(*args, **kwargs)
    return wrapper


def skipped(name: str, title: str, reason: str) -> Plot:
    return Plot(name, title, skipped=reason)


# --- loading and selecting ----------------------------------------------------------------------

def best_lr_summary(frame: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """``cell_summary`` per learning rate, keeping each cell's best rate (lowest median epochs).

    A cell swept over learning rates is drawn at its best one, as the paper drew its
    hand-tuned rates; a cell with one rate is unaffected.
    """
    summary = cell_summary(frame, threshold, cell=[*CELL, "lr"])
    best = summary.sort_values(["epochs_median", "lr"], na_position="last")
    return best.drop_duplicates(CELL, keep="first").reset_index(drop=True)


def best_lr_runs(frame: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """The runs (records) of each cell's best learning rate."""
    keys = best_lr_summary(frame, threshold)[[*CELL, "lr"]]
    return frame.merge(keys, on=[*CELL, "lr"], how="inner")


def split_by(frame: pd.DataFrame, columns: Sequence[str]
             ) -> Iterator[tuple[str, dict[str, Any], pd.DataFrame]]:
    """(file-name suffix, column values, rows) per combination of ``columns``.

    The suffix names only the columns that vary, so the common case keeps plain names.
    """
    varying = [c for c in columns if frame[c].nunique() > 1]
    for values, group in frame.groupby(list(columns), sort=True):
        values = dict(zip(columns, values))
        suffix = "".join("-" + _slug(str(values[c])) for c in varying)
        yield suffix, values, group


def per_k(frame: pd.DataFrame, variant: Sequence[str], stem: str
          ) -> Iterator[tuple[str, dict[str, Any], pd.DataFrame]]:
    """(file name 'STEM-kK[-variant]', variant values with k, rows) per variant and k."""
    for suffix, values, rows in split_by(frame, variant):
        for k, k_rows in rows.groupby("k", sort=True):
            yield f"{stem}-k{k}{suffix}", {**values, "k": int(k)}, k_rows


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-")


def curve_name(model: str, optimizer: str) -> str:
    return f"{model}/{optimizer}"


def curve_label(model: str, optimizer: str) -> str:
    return f"{model} ({OPTIMIZER_NAMES.get(optimizer, optimizer)})"


def curves(frame: pd.DataFrame) -> Iterator[tuple[str, str, pd.DataFrame]]:
    """(model, optimizer, rows sorted by k) per curve: Nesterov SGD first, as in the paper's
    legend, then the registries' order of optimizers and models."""
    def order(pair: tuple[str, str]) -> tuple:
        model, optimizer = pair
        return optimizer != "sgd_nesterov", _position(OPTIMIZERS, optimizer), \
            _position(ALL_MODELS, model)
    for model, optimizer in sorted(frame.groupby(["model", "optimizer"]).groups, key=order):
        rows = frame[(frame["model"] == model) & (frame["optimizer"] == optimizer)]
        yield model, optimizer, rows.sort_values("k")


def _position(names: Sequence[str], name: str) -> int:
    return names.index(name) if name in names else len(names)


def line_style(model: str, optimizer: str) -> dict[str, Any]:
    return {"color": MODEL_COLOURS.get(model, "0.3"),
            "linestyle": OPTIMIZER_STYLES.get(optimizer, "-.")}


def new_figure(width: float, height: float, nrows: int = 1, ncols: int = 1, **kwargs
               ) -> tuple[Figure, np.ndarray]:
    """A Figure on the Agg canvas and its axes as a 2-D array."""
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots(nrows, ncols, squeeze=False, **kwargs)


def log_k_axis(ax: Axes, ks: Iterable[int]) -> None:
    """Log-scaled k axis: a tick at every k that was run, a label where it has room."""
    ks = sorted(set(int(k) for k in ks))
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(FixedLocator(spaced_labels(ks)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_locator(FixedLocator(ks))
    ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
    ax.set_xlabel("latent dimension k")


def spaced_labels(ks: Sequence[int], min_ratio: float = 1.9) -> list[int]:
    """The ks to label on a log axis: each at least ``min_ratio`` times the previous one, so
    that neighbours like 300, 400, 500 do not overprint; the largest k always keeps its."""
    labelled = []
    for k in ks:
        if not labelled or k >= labelled[-1] * min_ratio:
            labelled.append(k)
    if ks and labelled[-1] != ks[-1]:
        labelled[-1] = ks[-1]
    return labelled


def log_y(ax: Axes, unit: str = "") -> None:
    """Log y axis with plain labels ('2,000', '0.5'; seconds with a unit: '100 us', '2 ms').

    Call it after plotting: an axis spanning up to 3.5 decades is labelled at 1-2-5 steps,
    a wider one at each decade only, so that labels never crowd.
    """
    if not any(np.any(np.asarray(line.get_ydata(), float) > 0) for line in ax.get_lines()):
        return  # nothing positive to scale (say, no cell reached the threshold)
    ax.set_yscale("log")
    low, high = ax.get_ylim()
    subs = (1.0, 2.0, 5.0) if np.log10(high / low) <= 3.5 else (1.0,)
    ax.yaxis.set_major_locator(LogLocator(subs=subs))
    label = format_seconds if unit == "s" else (lambda v: f"{v:,.0f}" if v >= 1 else f"{v:g}")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: label(v)))
    ax.yaxis.set_minor_formatter(NullFormatter())


def distance_y(ax: Axes, values: Iterable[np.ndarray]) -> None:
    """Log scale for distances spanning more than a decade, linear otherwise (runs that stop
    at d_align 0.3 span less, and a log axis would then show only minor ticks)."""
    finite = np.concatenate([np.asarray(v, float).ravel() for v in values])
    finite = finite[np.isfinite(finite) & (finite > 0)]
    if finite.size and finite.max() / finite.min() > 10:
        log_y(ax)
