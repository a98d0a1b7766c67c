# Over 400 lines: one section per figure of the paper (4, timings, 2, 3), each short; the shared
# kit (Plot, style, selection, axes) lives apart in plotkit.py.
"""Figures drawn from stored results only (records, histories and manifests of run directories).

- ``scaling_plots``: the paper's Figure 4, epochs to d_align <= t against k, log-log; one
  colour per model, solid for Nesterov SGD, dashed for Adam; median over seeds with the
  interquartile range as a band; a cross where a curve first fails; optional fitted slopes.
- ``timing_plots``: time per epoch and time to the threshold against k, one panel per backend.
- ``speedup_plots``: the GPU / CPU speed-up per k, when a CPU run and a GPU run share cells.
- ``learning_curve_plots``: Figure 2, d_align and d_sub against the epoch, from histories.
- ``alignment_plots``, ``decoder_image_plots``: Figure 3, U_k^T W2 as a heatmap per model and
  the decoder columns as images. Histories hold metrics, not weights, so these read two
  optional arrays of a history file: ``W2_final`` (m, k), the decoder at the end of the run
  in the original basis, and ``Uk_T_W2`` (k, k) = U_k^T W2_final. Without them they are skipped.

Each function returns ``Plot`` objects (``plotkit``) that carry the numbers they drew (``series``), so tests
check data rather than pixels. Figures are built with matplotlib's object API on the Agg canvas:
no pyplot, no global figure state, no display needed.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from .plotkit import (Plot, best_lr_runs, best_lr_summary, curve_label, curve_name, curves,
                      distance_y, line_style, log_k_axis, log_y, new_figure, per_k, skipped,
                      split_by, styled)
from .stats import CELL, load_results
from ..sweep.store import load_history

WEIGHT_ARRAYS = ("W2_final", "Uk_T_W2")   # optional arrays of a history file (see above)
MAX_HEATMAP_K = 64                          # beyond this a k x k heatmap is unreadable
CROSS_STACK = 1.12                          # crosses failing at the same k stack by this factor


# --- Figure 4: epochs to threshold against k ----------------------------------------------------

SCALING_VARIANT = ("data_id", "backend", "device", "dtype")


def scaling_plots(frame: pd.DataFrame, threshold: float = 0.3, fit: bool = False) -> list[Plot]:
    """Figure 4, one figure per data set, backend, device and dtype in the results."""
    summary = best_lr_summary(frame, threshold)
    return [scaling_plot(rows, values, threshold, fit, f"figure4_scaling{suffix}")
            for suffix, values, rows in split_by(summary, SCALING_VARIANT)]


def scaling_curve(rows: pd.DataFrame) -> dict[str, Any]:
    """The drawn part of one curve: the k before its first failure, their median and IQR.

    failed_at: the first k whose median is censored (the paper stops a curve there), or None.
    slope: least-squares slope of log(median) on log(k) over the drawn points with a positive
    median (None if < 2; a closed form such as eigh reaches at epoch 0, which a log axis
    cannot show).
    """
    censored = rows["censored"].to_numpy()
    first_fail = int(np.argmax(censored)) if censored.any() else len(rows)
    drawn = rows.iloc[:first_fail]
    k, median = drawn["k"].to_numpy(float), drawn["epochs_median"].to_numpy(float)
    positive = median > 0
    return {"k": k.astype(int).tolist(), "median": median.tolist(),
            "q25": drawn["epochs_q25"].tolist(), "q75": drawn["epochs_q75"].tolist(),
            "seeds": drawn["runs"].tolist(),
            "failed_at": int(rows["k"].iloc[first_fail]) if first_fail < len(rows) else None,
            "cap": int(rows["max_epochs"].max()),
            "slope": float(np.polyfit(np.log(k[positive]), np.log(median[positive]), 1)[0])
            if positive.sum() >= 2 else None}


@styled
def scaling_plot(summary: pd.DataFrame, variant: dict[str, Any], threshold: float, fit: bool,
                 name: str) -> Plot:
    fig, axes = new_figure(10.0, 5.8)
    ax = axes[0, 0]
    cap = int(summary["max_epochs"].max())
    series, crosses_at = {}, {0: 0}     # crosses drawn so far at each failing k
    for model, optimizer, rows in curves(summary):
        curve = scaling_curve(rows)
        series[curve_name(model, optimizer)] = curve
        stack = crosses_at.get(curve["failed_at"], 0)
        if curve["failed_at"] is not None:
            crosses_at[curve["failed_at"]] = stack + 1
        label = curve_label(model, optimizer)
        if fit and curve["slope"] is not None:
            label += f", slope {curve['slope']:.2f}"
        _draw_scaling_curve(ax, curve, line_style(model, optimizer), label,
                            cap * CROSS_STACK ** stack)
    _decorate_scaling_axes(ax, summary, threshold, cap, max(crosses_at.values()))
    fig.suptitle(f"Epochs until the decoder aligns with the top-k principal directions "
                 f"(d_align ≤ {threshold})")
    ax.set_title(f"{_variant_text(variant)}\nmedian over {int(summary['runs'].max())} seeds, "
                 "band: interquartile range", fontsize=8.5, color="0.3")
    return Plot(name, "Epochs to threshold against k (Figure 4)", series, fig)


def _draw_scaling_curve(ax: Axes, curve: dict[str, Any], style: dict[str, Any], label: str,
                        cross_y: float) -> None:
    k, cap = curve["k"], curve["cap"]
    if k and max(curve["median"]) <= 0:     # reached at epoch 0 (a closed form): legend only
        ax.plot([], [], marker="o", markersize=3.5, label=f"{label}: 0 epochs", **style)
    elif k:
        ax.plot(k, curve["median"], marker="o", markersize=3.5, linewidth=1.6, label=label,
                **style)
        # A censored q75 (inf) is at least the cap: the band stops there. A band needs two
        # points; a one-point curve shows its interquartile range as a bar.
        q75 = np.minimum(curve["q75"], cap)
        if len(k) > 1:
            ax.fill_between(k, curve["q25"], q75, color=style["color"], alpha=0.13, linewidth=0)
        else:
            ax.vlines(k, curve["q25"], q75, color=style["color"], alpha=0.35, linewidth=4)
    if curve["failed_at"] is not None:
        # Like the paper: the curve stops, a cross marks the first k that failed.
        ax.plot(curve["failed_at"], cross_y, marker="x", markersize=8, markeredgewidth=2.2,
                linestyle="none", color=style["color"], label=None if k else label)


def _decorate_scaling_axes(ax: Axes, summary: pd.DataFrame, threshold: float, cap: int,
                           max_stack: int) -> None:
    log_k_axis(ax, summary["k"])
    ax.set_yscale("log")
    q25 = summary["epochs_q25"]
    finite = q25[np.isfinite(q25) & (q25 > 0)]
    low = float(finite.min()) / 1.6 if len(finite) else cap / 100
    ax.set_ylim(low, cap * CROSS_STACK ** max_stack * 1.15)
    log_y(ax)
    ax.set_ylabel(f"epochs to d_align ≤ {threshold}")
    cap_line = ax.axhline(cap, color="0.45", linewidth=0.8, linestyle=":")
    handles, labels = ax.get_legend_handles_labels()
    handles += [Line2D([], [], color="0.2", marker="x", markersize=7, markeredgewidth=2,
                       linestyle="none"), cap_line]
    labels += [f"first k whose median run did not\nreach {threshold} within the cap (crosses\n"
               "at the same k are stacked)", f"epoch cap ({cap:,})"]
    # Long handles: at the default length the marker covers a dashed line's one gap, and Adam's
    # dashes read as solid like Nesterov's.
    ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1.0), handlelength=4)


def _variant_text(variant: dict[str, Any]) -> str:
    """'data_id, numpy/float64 on DEVICE' from whichever of those the variant fixes."""
    engine = "/".join(str(variant[c]) for c in ("backend", "dtype") if c in variant)
    where = f" on {variant['device']}" if "device" in variant else ""
    return f"{variant['data_id']}, {engine}{where}"


# --- timings ------------------------------------------------------------------------------------

TIMING_VARIANT = ("data_id", "dtype")


def timing_plots(frame: pd.DataFrame, threshold: float = 0.3) -> list[Plot]:
    """Time per epoch and time to the threshold against k; a column of panels per backend."""
    summary = best_lr_summary(frame, threshold)
    return [timing_plot(rows, values, threshold, f"timing{suffix}")
            for suffix, values, rows in split_by(summary, TIMING_VARIANT)]


@styled
def timing_plot(summary: pd.DataFrame, variant: dict[str, Any], threshold: float,
                name: str) -> Plot:
    # CPU (numpy) first, so that a CPU / GPU pair reads left to right.
    panels = sorted(summary.groupby(["backend", "device"], sort=True),
                    key=lambda panel: panel[0][0] != "numpy")
    fig, axes = new_figure(5.0 * len(panels) + 2.6, 7.0, 2, len(panels), sharey="row",
                           sharex=True)
    series = {}
    for col, ((backend, device), rows) in enumerate(panels):
        for model, optimizer, curve_rows in curves(rows):
            per_epoch = curve_rows["epoch_time_s"].to_numpy(float)
            # The batch trains all seeds together: median epochs x the batch's epoch time is
            # the wall time the cell needed to get there (censored cells have no such time).
            to_threshold = curve_rows["epochs_median"].to_numpy(float) * per_epoch
            k = curve_rows["k"].to_numpy(int)
            series[f"{curve_name(model, optimizer)}/{backend}"] = {
                "k": k.tolist(), "device": device, "time_per_epoch_s": per_epoch.tolist(),
                "time_to_threshold_s": to_threshold.tolist()}
            style = line_style(model, optimizer)
            label = curve_label(model, optimizer)
            axes[0, col].plot(k, per_epoch, marker="o", markersize=3, label=label, **style)
            finite = np.isfinite(to_threshold)
            axes[1, col].plot(k[finite], to_threshold[finite], marker="o", markersize=3, **style)
        axes[0, col].set_title(f"{backend} on {device}")
        if not np.isfinite(rows["epochs_median"].to_numpy(float)).any():
            axes[1, col].text(0.5, 0.5, f"no cell reached d_align ≤ {threshold}",
                              transform=axes[1, col].transAxes, ha="center", va="center")
    _decorate_timing_axes(axes, summary, threshold)
    fig.suptitle(f"Time per epoch and time to d_align ≤ {threshold}\n{_variant_text(variant)}; "
                 f"an epoch updates all {int(summary['runs'].max())} seeds of a cell at once")
    return Plot(name, "Time per epoch and time to threshold against k", series, fig)


def _decorate_timing_axes(axes: np.ndarray, summary: pd.DataFrame, threshold: float) -> None:
    for ax in axes.ravel():
        log_k_axis(ax, summary["k"])
        log_y(ax, unit="s")
    for ax in axes[0]:
        ax.set_xlabel("")
    axes[0, 0].set_ylabel("time per epoch")
    axes[1, 0].set_ylabel(f"wall time to d_align ≤ {threshold}\n(median epochs × epoch time)")
    axes[0, -1].legend(loc="upper left", bbox_to_anchor=(1.02, 1.0))


def speedup_plots(frame: pd.DataFrame, threshold: float = 0.3) -> list[Plot]:
    """GPU (cupy) over CPU (numpy) time per epoch, per k, for the cells both ran."""
    summary = best_lr_summary(frame, threshold)
    pair = ["data_id", "dtype", "model", "optimizer", "k", "lr"]
    cpu, gpu = (summary[summary["backend"] == b] for b in ("numpy", "cupy"))
    both = cpu.merge(gpu, on=pair, suffixes=("_cpu", "_gpu"))
    if both.empty:
        return [skipped("speedup", "GPU / CPU speed-up",
                        "needs a numpy (CPU) run and a cupy (GPU) run of the same cells")]
    both["speedup"] = both["epoch_time_s_cpu"] / both["epoch_time_s_gpu"]
    return [speedup_plot(rows, values, f"speedup{suffix}") for suffix, values, rows in
            split_by(both, ["data_id", "dtype", "device_cpu", "device_gpu"])]


@styled
def speedup_plot(both: pd.DataFrame, variant: dict[str, Any], name: str) -> Plot:
    fig, axes = new_figure(7.8, 4.6)
    ax = axes[0, 0]
    series = {}
    for model, optimizer, rows in curves(both):
        series[curve_name(model, optimizer)] = {"k": rows["k"].astype(int).tolist(),
                                                "speedup": rows["speedup"].tolist()}
        ax.plot(rows["k"], rows["speedup"], marker="o", markersize=3.5,
                label=curve_label(model, optimizer), **line_style(model, optimizer))
    log_k_axis(ax, both["k"])
    log_y(ax)
    ax.axhline(1.0, color="0.45", linewidth=0.8, linestyle=":")
    ax.set_ylabel("GPU speed-up\n(CPU time per epoch / GPU time per epoch)")
    ax.set_title(f"{variant['device_gpu']} (cupy) vs {variant['device_cpu']} (numpy)\n"
                 f"{variant['data_id']}, {variant['dtype']}; above 1: the GPU is faster")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return Plot(name, "GPU / CPU speed-up per k", series, fig)


# --- Figure 2: learning curves ------------------------------------------------------------------

HISTORY_VARIANT = ("data_id", "backend", "device", "dtype")


def with_histories(frame: pd.DataFrame, needs: Sequence[str]) -> pd.DataFrame:
    """Rows whose history file holds every array in ``needs``; the history in column
    ``history`` (dict of arrays)."""
    rows = frame[frame["history_file"].notna()]
    histories = [load_history(row["run_dir"], row["history_file"]) for _, row in rows.iterrows()]
    keep = np.array([h is not None and all(n in h for n in needs) for h in histories], bool)
    return rows.assign(history=histories).loc[keep]


def learning_curve_plots(frame: pd.DataFrame, threshold: float = 0.3) -> list[Plot]:
    """Figure 2: d_align and d_sub against the epoch; one figure per k (and data, backend)."""
    runs = with_histories(best_lr_runs(frame, threshold), ("epoch", "d_align", "d_sub"))
    if runs.empty:
        return [skipped("learning_curves", "Learning curves",
                        "no run stored a metric history (turn history on in the sweep)")]
    return [learning_curve_plot(rows, values, threshold, name)
            for name, values, rows in per_k(runs, HISTORY_VARIANT, "learning_curves")]


# Distances are 1 - (something close to 1): below float64 resolution they are rounding noise,
# possibly <= 0, which a log axis cannot show; they are drawn at this floor.
DISTANCE_FLOOR = 1e-16


def history_curves(rows: pd.DataFrame) -> list[dict[str, Any]]:
    """Per run (by seed): epoch, d_align, d_sub arrays, distances floored at DISTANCE_FLOOR."""
    return [{"seed": int(row["seed"]), "epoch": np.asarray(row["history"]["epoch"]),
             **{metric: np.maximum(np.asarray(row["history"][metric], float), DISTANCE_FLOOR)
                for metric in ("d_align", "d_sub")}}
            for _, row in rows.sort_values("seed").iterrows()]


@styled
def learning_curve_plot(runs: pd.DataFrame, variant: dict[str, Any], threshold: float,
                        name: str) -> Plot:
    fig, axes = new_figure(11.0, 4.4, 1, 2, sharex=True)
    series = {}
    for model, optimizer, rows in curves(runs):
        series[curve_name(model, optimizer)] = history_curves(rows)
        label = curve_label(model, optimizer) + (f" ({len(rows)} seeds)" if len(rows) > 1 else "")
        for i, run in enumerate(series[curve_name(model, optimizer)]):
            for ax, metric in zip(axes[0], ("d_align", "d_sub")):
                ax.plot(run["epoch"], run[metric], linewidth=1.3, alpha=0.85,
                        label=label if i == 0 else None, **line_style(model, optimizer))
    for ax, metric, title in zip(axes[0], ("d_align", "d_sub"),
                                 ("axis alignment d_align", "subspace distance d_sub")):
        distance_y(ax, [run[metric] for runs in series.values() for run in runs])
        ax.set_xlabel("epoch (one full-batch update)")
        ax.set_title(title)
    axes[0, 0].axhline(threshold, color="0.45", linewidth=0.8, linestyle=":")
    axes[0, 0].set_ylabel("distance to the top-k principal directions")
    axes[0, 1].legend(loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.suptitle(f"Learning curves, k = {variant['k']}\n{_variant_text(variant)}")
    return Plot(name, f"Learning curves (Figure 2), k = {variant['k']}", series, fig)


# --- Figure 3: U_k^T W2 and the decoder columns -------------------------------------------------

NO_WEIGHTS = (f"no history holds the final decoder (arrays {' and '.join(WEIGHT_ARRAYS)} of "
              "the history file); rerun with history on")


def first_seed_runs(frame: pd.DataFrame, threshold: float, needs: Sequence[str]
                    ) -> pd.DataFrame:
    """One run per cell (its lowest seed at the best learning rate) with the arrays needed."""
    runs = with_histories(best_lr_runs(frame, threshold), needs)
    return runs.sort_values("seed").drop_duplicates(CELL, keep="first")


def alignment_matrix(history: dict[str, np.ndarray]) -> np.ndarray:
    """cos(U_i, W2_j) = (U_k^T W2)_ij / ||W2_j||: (k, k), in [-1, 1].

    Without W2_final the column norms of U_k^T W2 stand in: the same once W2 lies in span(U_k).
    """
    proj = np.asarray(history["Uk_T_W2"], dtype=float)
    decoder = np.asarray(history["W2_final"], dtype=float) if "W2_final" in history else proj
    return proj / np.maximum(np.linalg.norm(decoder, axis=0), 1e-300)


def _weight_plots(frame: pd.DataFrame, threshold: float, needs: str, stem: str, title: str,
                  why_not: Callable[[pd.DataFrame, int], str | None],
                  draw: Callable[..., Plot]) -> list[Plot]:
    """One figure per k from the first seed's stored weight arrays (``needs``); a k that
    ``why_not`` refuses, or results without those arrays, come back skipped with the reason."""
    runs = first_seed_runs(frame, threshold, (needs,))
    if runs.empty:
        return [skipped(stem, title, NO_WEIGHTS)]
    plots = []
    for name, values, rows in per_k(runs, HISTORY_VARIANT, stem):
        reason = why_not(rows, int(values["k"]))
        plots.append(skipped(name, title, reason) if reason else draw(rows, values, name))
    return plots


def alignment_plots(frame: pd.DataFrame, threshold: float = 0.3) -> list[Plot]:
    """Figure 3 (left): cos(U_i, W2_j) as a heatmap per model; one figure per k."""
    def why_not(rows: pd.DataFrame, k: int) -> str | None:
        if k > MAX_HEATMAP_K:
            return f"k = {k} is above {MAX_HEATMAP_K}: a k x k heatmap would be unreadable"
        return None
    return _weight_plots(frame, threshold, "Uk_T_W2", "alignment", "U_k^T W2 heatmaps",
                         why_not, alignment_plot)


@styled
def alignment_plot(runs: pd.DataFrame, variant: dict[str, Any], name: str) -> Plot:
    ncols = min(len(runs), 4)
    nrows = math.ceil(len(runs) / ncols)
    fig, axes = new_figure(3.0 * ncols + 1.0, 3.0 * nrows + 0.6, nrows, ncols)
    series, image = {}, None
    for ax, (model, optimizer, rows) in zip(axes.ravel(), curves(runs)):
        cos = alignment_matrix(rows["history"].iloc[0])
        series[curve_name(model, optimizer)] = {"seed": int(rows["seed"].iloc[0]),
                                                "alignment": cos}
        k = cos.shape[0]   # extent: rows and columns numbered 1..k, as in the paper
        image = ax.imshow(cos, cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest",
                          extent=(0.5, k + 0.5, k + 0.5, 0.5))
        ax.set_title(curve_label(model, optimizer))
        ax.set_xlabel("decoder column j")
        ax.set_ylabel("eigenvector i")
        for axis in (ax.xaxis, ax.yaxis):   # units are numbered: integer ticks only
            axis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(False)
    for ax in axes.ravel()[len(series):]:
        ax.set_visible(False)
    fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.8, label="cos(U_i, W2_j)")
    fig.suptitle(f"Decoder against the eigenvectors, k = {variant['k']}: cos(U_i, W2_j); "
                 f"ordered principal components give a signed identity\n"
                 f"{_variant_text(variant)}")
    return Plot(name, f"U_k^T W2 per model (Figure 3), k = {variant['k']}", series, fig)


def decoder_image_plots(frame: pd.DataFrame, threshold: float = 0.3) -> list[Plot]:
    """Figure 3 (right): each decoder column as a square image, a row per model."""
    def why_not(rows: pd.DataFrame, k: int) -> str | None:
        m = int(rows["m"].iloc[0])
        if math.isqrt(m) ** 2 != m or k > MAX_HEATMAP_K:
            return f"needs square images (m = {m}) and k <= {MAX_HEATMAP_K} (k = {k})"
        return None
    return _weight_plots(frame, threshold, "W2_final", "decoder_columns",
                         "Decoder columns as images", why_not, decoder_image_plot)


@styled
def decoder_image_plot(runs: pd.DataFrame, variant: dict[str, Any], name: str) -> Plot:
    k, side = int(variant["k"]), math.isqrt(int(runs["m"].iloc[0]))
    fig, axes = new_figure(0.72 * k + 1.6, 0.8 * len(runs) + 0.7, len(runs), k)
    series = {}
    for row_axes, (model, optimizer, rows) in zip(axes, curves(runs)):
        W2 = np.asarray(rows["history"].iloc[0]["W2_final"], dtype=float)
        series[curve_name(model, optimizer)] = {"seed": int(rows["seed"].iloc[0]),
                                                "images": W2.T.reshape(k, side, side)}
        for j, ax in enumerate(row_axes):
            limit = float(np.abs(W2[:, j]).max()) or 1.0   # each column on its own scale
            ax.imshow(W2[:, j].reshape(side, side), cmap="RdBu_r", vmin=-limit, vmax=limit)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_frame_on(False)
        row_axes[0].set_ylabel(curve_label(model, optimizer), rotation=0, ha="right",
                               va="center", fontsize=8)
    for j, ax in enumerate(axes[0]):
        ax.set_title(f"{j + 1}", fontsize=8)
    fig.suptitle(f"Decoder columns W2[:, j] as images, j = 1..{k}; red positive, blue "
                 f"negative, each on its own scale\n{_variant_text(variant)}")
    return Plot(name, f"Decoder columns as images (Figure 3), k = {k}", series, fig)


# --- everything ---------------------------------------------------------------------------------

def all_plots(run_dirs: str | Path | Iterable[str | Path], threshold: float = 0.3,
              fit: bool = False) -> list[Plot]:
    """Every figure the stored results support (unsupported ones come back skipped)."""
    return plots_of_frame(load_results(run_dirs, threshold), threshold, fit)


def plots_of_frame(frame: pd.DataFrame, threshold: float = 0.3, fit: bool = False
                   ) -> list[Plot]:
    """``all_plots`` for records already loaded with ``stats.load_results``."""
    return [*scaling_plots(frame, threshold, fit), *timing_plots(frame, threshold),
            *speedup_plots(frame, threshold), *learning_curve_plots(frame, threshold),
            *alignment_plots(frame, threshold), *decoder_image_plots(frame, threshold)]


def write_plots(plots: Sequence[Plot], out_dir: str | Path) -> list[Path]:
    """Save every drawn plot as PNG and SVG; return the files written."""
    return [path for plot in plots if plot.figure is not None for path in plot.save(out_dir)]
