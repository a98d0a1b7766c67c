"""Shared by the step tests: a step of any kind built from seeded initial weights."""
from __future__ import annotations

import numpy as np

from lae_core import backend as be
from lae_core.hyper import device_hyperparameters, preset_hyperparameters
from lae_core.objectives import get_objective
from lae_core.operators import into_basis, make_operator
from lae_core.optim import Optimizer, get_optimizer
from lae_core.train import initial_weights

LR = {"gd": 0.02, "sgd_nesterov": 0.005, "adam": 0.003}
K, SEEDS = 4, (1, 2, 3)


def build(kind, data, model: str, optimizer: str | Optimizer, form: str, dtype="float64",
          backend="numpy", **kwargs):
    """A step of ``kind`` for three runs (rates 1, 1/2 and 2 times the optimizer's), from the
    seeded initial weights (paper scale). ``optimizer``: a name or an ``Optimizer``."""
    xp = be.get_namespace(backend)
    dt = be.dtype_of(xp, dtype)
    objective = get_objective(model)
    opt = get_optimizer(optimizer)
    op = make_operator(form, xp, data, K, dt)
    W1, W2 = (np.stack(w) for w in zip(*[initial_weights(s, K, data.m) for s in SEEDS]))
    params = into_basis(form, data, W1, W2)
    if objective.extra_params:
        params += objective.extra_params(K, len(SEEDS))
    lrs = LR[opt.name] * np.array([1.0, 0.5, 2.0]) / (4 if model == "rotation" else 1)
    hp = device_hyperparameters(xp, preset_hyperparameters(model, K, data.m), dt)
    return kind(op, objective, opt, hp, tuple(be.to_device(xp, p, dt) for p in params),
                be.to_device(xp, lrs, dt), be.flush_floor(xp, dt), **kwargs)
