"""Optimizers with torch.optim's exact update rules, as pure (init, update) pairs.

``init(params) -> state``; ``update(grads, state, params, lr) -> (new_params, new_state)``.
Parameters, gradients and state are tuples of arrays whose leading axis is the run axis r;
``lr`` is an (r,) array, one learning rate per run. Nothing is mutated.
"""
from __future__ import annotations

import math
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
    """A pure (init, update) pair; ``update(grads, state, params, lr) -> (params, state)``."""

    name: str
    init: Callable[[tuple], Any]
    update: Callable[[tuple, Any, tuple, Any], tuple[tuple, Any]]
    # state fields on the scale of squared gradients (the rest scale like the parameters)
    squared_state: tuple[str, ...] = ()


class EmptyState(NamedTuple):
    pass


class MomentumState(NamedTuple):
    buf: tuple


class AdamState(NamedTuple):
    count: int
    mu: tuple
    nu: tuple


def _zeros_like(params: tuple) -> tuple:
    return tuple(p * 0 for p in params)


def gd() -> Optimizer:
    """Plain gradient descent: p <- p - lr g."""
    def update(grads, state, params, lr):
        return tuple(p - per_run(lr, p) * g for p, g in zip(params, grads)), state
    # In-place operators below act on fresh temporaries only: state and params are never
    # mutated, and each saves an allocation and a pass over a (k, m) array.
    return Optimizer("gd", lambda params: EmptyState(), update)


def sgd_nesterov(momentum: float = 0.9) -> Optimizer:
    """torch.optim.SGD(momentum, nesterov=True, dampening=0), the paper's "SGD":
    buf <- mu buf + g (buf = g on the first step);  p <- p - lr (g + mu buf)."""
    def init(params):
        # torch starts the buffer at g; mu * 0 + g == g exactly, so zeros need no first-step case.
        return MomentumState(_zeros_like(params))

    def update(grads, state, params, lr):
        def one(p, g, b):
            buf = b * momentum
            buf += g
            step = buf * momentum
            step += g
            step *= per_run(lr, p)
            return p - step, buf
        new, bufs = zip(*map(one, params, grads, state.buf))
        return new, MomentumState(bufs)
    return Optimizer("sgd_nesterov", init, update)


def adam(b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8) -> Optimizer:
    """torch.optim.Adam in torch's exact operation order (t = 1, 2, ...):
    m <- m + (1 - b1)(g - m);  v <- b2 v + (1 - b2) g g;
    p <- p - (lr / (1 - b1^t)) m / (sqrt(v) / sqrt(1 - b2^t) + eps)."""
    def init(params):
        return AdamState(0, _zeros_like(params), _zeros_like(params))

    def update(grads, state, params, lr):
        t = state.count + 1
        step_size = lr / (1 - b1 ** t)
        bc2_sqrt = math.sqrt(1 - b2 ** t)

        def one(p, g, m, v):
            mu = g - m                    # torch's lerp: m + (1 - b1)(g - m)
            mu *= 1 - b1
            mu += m
            nu = g * (1 - b2)             # torch's addcmul: b2 v + ((1 - b2) g) g
            nu *= g
            nu += v * b2
            denom = nu ** 0.5
            denom /= bc2_sqrt
            denom += eps
            step = mu / denom
            step *= per_run(step_size, p)
            return p - step, mu, nu
        new, mus, nus = zip(*map(one, params, grads, state.mu, state.nu))
        return new, AdamState(t, mus, nus)
    return Optimizer("adam", init, update, squared_state=("nu",))


OPTIMIZER_FACTORIES: dict[str, Callable[[], Optimizer]] = {
    "gd": gd, "sgd_nesterov": sgd_nesterov, "adam": adam,
}


def get_optimizer(name: str) -> Optimizer:
    """The named optimizer with the paper's settings."""
    if name not in OPTIMIZER_FACTORIES:
        raise ValueError(f"optimizer: {name!r} is not one of {', '.join(OPTIMIZERS)}")
    return OPTIMIZER_FACTORIES[name]()


def select_runs(xp: Any, state: Any, keep: Any) -> Any:
    """The optimizer state restricted to the runs at indices ``keep`` (an integer array)."""
    def take(x):
        return xp.take(x, keep, axis=0) if hasattr(x, "ndim") else x
    return type(state)(*(tuple(map(take, f)) if isinstance(f, tuple) else take(f)
                         for f in state))
