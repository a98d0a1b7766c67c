"""Optimizers with torch.optim's exact update rules, as pure (init, update) pairs.

``init(params) -> state``; ``update(grads, state, params, lr) -> (new_params, new_state)``.
Parameters, gradients and state are tuples of arrays whose leading axis is the run axis r;
``lr`` is an (r,) array, one learning rate per run. Nothing is mutated.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, NamedTuple

import numpy as np

OPTIMIZERS = ("gd", "sgd_nesterov", "adam")
# Optimizers whose update commutes with an orthogonal change of basis: the spectral
# formulation reproduces their dense trajectories exactly.
ROTATION_EQUIVARIANT = ("gd", "sgd_nesterov")
# The update rules of the fast passes (``steps.kernels``: NumPy, Numba and CUDA), by code: the
# one table every pass and the CUDA kernel's template argument read.
GD, NESTEROV, ADAM = 0, 1, 2
UPDATE_CODES = {"gd": GD, "sgd_nesterov": NESTEROV, "adam": ADAM}
# Scalars a fast pass takes per step: (c1, ..., c6), see ``Optimizer.scalars``.
N_SCALARS = 6


def per_run(lr: Any, p: Any) -> Any:
    """Reshape an (r,) array to broadcast against a parameter of shape (r, ...)."""
    return lr[(slice(None),) + (None,) * (p.ndim - 1)]


@dataclass(frozen=True)
class Optimizer:
    """A pure (init, update) pair; ``update(grads, state, params, lr) -> (params, state)``.

    The learning rate is per run (an update argument); every other number of the rule is a
    frozen hyperparameter here, and ``step_scalars`` hands them, with whatever depends on the
    step count, to the update and to every fast pass, so that no copy re-types them.
    """

    name: str
    init: Callable[[tuple], Any]
    update: Callable[[tuple, Any, tuple, Any], tuple[tuple, Any]]
    # t -> the rule's numbers at step t (t = 1, 2, ...), as Python floats
    step_scalars: Callable[[int], tuple[float, ...]] = lambda t: ()
    hyperparameters: tuple[tuple[str, float], ...] = ()
    # state fields on the scale of squared gradients (the rest scale like the parameters)
    squared_state: tuple[str, ...] = ()
    # per-parameter state buffers, in the order the fast passes take them (s1, s2)
    buffers: tuple[str, ...] = ()
    # whether ``step_scalars`` depends on t (Adam's bias corrections); when it does not, the
    # scalars are made once per dtype and shape and kept in ``_made``
    per_step: bool = False
    _made: dict = field(default_factory=dict, repr=False, compare=False)

    def state_floor(self, name: str, floor: float) -> float:
        """The flush floor of state field ``name``: ``floor``, squared for squared-gradient
        averages (they scale like g^2)."""
        return floor ** 2 if name in self.squared_state else floor

    @property
    def code(self) -> int:
        """The fast passes' code of this update rule (``UPDATE_CODES``)."""
        return UPDATE_CODES[self.name]

    def scalars(self, count: int | range, dtype: Any) -> np.ndarray:
        """The fast passes' scalars (c1, ..., c6) at step t = ``count``, in ``dtype``:
        Nesterov (mu, 0, ...); Adam (1 - b1, 1 - b2, b2, 1 - b1^t, sqrt(1 - b2^t), eps);
        gd none (zeros). For a range of counts: one row per count, (len, 6).

        The values are those the update itself uses, computed in double precision on the
        host and rounded once to ``dtype``, as NumPy's weak-scalar rules round them in
        ``update``."""
        if not self.per_step:
            return self._constant(count, dtype)
        if isinstance(count, int):
            return np.array(self._row(count), dtype=dtype)
        return np.array([self._row(t) for t in count], dtype=dtype).reshape(-1, N_SCALARS)

    def _row(self, t: int) -> tuple[float, ...]:
        return (self.step_scalars(t) + (0.0,) * N_SCALARS)[:N_SCALARS]

    def _constant(self, count: int | range, dtype: Any) -> np.ndarray:
        """``scalars`` of an optimizer whose numbers do not change with t: made once per
        dtype and shape (an epoch of a small problem lasts about as long as making them)
        and shared; the passes only read them. (Not flagged read-only: Numba would compile
        its blocks a second time for a read-only argument.)"""
        single = isinstance(count, int)
        key = (np.dtype(dtype), None if single else len(count))
        if key not in self._made:
            made = np.array(self._row(1), dtype=dtype)
            if not single:
                made = np.tile(made, (len(count), 1))
            self._made[key] = made
        return self._made[key]


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
    def step_scalars(t: int) -> tuple[float, ...]:
        return (momentum,)

    def init(params):
        # torch starts the buffer at g; mu * 0 + g == g exactly, so zeros need no first-step case.
        return MomentumState(_zeros_like(params))

    def update(grads, state, params, lr):
        mu, = step_scalars(0)

        def one(p, g, b):
            buf = b * mu
            buf += g
            step = buf * mu
            step += g
            step *= per_run(lr, p)
            return p - step, buf
        new, bufs = zip(*map(one, params, grads, state.buf))
        return new, MomentumState(bufs)
    return Optimizer("sgd_nesterov", init, update, step_scalars,
                     hyperparameters=(("momentum", momentum),),
                     buffers=MomentumState._fields)


def adam_bias_corrections(b1: float, b2: float, t: int) -> tuple[float, float]:
    """Adam's bias corrections at step t: (1 - b1^t, sqrt(1 - b2^t)), in double precision
    (Python's float power is libm's pow, as torch computes them on the host)."""
    return 1 - b1 ** t, math.sqrt(1 - b2 ** t)


def adam(b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8) -> Optimizer:
    """torch.optim.Adam in torch's exact operation order (t = 1, 2, ...):
    m <- m + (1 - b1)(g - m);  v <- b2 v + (1 - b2) g g;
    p <- p - (lr / (1 - b1^t)) m / (sqrt(v) / sqrt(1 - b2^t) + eps)."""
    def step_scalars(t: int) -> tuple[float, ...]:
        return (1 - b1, 1 - b2, b2, *adam_bias_corrections(b1, b2, t), eps)

    def init(params):
        return AdamState(0, _zeros_like(params), _zeros_like(params))

    def update(grads, state, params, lr):
        t = state.count + 1
        one_minus_b1, one_minus_b2, beta2, bc1, bc2_sqrt, epsilon = step_scalars(t)
        step_size = lr / bc1

        def one(p, g, m, v):
            mu = g - m                    # torch's lerp: m + (1 - b1)(g - m)
            mu *= one_minus_b1
            mu += m
            nu = g * one_minus_b2         # torch's addcmul: b2 v + ((1 - b2) g) g
            nu *= g
            nu += v * beta2
            denom = nu ** 0.5
            denom /= bc2_sqrt
            denom += epsilon
            step = mu / denom
            step *= per_run(step_size, p)
            return p - step, mu, nu
        new, mus, nus = zip(*map(one, params, grads, state.mu, state.nu))
        return new, AdamState(t, mus, nus)
    return Optimizer("adam", init, update, step_scalars,
                     hyperparameters=(("b1", b1), ("b2", b2), ("eps", eps)),
                     squared_state=("nu",), buffers=AdamState._fields[1:], per_step=True)


OPTIMIZER_FACTORIES: dict[str, Callable[[], Optimizer]] = {
    "gd": gd, "sgd_nesterov": sgd_nesterov, "adam": adam,
}


def get_optimizer(name: "str | Optimizer") -> Optimizer:
    """The named optimizer with the paper's settings (torch's defaults); an ``Optimizer``
    (e.g. ``adam(b1=0.8)``) is returned as it is."""
    if isinstance(name, Optimizer):
        return name
    if name not in OPTIMIZER_FACTORIES:
        raise ValueError(f"optimizer: {name!r} is not one of {', '.join(OPTIMIZERS)}")
    return OPTIMIZER_FACTORIES[name]()


def select_runs(xp: Any, state: Any, keep: Any) -> Any:
    """The optimizer state restricted to the runs at indices ``keep`` (an integer array)."""
    def take(x):
        return xp.take(x, keep, axis=0) if hasattr(x, "ndim") else x
    return type(state)(*(tuple(map(take, f)) if isinstance(f, tuple) else take(f)
                         for f in state))
