"""The epoch loop: batching, formulations, thresholds, statuses, namespaces, backends."""
from __future__ import annotations

import numpy as np
import pytest

import lae_core
from lae_core import Schedule, run_batch
from lae_core.backend import BackendError, backend_name, cupy_available, get_namespace
from lae_core.train import ConfigurationError, choose_formulation, initial_weights

MODELS = lae_core.MODELS
HISTORY = Schedule(thresholds=(0.5, 0.3), max_epochs=200, eval_every=10, history=True)
LR = {"sgd_nesterov": 0.02, "adam": 0.01, "gd": 0.05}


def lr_for(model: str, optimizer: str) -> float:
    return LR[optimizer] / (4 if model == "rotation" else 1)


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("optimizer", ["sgd_nesterov", "adam"])
def test_a_batch_gives_exactly_the_single_runs(small_data, model, optimizer):
    seeds, lrs = [5, 6, 7], [lr_for(model, optimizer) * f for f in (1.0, 0.5, 2.0)]
    batch = run_batch(small_data, model, optimizer, 3, lrs, seeds, schedule=HISTORY,
                      backend="numpy")
    for run, seed, lr in zip(batch.runs, seeds, lrs):
        single = run_batch(small_data, model, optimizer, 3, [lr], [seed], schedule=HISTORY,
                           backend="numpy").runs[0]
        assert (run.status, run.epochs, run.epochs_to) == (single.status, single.epochs,
                                                           single.epochs_to)
        for a, b in zip(run.params, single.params):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(run.history["d_align"], single.history["d_align"])


@pytest.mark.parametrize("optimizer", ["gd", "sgd_nesterov"])
@pytest.mark.parametrize("model", ["uniform_sum", "non_uniform_sum", "rotation", "nd_exp", "vae"])
def test_spectral_trajectory_is_the_rotated_dense_trajectory(small_data, model, optimizer):
    """200 epochs: the eigenbasis run equals the dense run to 1e-9 for equivariant optimizers."""
    schedule = Schedule(thresholds=(), max_epochs=200, eval_every=1, history=True)
    runs = {form: run_batch(small_data, model, optimizer, 3, [lr_for(model, optimizer)], [11],
                            schedule=schedule, backend="numpy", formulation=form).runs[0]
            for form in ("spectral", "covariance")}
    for name in ("d_align", "d_sub", "recon", "objective"):
        np.testing.assert_allclose(runs["spectral"].history[name],
                                   runs["covariance"].history[name], rtol=1e-9, atol=1e-13)
    for a, b in zip(runs["spectral"].params, runs["covariance"].params):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-13 * np.abs(b).max())


def test_thresholds_record_the_first_evaluated_epoch(small_data):
    batch = run_batch(small_data, "nd_exp", "sgd_nesterov", 2, [0.02], [1],
                      schedule=Schedule(thresholds=(0.5, 0.3, 0.1), max_epochs=20000,
                                        eval_every=10, history=True), backend="numpy")
    run = batch.runs[0]
    hist = run.history
    assert run.status == "reached" and batch.formulation == "spectral"
    for t, epoch in run.epochs_to.items():
        first = hist["epoch"][np.argmax(hist["d_align"] <= t)]
        assert epoch == first and epoch % 10 == 0
    assert run.epochs == run.epochs_to[0.1] == hist["epoch"][-1]  # stops at the lowest one
    assert run.epochs_to[0.5] <= run.epochs_to[0.3] <= run.epochs_to[0.1]


def test_a_diverging_run_is_stopped_without_touching_the_others(small_data):
    batch = run_batch(small_data, "uniform_sum", "sgd_nesterov", 3, [0.02, 50.0], [1, 1],
                      schedule=Schedule(max_epochs=300), backend="numpy")
    good, bad = batch.runs
    assert bad.status == "diverged" and bad.epochs < 300
    assert good.status in ("reached", "capped") and np.isfinite(good.final["d_align"])
    alone = run_batch(small_data, "uniform_sum", "sgd_nesterov", 3, [0.02], [1],
                      schedule=Schedule(max_epochs=300), backend="numpy").runs[0]
    np.testing.assert_array_equal(good.params[1], alone.params[1])


def test_a_capped_run_is_censored(small_data):
    run = run_batch(small_data, "rotation", "sgd_nesterov", 3, [1e-4], [1],
                    schedule=Schedule(max_epochs=30), backend="numpy").runs[0]
    assert run.status == "capped" and run.epochs == 30 and run.epochs_to == {0.3: None}
    assert set(run.final) == {"d_align", "d_sub", "transpose", "recon", "objective", "loss"}


@pytest.mark.parametrize("model", MODELS)
def test_every_namespace_gives_the_numpy_results(xp, small_data, model):
    """The core runs unchanged on array-api-strict (and CuPy where a device exists)."""
    optimizer = "adam" if model == "nd" else "sgd_nesterov"
    kwargs = dict(schedule=HISTORY, dtype="float64")
    ours = run_batch(small_data, model, optimizer, 3, [0.01, 0.02], [1, 2], backend=xp, **kwargs)
    ref = run_batch(small_data, model, optimizer, 3, [0.01, 0.02], [1, 2], backend="numpy",
                    **kwargs)
    assert ours.backend == backend_name(xp)   # ran where it was asked to, no fall-back
    for a, b in zip(ours.runs, ref.runs):
        assert a.epochs_to == b.epochs_to
        np.testing.assert_allclose(a.history["d_align"], b.history["d_align"], rtol=1e-10)


def test_float32_follows_float64(small_data):
    runs = {dt: run_batch(small_data, "rotation", "adam", 3, [0.01], [4], dtype=dt,
                          schedule=HISTORY, backend="numpy").runs[0]
            for dt in ("float32", "float64")}
    np.testing.assert_allclose(runs["float32"].history["d_align"],
                               runs["float64"].history["d_align"], atol=1e-3)


def test_same_seed_same_starting_numbers():
    a, b = initial_weights(3, 4, 20), initial_weights(3, 4, 20)
    np.testing.assert_array_equal(a[0], b[0])
    assert a[0].shape == (4, 20) and a[1].shape == (20, 4)
    assert 5e-5 < a[0].std() < 2e-4
    assert not np.array_equal(initial_weights(4, 4, 20)[0], a[0])


def test_formulation_is_chosen_by_the_optimizer():
    assert choose_formulation("rotation", "sgd_nesterov") == "spectral"
    assert choose_formulation("rotation", "gd") == "spectral"
    assert choose_formulation("rotation", "adam") == "covariance"
    assert choose_formulation("nd", "sgd_nesterov") == "sample"
    assert choose_formulation("vae", "adam", "sample") == "sample"
    with pytest.raises(ConfigurationError, match="exact only"):
        choose_formulation("rotation", "adam", "spectral")
    with pytest.raises(ConfigurationError, match="needs the samples"):
        choose_formulation("nd", "adam", "covariance")


def test_the_auto_backend_and_a_forced_cupy_backend():
    name = "cupy" if cupy_available() else "numpy"
    assert get_namespace("auto").__name__.endswith(name)
    if not cupy_available():
        with pytest.raises(BackendError, match="'cupy' cannot run here"):
            get_namespace("cupy")
    with pytest.raises(BackendError, match="not one of"):
        get_namespace("tpu")


def test_decaying_units_are_flushed_to_zero_not_left_subnormal(small_data):
    """lam_k far above c_1 drives the last unit to zero; in float32 it would pass through the
    subnormal range (up to ~100x slower arithmetic). It must end exactly zero, and no entry
    may sit between zero and the flush floor."""
    lam = np.array([0.01, 0.02, 10 * small_data.eigvals[0]])
    run = run_batch(small_data, "non_uniform_sum", "sgd_nesterov", 3, [0.002], [0],
                    schedule=Schedule(thresholds=(), max_epochs=3000), dtype="float32",
                    formulation="covariance", backend="numpy",
                    hyperparameters={"lam": lam}).runs[0]
    W1, W2 = run.params
    floor = np.finfo(np.float32).smallest_normal ** (1 / 3)
    assert run.status == "capped" and np.all(W1[2] == 0) and np.all(W2[:, 2] == 0)
    for W in (W1, W2):
        assert not np.any((W != 0) & (np.abs(W) < floor))
    assert np.abs(W1[:2]).max() > 0.1  # the other units were left alone
