"""Optimizers with torch.optim's exact update rules, as pure (init, update) pairs.

``init(params) -> state``; ``update(grads, state, params, lr) -> (new_params, new_state)``.
Parameters, gradients and state are tuples of arrays whose leading axis is the run axis r;
``lr`` is an (r,) array, one learning rate per run. Nothing is mutated.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, NamedTuple

OPTIMIZERS = ("gd", "sgd_nesterov", "adam")
# Optimizers whose update commutes with an orthogonal change of basis: the spectral
# formulation reproduces their dense trajectories exactly.
ROTATION_EQUIVARIANT = ("gd", "sgd_nesterov")


def per_run(lr: Any, p: Any) -> Any:
    """Reshape an (r,) array to broadcast against a parameter of shape (r, ...)."""
    return lr[(slice(None),) + (None,) * (p.ndim - 1)]


@dataclass(frozen=True)
class Optimizer:
    name: str
    init: Callable[[tuple], Any]
    update: Callable[[tuple, Any, tuple, Any], tuple[tuple, Any]]


class EmptyState(NamedTuple):
    pass


def _gd_init(params: tuple) -> EmptyState:
    return EmptyState()


def _gd_update(grads, state, params, lr):
    """p <- p - lr g."""
    return tuple(p - per_run(lr, p) * g for p, g in zip(params, grads)), state


class MomentumState(NamedTuple):
    buf: tuple


MOMENTUM = 0.9


def _nesterov_init(params: tuple) -> MomentumState:
    # torch starts the buffer at g; mu * 0 + g == g exactly, so zeros need no first-step case.
    return MomentumState(tuple(p * 0 for p in params))


def _nesterov_update(grads, state, params, lr):
    """torch.optim.SGD(momentum=0.9, nesterov=True, dampening=0):
    buf <- mu buf + g;  p <- p - lr (g + mu buf)."""
    bufs = tuple(MOMENTUM * b + g for b, g in zip(state.buf, grads))
    new = tuple(p - per_run(lr, p) * (g + MOMENTUM * b) for p, g, b in zip(params, grads, bufs))
    return new, MomentumState(bufs)


class AdamState(NamedTuple):
    count: int
    mu: tuple
    nu: tuple


BETA1, BETA2, EPS = 0.9, 0.999, 1e-8


def _adam_init(params: tuple) -> AdamState:
    zeros = tuple(p * 0 for p in params)
    return AdamState(0, zeros, zeros)


def _adam_update(grads, state, params, lr):
    """torch.optim.Adam (betas 0.9, 0.999; eps 1e-8), its exact operation order:
    m <- m + (1 - b1)(g - m);  v <- b2 v + (1 - b2) g^2;
    p <- p - (lr / (1 - b1^t)) m / (sqrt(v) / sqrt(1 - b2^t) + eps)."""
    t = state.count + 1
    mu = tuple(m + (1 - BETA1) * (g - m) for m, g in zip(state.mu, grads))   # torch's lerp
    nu = tuple(BETA2 * v + (1 - BETA2) * (g * g) for v, g in zip(state.nu, grads))
    step = lr / (1 - BETA1 ** t)
    bc2_sqrt = (1 - BETA2 ** t) ** 0.5
    new = tuple(p - per_run(step, p) * (m / (v ** 0.5 / bc2_sqrt + EPS))
                for p, m, v in zip(params, mu, nu))
    return new, AdamState(t, mu, nu)


OPTIMIZER_TABLE: dict[str, Optimizer] = {
    "gd": Optimizer("gd", _gd_init, _gd_update),
    "sgd_nesterov": Optimizer("sgd_nesterov", _nesterov_init, _nesterov_update),
    "adam": Optimizer("adam", _adam_init, _adam_update),
}


def get_optimizer(name: str) -> Optimizer:
    if name not in OPTIMIZER_TABLE:
        raise ValueError(f"optimizer: {name!r} is not one of {', '.join(OPTIMIZERS)}")
    return OPTIMIZER_TABLE[name]


def select_runs(xp: Any, state: Any, keep: Any) -> Any:
    """The optimizer state restricted to the runs at indices ``keep`` (an integer array)."""
    def take(x):
        return xp.take(x, keep, axis=0) if hasattr(x, "ndim") else x
    return type(state)(*(tuple(map(take, f)) if isinstance(f, tuple) else take(f)
                         for f in state))
