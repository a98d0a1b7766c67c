"""The reference step: the pure functions of ``objectives`` and ``optim`` on any namespace.

Every epoch allocates its temporaries; it runs on NumPy, CuPy and array-api-strict alike and
is the oracle every faster step (``packed``) is tested against, model by model and optimizer
by optimizer. The interface it implements is ``interface.Step``.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .. import backend as be
from ..metrics import all_metrics, d_align
from ..optim import select_runs
from .interface import finite_runs, flush_state, pack_evaluation


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
