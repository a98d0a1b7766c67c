"""Why it scales as it does: the Hessian's conditioning at the optimum against k, beside the
epochs to threshold a run directory measured (``lae-bench hessian``).

For each model of ``lae_core.hessian.HESSIAN_MODELS`` and each k: the Rayleigh-quotient lower
bound on the condition number (closed form, any m and k), and the exact extreme eigenvalues by
Lanczos while a time budget lasts (k ascending; once a k runs out of time, larger k are not
tried). Slopes are least-squares fits of log(value) on log(k). The measured side comes from
stored records only (``stats.cell_summary``), the best learning rate of each cell.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from lae_core import Dataset
from lae_core.hessian import (BudgetExceeded, HessianError, HessianProblem, lanczos_extremes,
                              optimum_scales, rayleigh_bound)
from lae_core.hyper import preset_hyperparameters

from ..formatting import format_seconds
from ..sweep.config import SweepConfig
from ..analysis.plotkit import (MODEL_COLOURS, Plot, best_lr_summary, curve_label, curves,
                                line_style, log_k_axis, new_figure, styled)
from ..analysis.stats import load_results

LANCZOS_TOL = 1e-6


@dataclass
class ConditionRow:
    """One (model, k): the bound (always), Lanczos' extremes (where the budget allowed)."""

    model: str
    k: int
    m: int
    preset: str                      # the hyperparameter preset analysed
    radial_max: float
    rotation_min: float
    bound: float
    largest: float | None = None
    smallest: float | None = None
    exact: float | None = None
    lanczos: str = "not tried"      # "exact", "over budget", "budget spent", "not tried"
    products: int = 0
    seconds: float = 0.0


def cell_hyperparameters(config: SweepConfig, model: str, k: int, dataset: Dataset
                         ) -> tuple[dict[str, Any], str]:
    """The config's hyperparameters of (model, k), or the well_posed preset's where the
    config's have no minimum with k units (the paper's non_uniform_sum at m = 1000)."""
    hp = config.hyperparameters.resolve(model, k, dataset, config.data.kind)
    try:
        optimum_scales(model, dataset.eigvals[:k], hp)
        return hp, config.hyperparameters.preset
    except HessianError:
        return preset_hyperparameters(model, k, dataset.m, preset="well_posed",
                                      eigvals=dataset.eigvals), "well_posed"


def condition_row(config: SweepConfig, dataset: Dataset, model: str, k: int) -> ConditionRow:
    """The Rayleigh-quotient bound of one (model, k)."""
    hp, preset = cell_hyperparameters(config, model, k, dataset)
    high, low, bound = rayleigh_bound(model, dataset.eigvals[:k], hp)
    return ConditionRow(model, k, dataset.m, preset, high, low, bound)


def add_exact(row: ConditionRow, problem: HessianProblem, budget_s: float) -> None:
    """Lanczos' extremes into ``row`` within ``budget_s`` seconds (else 'over budget')."""
    started = time.perf_counter()
    try:
        ex = lanczos_extremes(problem, budget_s, tol=LANCZOS_TOL)
    except BudgetExceeded:
        row.lanczos, row.seconds = "over budget", time.perf_counter() - started
        return
    row.largest, row.smallest, row.exact = ex.largest, ex.smallest, ex.condition
    row.lanczos, row.products, row.seconds = "exact", ex.products, ex.seconds


def conditioning(config: SweepConfig, dataset: Dataset, models: Sequence[str],
                 ks: Sequence[int], budget_s: float, xp: Any = None) -> list[ConditionRow]:
    """Every (model, k): bounds for all, Lanczos in k order while ``budget_s`` lasts (shared
    by all models, split evenly between those still trying)."""
    rows = {m: [condition_row(config, dataset, m, k) for k in sorted(ks)] for m in models}
    deadline = time.perf_counter() + budget_s
    trying = list(models)
    for i in range(len(ks)):
        for model in list(trying):
            left = deadline - time.perf_counter()
            row = rows[model][i]
            if left <= 0:
                row.lanczos = "budget spent"
                continue
            hp, _ = cell_hyperparameters(config, model, row.k, dataset)
            add_exact(row, HessianProblem(model, dataset.eigvals, row.k, hp, xp=xp),
                      left / len(trying))
            if row.lanczos != "exact":
                trying.remove(model)
        for model in models:
            if model not in trying and rows[model][i].lanczos == "not tried":
                rows[model][i].lanczos = "budget spent"
    return [r for m in models for r in rows[m]]


# --- slopes and the measured side ---------------------------------------------------------------

def loglog_slope(k: Sequence[float], values: Sequence[float | None]) -> float | None:
    """Least-squares slope of log(value) on log(k) over finite positive values (None if < 2)."""
    pairs = [(x, y) for x, y in zip(k, values)
             if y is not None and np.isfinite(y) and y > 0]
    if len(pairs) < 2:
        return None
    x, y = np.log(np.array(pairs, dtype=float)).T
    return float(np.polyfit(x, y, 1)[0])


def measured_epochs(run_dir: str | Path, threshold: float) -> pd.DataFrame:
    """Median epochs to ``threshold`` per (model, optimizer, k) at each cell's best rate:
    columns model, optimizer, k, epochs_median (inf = censored), runs."""
    summary = best_lr_summary(load_results([run_dir], threshold, "--runs"), threshold)
    return summary[["model", "optimizer", "k", "epochs_median", "censored", "runs",
                    "max_epochs", "data_id", "backend", "device", "dtype"]]


def slopes(rows: Sequence[ConditionRow], measured: pd.DataFrame | None) -> dict[str, float | None]:
    """'MODEL bound', 'MODEL exact' and 'MODEL/OPTIMIZER epochs' -> fitted log-log slope."""
    out: dict[str, float | None] = {}
    for model in dict.fromkeys(r.model for r in rows):
        mine = [r for r in rows if r.model == model]
        out[f"{model} bound"] = loglog_slope([r.k for r in mine], [r.bound for r in mine])
        out[f"{model} exact"] = loglog_slope([r.k for r in mine], [r.exact for r in mine])
    if measured is not None:
        for model, optimizer, group in curves(measured):
            values = group["epochs_median"].where(~group["censored"], np.nan)
            out[f"{model}/{optimizer} epochs"] = loglog_slope(group["k"].tolist(),
                                                              values.tolist())
            out.update(_same_k_slopes(rows, model, optimizer, group[~group["censored"]]))
    return out


def _same_k_slopes(rows: Sequence[ConditionRow], model: str, optimizer: str,
                   reached: pd.DataFrame) -> dict[str, float | None]:
    """The bound's and exact slopes over the k a measured curve reached (its own range: a
    slope over k = 2..500 says little of a curve that stops at k = 5)."""
    ks = set(reached["k"].astype(int))
    mine = [r for r in rows if r.model == model and r.k in ks]
    if len(mine) < 2:
        return {}
    return {f"{model} bound, k of {model}/{optimizer}":
            loglog_slope([r.k for r in mine], [r.bound for r in mine]),
            f"{model} exact, k of {model}/{optimizer}":
            loglog_slope([r.k for r in mine], [r.exact for r in mine])}


# --- output -------------------------------------------------------------------------------------

def _number(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return "inf" if math.isinf(value) else f"{value:.3g}"


def render_text(rows: Sequence[ConditionRow], measured: pd.DataFrame | None,
                fitted: dict[str, float | None], budget_s: float, threshold: float) -> str:
    """The table of conditioning (and measured epochs) per (model, k), then the slopes."""
    lines = [f"Hessian conditioning at the closed-form optimum (m = {rows[0].m}); exact "
             f"extremes by Lanczos within a {format_seconds(budget_s)} budget",
             f"{'model':<16} {'k':>4} {'preset':<10} {'radial':>8} {'rotation':>9} "
             f"{'bound':>9} {'exact':>9} {'lam_max':>8} {'lam_min':>9}  lanczos"]
    for r in rows:
        status = (f"exact ({r.products} products, {format_seconds(r.seconds)})"
                  if r.lanczos == "exact" else r.lanczos)
        lines.append(f"{r.model:<16} {r.k:>4} {r.preset:<10} {_number(r.radial_max):>8} "
                     f"{_number(r.rotation_min):>9} {_number(r.bound):>9} "
                     f"{_number(r.exact):>9} {_number(r.largest):>8} {_number(r.smallest):>9}"
                     f"  {status}")
    if measured is not None and not measured.empty:
        lines += ["", f"measured epochs to d_align {threshold} (median over seeds, best rate; "
                  "'>' = censored at the cap)"]
        for model, optimizer, group in curves(measured):
            cells = [f"k={int(k)}: " + (f">{int(cap)}" if cens else f"{med:.0f}")
                     for k, med, cens, cap in group[["k", "epochs_median", "censored",
                                                     "max_epochs"]].itertuples(index=False)]
            lines.append(f"  {model}/{optimizer}: " + ", ".join(cells))
    lines += ["", "log-log slopes against k (least squares over finite values):"]
    width = max(map(len, fitted), default=0)
    lines += [f"  {name:<{width}}  {'-' if s is None else f'{s:.2f}'}"
              for name, s in fitted.items()]
    return "\n".join(lines) + "\n"


@styled
def conditioning_plot(rows: Sequence[ConditionRow], measured: pd.DataFrame | None,
                      fitted: dict[str, float | None], threshold: float) -> Plot:
    """Left: condition number against k (bound: line, exact: markers). Right: measured epochs
    to threshold against k. Both log-log, slopes in the legends."""
    fig, axes = new_figure(11.5, 4.8, 1, 2)
    left, right = axes[0]
    series: dict[str, Any] = {}
    for model in dict.fromkeys(r.model for r in rows):
        mine = [r for r in rows if r.model == model]
        k = [r.k for r in mine]
        colour = MODEL_COLOURS.get(model, "0.3")
        left.plot(k, [r.bound for r in mine], color=colour, marker="o", markersize=3,
                  label=f"{model} bound, slope {_number(fitted.get(f'{model} bound'))}")
        exact = [(r.k, r.exact) for r in mine if r.exact is not None]
        if exact:
            left.plot(*zip(*exact), color=colour, marker="s", linestyle="none",
                      markerfacecolor="none",
                      label=f"{model} exact, slope {_number(fitted.get(f'{model} exact'))}")
        series[model] = {"k": k, "bound": [r.bound for r in mine],
                         "exact": [r.exact for r in mine]}
    _loglog(left, [r.k for r in rows], "condition number of the Hessian")
    left.set_title("Hessian at the optimum: Rayleigh bound and Lanczos", fontsize=9.5)
    if measured is not None and not measured.empty:
        for model, optimizer, group in curves(measured):
            done = group[~group["censored"] & (group["epochs_median"] > 0)]
            label = (f"{curve_label(model, optimizer)}, slope "
                     f"{_number(fitted.get(f'{model}/{optimizer} epochs'))}")
            right.plot(done["k"], done["epochs_median"], marker="o", markersize=3,
                       label=label, **line_style(model, optimizer))
            series[f"{model}/{optimizer} epochs"] = {"k": done["k"].tolist(),
                                                     "median": done["epochs_median"].tolist()}
        _loglog(right, measured["k"], f"epochs to d_align ≤ {threshold} (median)")
        right.set_title("measured (censored cells left out)", fontsize=9.5)
    else:
        right.set_axis_off()
        right.text(0.5, 0.5, "no run directory given (--runs)", ha="center", va="center")
    return Plot("hessian_conditioning", "Hessian conditioning and measured epochs against k",
                series, fig)


def _loglog(ax, ks, ylabel: str) -> None:
    log_k_axis(ax, ks)
    if any(np.any(np.asarray(line.get_ydata(), float) > 0) for line in ax.get_lines()):
        ax.set_yscale("log")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7.5)


def write_outputs(rows: Sequence[ConditionRow], measured: pd.DataFrame | None,
                  fitted: dict[str, float | None], threshold: float, out: Path) -> list[Path]:
    """hessian.csv (one row per model and k), hessian.json (rows, slopes, measured) and the
    plot (PNG and SVG) into ``out``."""
    frame = pd.DataFrame([asdict(r) for r in rows])
    frame.to_csv(out / "hessian.csv", index=False)
    payload = {"rows": [_jsonable(asdict(r)) for r in rows], "slopes": fitted,
               "measured": [] if measured is None else
               [_jsonable(r) for r in measured.to_dict(orient="records")]}
    (out / "hessian.json").write_text(json.dumps(payload, indent=1) + "\n")
    return [out / "hessian.csv", out / "hessian.json",
            *conditioning_plot(rows, measured, fitted, threshold).save(out)]


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    """Non-finite numbers as null (JSON has none), numpy scalars as Python ones."""
    def one(v):
        if isinstance(v, (np.generic,)):
            v = v.item()
        return None if isinstance(v, float) and not math.isfinite(v) else v
    return {key: one(v) for key, v in row.items()}
