"""The one interface every training step implements, and what the steps share.

A step owns a batch's parameters and optimizer state and advances it; the epoch loop
(``train.run_batch``) drives it through ``Step`` only, so which step runs (``reference``,
``packed``) is where speed lives and nothing else changes. Every step is built as
``Kind(op, objective, optimizer, hp, params, lr, floor)``: the covariance operator, the
``Objective``, the ``Optimizer``, device hyperparameters, device parameters (W1 (r, k, m),
W2 (r, m, k)[, v (r, k), s (r,)]) in the operator's basis, device rates (r,) and the flush
floor (``backend.flush_floor``).
"""
from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from .. import backend as be

STEPS = ("auto", "reference", "packed")


@runtime_checkable
class Step(Protocol):
    """A batch of r runs that advances without a host round-trip between evaluations."""

    name: str           # what ran, as records store it: 'reference', 'packed', 'compiled'
                        # or 'graph' (a GraphStep whose capture failed says 'packed')

    def run(self, steps: int, cutoffs: np.ndarray | None = None) -> None:
        """Advance ``steps`` epochs (``cutoffs``: the nested-dropout cut-offs of those
        epochs, host (steps, r, n), or None), then flush the optimizer state."""

    def evaluate(self) -> tuple[np.ndarray, np.ndarray]:
        """d_align (r,) float64 and finiteness (r,) bool, in one device-to-host transfer."""

    def metrics(self) -> dict[str, np.ndarray]:
        """Every metric of ``metrics.all_metrics`` as host (r,) arrays."""

    def host_params(self) -> tuple[np.ndarray, ...]:
        """The parameters as host arrays, in the operator's basis."""

    def retire(self, keep: np.ndarray) -> None:
        """Keep only the runs at host indices ``keep``."""


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


def flush_state(xp: Any, optimizer, state: Any, floor: float) -> Any:
    """The optimizer ``state`` with every buffer flushed at its own floor
    (``Optimizer.state_floor``: momenta at ``floor``, squared-gradient averages at its square);
    counters are kept."""
    return type(state)(**{
        name: tuple(be.flush(xp, a, optimizer.state_floor(name, floor)) for a in f)
        if isinstance(f, tuple) else f for name, f in state._asdict().items()})
