"""Metrics on the decoder W2 against the top-k eigenvectors U_k, in the operator's basis.

In the spectral formulation U_k^T W2 is a slice, so evaluation costs O(k^2) beyond the norms.
All functions return one value per run: (r,).
"""
from __future__ import annotations

from typing import Any

from .objectives import moments, reconstruction_loss

# The official code divides by (||W2_j|| + 1e-8), which also keeps a zero column harmless.
NORM_EPS = 1e-8


def d_align(op, W2: Any) -> Any:
    """1 - (1/k) sum_i max_j (U_i . W2_j / (||W2_j|| + 1e-8))^2 (Definition 7.1).

    Zero exactly when W2's columns are U_k up to a signed permutation and scaling.
    """
    xp = op.xp
    norms = xp.sqrt(xp.sum(W2 * W2, axis=-2))            # (r, k)
    cos = op.top_k(W2) / (norms[:, None, :] + NORM_EPS)   # (r, k_i, k_j)
    return 1 - xp.mean(xp.max(cos * cos, axis=-1), axis=-1)


def d_sub(op, W2: Any) -> Any:
    """1 - (1/k) ||U_k^T Q||_F^2 with Q an orthonormal basis of span(W2) (Definition 7.2)."""
    xp = op.xp
    Q, _ = xp.linalg.qr(W2)
    B = op.top_k(Q)
    return 1 - xp.sum(B * B, axis=(-2, -1)) / W2.shape[-1]


def transpose_distance(xp: Any, W1: Any, W2: Any) -> Any:
    """||W1 - W2^T||_F^2 / k."""
    D = W1 - xp.matrix_transpose(W2)
    return xp.sum(D * D, axis=(-2, -1)) / W1.shape[-2]


def all_metrics(op, objective, params: tuple, hp: dict) -> dict[str, Any]:
    """Every metric for a batch of runs: d_align, d_sub, transpose, recon, objective, loss.

    ``recon`` is the reconstruction loss L, ``objective`` the model's full objective (nd: its
    expectation over the cut-offs), ``loss`` what the official code logs: the NELBO for the
    VAE, L for the other models.
    """
    xp = op.xp
    W1, W2 = params[0], params[1]
    mo = moments(op, W1, W2)
    recon = reconstruction_loss(op, W1, W2, mo)
    full = objective.loss(op, params, hp, mo)
    return {
        "d_align": d_align(op, W2),
        "d_sub": d_sub(op, W2),
        "transpose": transpose_distance(xp, W1, W2),
        "recon": recon,
        "objective": full,
        "loss": full if objective.logs_objective else recon,
    }
