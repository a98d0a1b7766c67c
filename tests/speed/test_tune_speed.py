"""Learning-rate tuning, the speed accounting and the GPU check's pieces (CPU only)."""
from __future__ import annotations

import numpy as np
import pytest

from lae_core import Schedule, run_batch, synthetic
from bench.perf.speed import batch_scaling, dominant_shape, epoch_flops, speed_row
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


def test_log_grid():
    np.testing.assert_allclose(log_grid(1e-4, 1e-2, 3), [1e-4, 1e-3, 1e-2])


def test_flop_counts_follow_the_formulations():
    k, m, n = 10, 100, 500
    assert epoch_flops("uniform_sum", "spectral", k, m, n) == 8 * k * k * m
    assert epoch_flops("rotation", "spectral", k, m, n) == 12 * k * k * m
    assert epoch_flops("uniform_sum", "covariance", k, m, n) == 8 * k * k * m + 4 * k * m * m
    assert dominant_shape("vae", "covariance", k, m, n) == ((2 * k, m), (m, m))


def test_speed_row_and_batch_scaling_measure_something(data):
    row = speed_row(data, "rotation", "adam", 3, blocks=3)
    assert row.formulation == "covariance" and row.epoch_s > 0 and row.gemm_gflops > 0
    assert row.bound_ratio == pytest.approx(row.epoch_s / (row.gflop / row.gemm_gflops))
    scaling = batch_scaling(data, k=3, runs=4, blocks=3)
    assert scaling.cost_ratio > 0 and scaling.throughput_gain == pytest.approx(
        4 / scaling.cost_ratio)
