"""Dedicated PCA learners, the baselines the LAEs are measured against (docs/theory.md,
"Baseline learners").

Each learner keeps k components as the columns of the decoder V = W2 (r, m, k), full batch in
covariance form: it touches the data only through C V. Its update direction Delta (ascent)
is handed to the harness's optimizers as the pseudo-gradient g2 = -Delta, so plain GD is the
published rule ``V <- V + lr Delta`` and Nesterov SGD or Adam act on it as on any gradient.
The encoder is tied to the decoder (outputs y = V^T x, as in Hebbian learning): W1 receives
g1 = g2^T, so W1 - W2^T keeps its initial value (1e-4-sized) and never feeds back.

Notation: M = V^T C V (k, k); triu(M) keeps the diagonal, striu(M) is strictly upper.

- gha, Sanger's generalized Hebbian algorithm (T. D. Sanger, "Optimal unsupervised learning in
  a single-layer linear feedforward neural network", Neural Networks 2(6), 1989):
      Delta = C V - V triu(M).   Fixed point: V = U_k (ordered, unit columns, signs free).
- oja, Oja's subspace rule (E. Oja, "Neural networks, principal components, and subspaces",
  Int. J. Neural Systems 1(1), 1989):
      Delta = C V - V M.         Fixed points: V = U_k Q, any orthogonal Q: the subspace only,
  so d_sub converges and d_align need not.
- eigengame, mu-EigenGame (I. Gemp, B. McWilliams, C. Vernade, T. Graepel, "EigenGame
  Unloaded: When playing games is better than optimizing", ICLR 2022), every player updated
  at once (the parallel form of the sequential game; parents enter with a stop-gradient).
  With unit columns Vh = V / ||V||: Mh = Vh^T C Vh,
      grad   = C Vh - Vh striu(Mh)                          (player i: C v_i - sum_{j<i} ...)
      Delta_i = ||v_i|| (grad_i - (vh_i . grad_i) vh_i)     (Riemannian projection)
  The paper retracts onto the sphere after each step (v <- v / ||v||). Every metric is
  invariant to column scale and the step is scaled by ||v_i||, so under GD the directions
  follow the paper's trajectory exactly; the norms then drift only at second order in lr.
- eigh, the exact eigendecomposition: no update at all (Delta = 0); ``closed_form`` gives U_k,
  the run starts there and reaches every threshold at epoch 0. Its wall time (the
  decomposition's) is the floor for "time to the principal components".
"""
from __future__ import annotations

from typing import Any

import numpy as np

LEARNERS = ("gha", "eigengame", "oja", "eigh")


def _unit_columns(xp: Any, V: Any) -> tuple[Any, Any]:
    """V with unit columns and the column norms: (r, m, k), (r, 1, k)."""
    norms = xp.sqrt(xp.sum(V * V, axis=-2, keepdims=True))
    # A zero column (flushed, or the 0 of a fresh run) stays zero instead of NaN.
    return V / xp.where(norms > 0, norms, 1.0), norms


def _tied(xp: Any, g2: Any) -> tuple[Any, Any]:
    """(g2^T, g2): the encoder follows the decoder (see the module docstring)."""
    return xp.matrix_transpose(g2), g2


def projection_loss(op, params, hp, mo=None) -> Any:
    """||X - Vh Vh^T X||^2 / n with Vh = V scaled to unit columns: (r,).

    tr(C) - 2 tr(Mh) + <Mh, Vh^T Vh>; 'objective' of a learner (no learner minimises a loss)."""
    xp = op.xp
    Vh, _ = _unit_columns(xp, params[1])
    M = xp.matrix_transpose(Vh) @ op.times_c(Vh)
    gram = xp.matrix_transpose(Vh) @ Vh
    return op.trace - 2 * xp.sum(xp.linalg.diagonal(M), axis=-1) + xp.sum(M * gram,
                                                                             axis=(-2, -1))


def gha_grads(op, params, hp, noise=None) -> tuple[Any, Any]:
    """Sanger's rule: g2 = -(C V - V triu(V^T C V)); (r, k, m), (r, m, k)."""
    xp = op.xp
    V = params[1]
    CV = op.times_c(V)
    g2 = V @ xp.triu(xp.matrix_transpose(V) @ CV)
    g2 -= CV
    return _tied(xp, g2)


def oja_grads(op, params, hp, noise=None) -> tuple[Any, Any]:
    """Oja's subspace rule: g2 = -(C V - V V^T C V)."""
    xp = op.xp
    V = params[1]
    CV = op.times_c(V)
    g2 = V @ (xp.matrix_transpose(V) @ CV)
    g2 -= CV
    return _tied(xp, g2)


def eigengame_grads(op, params, hp, noise=None) -> tuple[Any, Any]:
    """mu-EigenGame: g2 = -||v_i|| (I - vh_i vh_i^T)(C vh_i - sum_{j<i} (vh_i^T C vh_j) vh_j)."""
    xp = op.xp
    Vh, norms = _unit_columns(xp, params[1])
    CVh = op.times_c(Vh)
    grad = CVh - Vh @ xp.triu(xp.matrix_transpose(Vh) @ CVh, k=1)
    along = xp.sum(Vh * grad, axis=-2, keepdims=True)          # (r, 1, k): vh_i . grad_i
    g2 = (Vh * along - grad) * norms
    return _tied(xp, g2)


def eigh_grads(op, params, hp, noise=None) -> tuple[Any, Any]:
    """No update: the run starts at the closed form (``eigh_closed_form``)."""
    return params[0] * 0, params[1] * 0


def eigh_closed_form(C: np.ndarray, k: int, runs: int) -> tuple[np.ndarray, np.ndarray]:
    """U_k from a dense eigendecomposition of C (m, m), sorted descending, for every run:
    (W1 (r, k, m), W2 (r, m, k)) = (U_k^T, U_k), host float64."""
    values, vectors = np.linalg.eigh(C)
    Uk = vectors[:, np.argsort(values)[::-1][:k]]
    return np.repeat(Uk.T[None], runs, axis=0), np.repeat(Uk[None], runs, axis=0)
