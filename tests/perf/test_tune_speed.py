"""Learning-rate tuning, the speed accounting and the GPU check's pieces (CPU only)."""
from __future__ import annotations

import array_api_compat.numpy as xnp
import numpy as np
import pytest

from lae_core import FORMULATIONS, MODELS, Schedule, get_objective, run_batch, synthetic
from lae_core.hyper import (device_hyperparameters, preset_hyperparameters,
                            validate_hyperparameters)
from lae_core.operators import into_basis, make_operator
from bench.sweep.lr_table import LrTable, load_table, save_table
from bench.perf.speed import batch_scaling, speed_row
from bench.sweep.flops import epoch_flops
from bench.perf.tune import RateScore, best_rate, log_grid, tune_cell

SCHEDULE = Schedule(thresholds=(0.3,), max_epochs=4000, eval_every=10)


@pytest.fixture(scope="module")
def data():
    return synthetic(m=12, n=200, seed=5, high=4.0, low=0.5)


def test_tuning_picks_the_rate_that_brute_force_finds(data):
    grid = [3e-3, 1e-2, 3e-2, 1e-1, 3.0]
    seeds = [1, 2, 3]
    tuned = tune_cell(data, "uniform_sum", "gd", 2, grid, seeds, schedule=SCHEDULE,
                      backend="numpy", hyperparameters={"lam": 0.01})
    medians = {}
    for lr in grid:  # each rate on its own, outside any batch
        runs = run_batch(data, "uniform_sum", "gd", 2, [lr] * 3, seeds, schedule=SCHEDULE,
                         backend="numpy", hyperparameters={"lam": 0.01}).runs
        ok = [r.epochs_to[0.3] or np.inf for r in runs if r.status != "diverged"]
        medians[lr] = np.median(ok) if ok else np.inf
    assert medians[3.0] == np.inf                      # that rate diverges: excluded
    assert tuned.best_lr == min(medians, key=medians.get) and tuned.reached
    # gradient descent below its stability limit: faster the larger the rate
    assert tuned.best_lr == 1e-1
    assert [s.median_epochs for s in tuned.scores] == [medians[lr] for lr in grid]


def test_unreached_cells_keep_the_lowest_final_alignment():
    scores = [RateScore(1e-3, np.inf, 0.5, 0, 3), RateScore(1e-2, np.inf, 0.4, 0, 3),
              RateScore(1e-1, np.inf, np.inf, 3, 3)]
    assert best_rate(scores) == (1e-2, False)
    assert best_rate([RateScore(1.0, np.inf, np.inf, 2, 2)]) == (1.0, False)


def test_a_tuned_grid_survives_a_table_file_exactly(tmp_path):
    """Rates off the decimal grid (10^-4.5, ...) must come back bit for bit from the table a
    config reads (`lr: tuned:FILE`), or the tuned rate is not the rate that was tuned."""
    grid = [float(v) for v in log_grid(1e-5, 1e-1, 9)]
    rates = {("rotation", "adam"): dict(zip(range(2, 20, 2), grid))}
    for suffix in (".yaml", ".csv"):
        path = tmp_path / f"table{suffix}"
        save_table(LrTable(source=str(path), rates=rates), path)
        assert load_table(path).rates == rates


class Counting(np.ndarray):
    """An array that adds up the floating-point operations of every matmul it takes part in."""

    flops = 0

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if ufunc is np.matmul and method == "__call__":
            a, b = (np.asarray(x) for x in inputs[:2])
            batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
            Counting.flops += 2 * int(np.prod(batch)) * a.shape[-2] * a.shape[-1] * b.shape[-1]
        plain = [x.view(np.ndarray) if isinstance(x, Counting) else x for x in inputs]
        outs = kwargs.get("out")
        if outs:   # in-place updates (g1 -= ...): write into the plain views
            kwargs["out"] = tuple(o.view(np.ndarray) if isinstance(o, Counting) else o
                                  for o in outs)
        result = getattr(ufunc, method)(*plain, **kwargs)
        if outs:
            return outs[0] if len(outs) == 1 else outs
        return result.view(Counting) if isinstance(result, np.ndarray) else result


def counted_gradient_flops(data, model: str, form: str, k: int) -> int:
    """Matmul flops of one gradient evaluation of one run, counted as the arrays multiply."""
    objective = get_objective(model)
    op = make_operator(form, xnp, data, k, np.float64)
    for name, value in list(vars(op).items()):
        if isinstance(value, np.ndarray):
            setattr(op, name, value.view(Counting))
    rng = np.random.default_rng(0)
    W1, W2 = into_basis(form, data, rng.standard_normal((1, k, data.m)),
                        rng.standard_normal((1, data.m, k)))
    params = (W1, W2) + (objective.extra_params(k, 1) if objective.extra_params else ())
    hp = preset_hyperparameters(model, k, data.m, preset="well_posed", eigvals=data.eigvals)
    hp = device_hyperparameters(xnp, validate_hyperparameters(model, hp, k), np.float64)
    noise = (np.full((1, data.n), k - 1, dtype=np.int32),) if objective.stochastic else ()
    Counting.flops = 0
    objective.grads(op, tuple(p.view(Counting) for p in params), hp, *noise)
    return Counting.flops


@pytest.mark.parametrize("model", MODELS)
def test_flop_counts_are_the_products_an_epoch_really_makes(model):
    """epoch_flops against the products the objective's gradient actually multiplies, counted
    by an array type that sees every matmul (the k^2 terms of the sample form are left out of
    the formula: within 5 %)."""
    k, data = 6, synthetic(m=40, n=300, seed=1)
    forms = ("sample",) if get_objective(model).needs_samples else FORMULATIONS
    for form in forms:
        counted = counted_gradient_flops(data, model, form, k)
        assert epoch_flops(model, form, k, data.m, data.n) == pytest.approx(counted, rel=0.05), form


def test_speed_row_and_batch_scaling_measure_something(data):
    """Physical bounds that a unit slip (flops for gigaflops, per run for per batch) breaks:
    an epoch cannot run much faster than its products at the throughput measured beside it,
    and a batch of 4 seeds cannot cost much less than one run nor gain more than 4x."""
    row = speed_row(data, "rotation", "adam", 3, blocks=3)
    assert row.formulation == "covariance"
    assert row.gflop == pytest.approx(counted_gradient_flops(data, "rotation", "covariance", 3)
                                      / 1e9, rel=0.05)
    assert row.bound_ratio > 0.3
    scaling = batch_scaling(data, k=3, runs=4, blocks=3)
    assert scaling.cost_ratio > 0.5 and scaling.throughput_gain < 4 * 1.5
