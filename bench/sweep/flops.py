"""Flop accounting of one epoch: the matrix products each formulation multiplies.

Elementwise work is O(k m) and left out. The sweep uses it to order Dask tasks by their work
(``distributed.epoch_work``) and to shape the reference product timed beside every block
(``reference``); ``lae-bench speed`` sets it against the machine's matrix-product throughput.
"""
from __future__ import annotations

from lae_core import get_objective


def epoch_flops(model: str, formulation: str, k: int, m: int, n: int) -> float:
    """Floating-point operations of the matrix products of one epoch of one run.

    spectral: S, G, G P, W2 S (2 k^2 m each) plus A W1, W2 A for rotation;
    covariance: adds the (2k, m) x (m, m) product [W1; W2^T] C;
    sample: P and C W2 through X, 8 n m k; nd: X [W1^T W2], X^T [H Zm] (8 n m k) + k^2 terms.
    """
    objective = get_objective(model)
    if objective.needs_samples:   # nested dropout: every product goes through the samples
        return 8.0 * n * m * k + 4.0 * n * k * k + 4.0 * m * k * k
    products = objective.kk_products * 2.0 * k * k * m
    if formulation == "covariance":
        products += 4.0 * k * m * m
    elif formulation == "sample":
        products += 8.0 * n * m * k
    return products


def dominant_shape(model: str, formulation: str, k: int, m: int, n: int) -> tuple[tuple, tuple]:
    """Operand shapes of the product that dominates an epoch: (a, b) for a @ b."""
    if formulation == "sample":
        return (n, m), (m, 2 * k)
    if formulation == "covariance":
        return (2 * k, m), (m, m)
    return (k, m), (m, k)
