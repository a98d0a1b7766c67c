"""Covariance operators: the three formulations of the same dynamics (docs/theory.md, "Three
formulations of the same dynamics").

Every objective but stochastic nested dropout touches the data only through products with C,
so an objective is written once against ``cov_products`` (W1 C, C W2 and S = W1 C W1^T) and the
formulation is just which operator is plugged in:

- ``Spectral``: the eigenbasis of C, where C = diag(c) and U_k is the first k identity columns;
  products with C are scalings, an epoch costs O(k^2 m). Exact for rotation-equivariant
  optimizers only (gd, sgd_nesterov).
- ``Dense``: C as an (m, m) array in the original basis; any optimizer; O(k m^2) per epoch.
- ``Samples``: the (n, m) samples themselves in the original basis; needed by stochastic nested
  dropout and the oracle for the other two in tests; O(n m k) per epoch.

Shapes: r runs, k latent, m input, n samples. W1: (r, k, m), W2: (r, m, k).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .backend import flush_floor, to_device
from .data import Dataset

FORMULATIONS = ("spectral", "covariance", "sample")


class Spectral:
    """C = diag(c) in its own eigenbasis."""

    form = "spectral"

    def __init__(self, xp: Any, eigvals: np.ndarray, k: int, dtype: Any):
        self.xp, self.k = xp, k
        self.c = to_device(xp, eigvals, dtype)
        # sqrt(c) lets S = B B^T with B = W1 C^(1/2): a symmetric product, which BLAS does in
        # half the work (syrk). A rank-deficient C has eigenvalues of ~-1e-16: clip them.
        self.sqrt_c = to_device(xp, np.sqrt(np.clip(eigvals, 0, None)), dtype)
        self.trace = float(np.sum(eigvals))

    def cov_products(self, W1: Any, W2: Any) -> tuple[Any, Any, Any]:
        """(W1 C, C W2, W1 C W1^T): (r, k, m), (r, m, k), (r, k, k)."""
        B = W1 * self.sqrt_c
        return B * self.sqrt_c, self.c[:, None] * W2, B @ B.mT

    def times_c(self, V: Any) -> Any:
        """C V for V (r, m, k), what the PCA learners (``learners``) need: (r, m, k)."""
        return self.c[:, None] * V

    def top_k(self, W2: Any) -> Any:
        """U_k^T W2: (r, k, k)."""
        return W2[:, : self.k, :]


class Dense:
    """C as a dense (m, m) matrix; U_k (m, k) for the metrics."""

    form = "covariance"

    def __init__(self, xp: Any, dataset: Dataset, k: int, dtype: Any):
        self.xp, self.k = xp, k
        self.C = to_device(xp, dataset.C, dtype)
        self.Uk_T = to_device(xp, dataset.eigvecs[:, :k].T, dtype)
        self.trace = float(np.trace(dataset.C))

    def cov_products(self, W1: Any, W2: Any) -> tuple[Any, Any, Any]:
        """(W1 C, C W2, W1 C W1^T); the first two as one (r 2k, m) x (m, m) product."""
        xp = self.xp
        r, k, m = W1.shape
        stacked = xp.concat((W1, W2.mT), axis=1)
        both = xp.reshape(xp.reshape(stacked, (r * 2 * k, m)) @ self.C, (r, 2 * k, m))
        P = both[:, :k, :]
        return P, both[:, k:, :].mT, P @ W1.mT

    def times_c(self, V: Any) -> Any:
        return self.C @ V

    def top_k(self, W2: Any) -> Any:
        return self.Uk_T @ W2


class Samples:
    """The (n, m) samples; C is never formed, every product goes through X."""

    form = "sample"

    def __init__(self, xp: Any, dataset: Dataset, k: int, dtype: Any):
        if dataset.X is None:
            raise ValueError(f"dataset {dataset.name!r} was loaded without its samples, "
                             "which the sample formulation needs")
        self.xp, self.k, self.n = xp, k, dataset.n
        self.X = to_device(xp, dataset.X, dtype)
        self.Uk_T = to_device(xp, dataset.eigvecs[:, :k].T, dtype)
        self.trace = float(np.sum(dataset.X * dataset.X) / dataset.n)

    def cov_products(self, W1: Any, W2: Any) -> tuple[Any, Any, Any]:
        """((W1 X^T) X / n, X^T (X W2) / n, (W1 X^T)(W1 X^T)^T / n)."""
        X = self.X
        Y = W1 @ X.mT
        return Y @ X / self.n, X.mT @ (X @ W2) / self.n, Y @ Y.mT / self.n

    def times_c(self, V: Any) -> Any:
        return self.X.mT @ (self.X @ V) / self.n

    def top_k(self, W2: Any) -> Any:
        return self.Uk_T @ W2


def make_operator(form: str, xp: Any, dataset: Dataset, k: int, dtype: Any):
    """The operator for ``form`` ('spectral', 'covariance' or 'sample')."""
    if form not in FORMULATIONS:
        raise ValueError(f"formulation: {form!r} is not one of {', '.join(FORMULATIONS)}")
    op = {"spectral": lambda: Spectral(xp, dataset.eigvals, k, dtype),
          "covariance": lambda: Dense(xp, dataset, k, dtype),
          "sample": lambda: Samples(xp, dataset, k, dtype)}[form]()
    op.floor = flush_floor(xp, dtype)  # see objectives.moments
    return op


def into_basis(form: str, dataset: Dataset, W1: np.ndarray, W2: np.ndarray):
    """Host weights (r, k, m), (r, m, k) expressed in the operator's basis (float64, exact)."""
    if form != "spectral":
        return W1, W2
    U = dataset.eigvecs
    return W1 @ U, np.swapaxes(U, 0, 1) @ W2


def out_of_basis(form: str, dataset: Dataset, W1: np.ndarray, W2: np.ndarray):
    """Inverse of ``into_basis``."""
    if form != "spectral":
        return W1, W2
    U = dataset.eigvecs
    return W1 @ np.swapaxes(U, 0, 1), U @ W2
