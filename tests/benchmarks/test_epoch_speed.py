"""Microbenchmarks of the training step users run: one evaluation block of epochs per model,
optimizer and k, on the step ``run_batch`` chooses (``train.make_step('auto', ...)``: the
compiled or packed step where it can run, the reference step for stochastic nested dropout).

Run them alone, on an otherwise idle machine (two BLAS-heavy processes slow each other many
times over):

    pytest tests/benchmarks --benchmark-only
    pytest tests/benchmarks --benchmark-only --benchmark-save=NAME     # keep for comparison
    pytest tests/benchmarks --benchmark-only --benchmark-compare       # against the last save

The default test run skips them (``--benchmark-skip`` in pyproject's addopts) before any fixture
runs, so they cost nothing there. The data (m = 1000, n = 5000, the paper's synthetic preset
size) is built once per module, on first use. A block is what the epoch loop runs between two
evaluations: ``EVERY`` epochs and the optimizer state's flush, one run (r = 1) in float64 on
NumPy, from the formulation the loop would choose. ``extra_info`` names the step that ran; a
benchmark's time divided by ``EVERY`` is the time of one epoch.
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
from lae_core.train import choose_formulation, initial_weights, make_step, seed_streams

M, N = 1000, 5000
KS = (2, 10, 100)
EVERY = 10                              # epochs per block, the sweeps' default eval_every
OPTIMIZERS = ("sgd_nesterov", "adam")   # the paper's two
LR = {"sgd_nesterov": 1e-3, "adam": 3e-3}


@pytest.fixture(scope="module")
def dataset():
    return synthetic(m=M, n=N, seed=1234)


@pytest.fixture(scope="module")
def xp():
    return be.get_namespace("numpy")


def block_inputs(xp, dataset, model: str, optimizer: str, k: int):
    """The step ``run_batch`` would train with, and one block's nested-dropout cut-offs."""
    objective = get_objective(model)
    form = choose_formulation(model, optimizer)
    dtype = be.dtype_of(xp, "float64")
    op = make_operator(form, xp, dataset, k, dtype)
    hp_host = preset_hyperparameters(model, k, M)
    W1, W2 = initial_weights(0, k, M)
    host = into_basis(form, dataset, W1[None], W2[None])
    host += objective.extra_params(k, 1) if objective.extra_params else ()
    step = make_step("auto", op, objective, get_optimizer(optimizer),
                     device_hyperparameters(xp, hp_host, dtype),
                     tuple(be.to_device(xp, p, dtype) for p in host),
                     be.to_device(xp, np.array([LR[optimizer]]), dtype),
                     be.flush_floor(xp, dtype))
    cutoffs = None
    if objective.stochastic:   # one block of nested-dropout cut-offs, drawn once
        cutoffs = draw_cutoffs([seed_streams(0)[1]], EVERY, N, hp_host["keep_probs"])
    return step, cutoffs


@pytest.mark.parametrize("k", KS, ids=lambda k: f"k{k}")
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("model", MODELS)
def test_one_block(benchmark, xp, dataset, model, optimizer, k):
    step, cutoffs = block_inputs(xp, dataset, model, optimizer, k)
    benchmark.group = f"k={k}"
    benchmark.extra_info.update(model=model, optimizer=optimizer, k=k, m=M, n=N,
                                epochs=EVERY, step=type(step).__name__,
                                formulation=choose_formulation(model, optimizer))
    benchmark(step.run, EVERY, cutoffs)
    assert np.all(step.evaluate()[1])
