"""Training steps: objects that own a batch's parameters and optimizer state and advance it.

The epoch loop (``train.run_batch``) only drives a step; where speed lives is which step runs:

- ``ReferenceStep``: the pure functions of ``objectives`` and ``optim`` on any array namespace
  (NumPy, CuPy, array-api-strict). Every epoch allocates its temporaries. It is the oracle every
  faster step is tested against, model by model and optimizer by optimizer.
- ``packed.PackedStep``: persistent buffers updated in place with fused kernels (NumPy/Numba on
  the CPU, CUDA kernels on CuPy); see that module.

Every step has the same interface:
  ``run(steps, cutoffs)``  advance ``steps`` epochs without a host round-trip (``cutoffs``: the
                           nested-dropout cut-offs of those epochs, host (steps, r, n), or None),
                           then flush the optimizer state (see ``ReferenceStep.run``);
  ``evaluate()``           d_align (r,) float64 and finiteness (r,) bool, one packed transfer;
  ``metrics()``            every metric of ``metrics.all_metrics`` as host (r,) arrays;
  ``host_params()``        the parameters, host arrays in the operator's basis;
  ``retire(keep)``         keep only the runs at host indices ``keep``.
"""
from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from .. import backend as be
from ..metrics import all_metrics, d_align
from ..optim import select_runs

STEPS = ("auto", "reference", "packed")


class Step(Protocol):
    name: str

    def run(self, steps: int, cutoffs: np.ndarray | None = None) -> None: ...
    def evaluate(self) -> tuple[np.ndarray, np.ndarray]: ...
    def metrics(self) -> dict[str, np.ndarray]: ...
    def host_params(self) -> tuple[np.ndarray, ...]: ...
    def retire(self, keep: np.ndarray) -> None: ...


def finite_runs(xp: Any, arrays: tuple) -> Any:
    """(r,) bool: every entry of the run's arrays is finite (each array has a leading run axis)."""
    finite = None
    for a in arrays:
        ok = xp.all(xp.isfinite(a), axis=tuple(range(1, a.ndim))) if a.ndim > 1 \
            else xp.isfinite(a)
        finite = ok if finite is None else xp.logical_and(finite, ok)
    return finite


def pack_evaluation(xp: Any, align: Any, finite: Any) -> tuple[np.ndarray, np.ndarray]:
    """d_align and finiteness in ONE device-to-host transfer: ((r,) float64, (r,) bool)."""
    packed = be.to_host(xp.stack([align, xp.astype(finite, align.dtype)]))
    return packed[0].astype(np.float64), packed[1] > 0


class ReferenceStep:
    """The pure functions of ``objectives`` and ``optim``, one allocating call at a time.

    op: covariance operator; params: device tuple (W1 (r, k, m), W2 (r, m, k)[, v (r, k),
    s (r,)]); lr: device (r,); hp: device hyperparameters; floor: see ``backend.flush_floor``.
    """

    name = "reference"

    def __init__(self, op, objective, optimizer, hp: dict, params: tuple, lr: Any, floor: float):
        self.xp, self.op, self.objective, self.optimizer = op.xp, op, objective, optimizer
        self.hp, self.params, self.lr, self.floor = hp, params, lr, floor
        self.state = optimizer.init(params)

    def run(self, steps: int, cutoffs: np.ndarray | None = None) -> None:
        """``steps`` epochs; then the optimizer state is flushed.

        Weights below the floor are flushed every epoch: a flushed coordinate is refilled by
        its coupling to the others with values far below the floor, whose products are
        subnormal within the epoch. The optimizer state is flushed once per call (momenta at
        the same floor, squared-gradient averages at its square).
        """
        noise = None if cutoffs is None else be.to_device(self.xp, cutoffs)
        params, state = self.params, self.state
        for t in range(steps):
            grads = self.objective.grads(self.op, params, self.hp,
                                         None if noise is None else noise[t, ...])
            params, state = self.optimizer.update(grads, state, params, self.lr)
            params = self._flush(params, self.floor)
        self.params, self.state = params, self._flush_state(state)

    def evaluate(self) -> tuple[np.ndarray, np.ndarray]:
        return pack_evaluation(self.xp, d_align(self.op, self.params[1]),
                               finite_runs(self.xp, self.params))

    def metrics(self) -> dict[str, np.ndarray]:
        return {name: be.to_host(v) for name, v in
                all_metrics(self.op, self.objective, self.params, self.hp).items()}

    def host_params(self) -> tuple[np.ndarray, ...]:
        return tuple(be.to_host(p) for p in self.params)

    def retire(self, keep: np.ndarray) -> None:
        xp = self.xp
        idx = be.to_device(xp, keep)
        self.params = tuple(xp.take(p, idx, axis=0) for p in self.params)
        self.state = select_runs(xp, self.state, idx)
        self.lr = xp.take(self.lr, idx, axis=0)

    def _flush(self, arrays: tuple, floor: float) -> tuple:
        return tuple(be.flush(self.xp, a, floor) for a in arrays)

    def _flush_state(self, state):
        return flush_state(self.xp, self.optimizer, state, self.floor)


def flush_state(xp: Any, optimizer, state: Any, floor: float) -> Any:
    """The optimizer ``state`` with every buffer flushed at its own floor
    (``Optimizer.state_floor``: momenta at ``floor``, squared-gradient averages at its square);
    counters are kept."""
    return type(state)(**{
        name: tuple(be.flush(xp, a, optimizer.state_floor(name, floor)) for a in f)
        if isinstance(f, tuple) else f for name, f in state._asdict().items()})
