"""Microbenchmarks of one epoch (one gradient + one optimizer update) per model, optimizer and k.

Run them alone, on an otherwise idle machine (two BLAS-heavy processes slow each other many
times over):

    pytest tests/benchmarks --benchmark-only
    pytest tests/benchmarks --benchmark-only --benchmark-save=NAME     # keep for comparison
    pytest tests/benchmarks --benchmark-only --benchmark-compare       # against the last save

The default test run skips them (``--benchmark-skip`` in pyproject's addopts) before any fixture
runs, so they cost nothing there. The data (m = 1000, n = 5000, the paper's synthetic preset
size) is built once per module, on first use. An epoch is composed as in ``lae_core.train``:
the formulation the loop would choose, the objective's gradients on the covariance operator,
then the optimizer's update, one run (r = 1) in float64 on NumPy.
"""
from __future__ import annotations

import numpy as np
import pytest

from lae_core import backend as be
from lae_core.data import synthetic
from lae_core.hyper import device_hyperparameters, preset_hyperparameters
from lae_core.objectives import MODELS, draw_cutoffs, get_objective
from lae_core.operators import into_basis, make_operator
from lae_core.optim import get_optimizer
from lae_core.train import choose_formulation, initial_weights, seed_streams

M, N = 1000, 5000
KS = (2, 10, 100)
OPTIMIZERS = ("sgd_nesterov", "adam")   # the paper's two
LR = {"sgd_nesterov": 1e-3, "adam": 3e-3}


@pytest.fixture(scope="module")
def dataset():
    return synthetic(m=M, n=N, seed=1234)


@pytest.fixture(scope="module")
def xp():
    return be.get_namespace("numpy")


def epoch_inputs(xp, dataset, model: str, optimizer: str, k: int):
    """Everything one epoch needs, on the device: (step, params, state)."""
    objective, opt = get_objective(model), get_optimizer(optimizer)
    form = choose_formulation(model, optimizer)
    dtype = be.dtype_of(xp, "float64")
    op = make_operator(form, xp, dataset, k, dtype)
    hp_host = preset_hyperparameters(model, k, M)
    hp = device_hyperparameters(xp, hp_host, dtype)
    W1, W2 = initial_weights(0, k, M)
    host = into_basis(form, dataset, W1[None], W2[None])
    host += objective.extra_params(k, 1) if objective.extra_params else ()
    params = tuple(be.to_device(xp, p, dtype) for p in host)
    noise = None
    if objective.stochastic:   # one epoch of nested-dropout cut-offs, drawn once
        cutoffs = draw_cutoffs([seed_streams(0)[1]], 1, N, hp_host["keep_probs"])
        noise = be.to_device(xp, cutoffs[0])
    lr = be.to_device(xp, np.array([LR[optimizer]]), dtype)

    def step(params, state):
        grads = objective.grads(op, params, hp, noise)
        return opt.update(grads, state, params, lr)
    return step, params, opt.init(params)


@pytest.mark.parametrize("k", KS, ids=lambda k: f"k{k}")
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("model", MODELS)
def test_one_epoch(benchmark, xp, dataset, model, optimizer, k):
    step, params, state = epoch_inputs(xp, dataset, model, optimizer, k)
    benchmark.group = f"k={k}"
    benchmark.extra_info.update(model=model, optimizer=optimizer, k=k, m=M, n=N,
                                formulation=choose_formulation(model, optimizer))
    new_params, _ = benchmark(step, params, state)
    assert all(np.all(np.isfinite(be.to_host(p))) for p in new_params)
