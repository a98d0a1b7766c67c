"""The six objectives (docs/theory.md, "The six objectives"), each a loss and its analytic
gradients.

Each is written once against a covariance operator (``operators.py``), so it runs unchanged in the
spectral, covariance and sample formulations. Shape legend: r runs, k latent, m input, n samples.
Parameters are tuples: (W1 (r, k, m), W2 (r, m, k)) and, for the VAE, also v (r, k) and s (r,).

The registry at the end also holds the dedicated PCA learners of ``learners.py`` (GHA,
EigenGame, Oja, eigh), the baselines a sweep may run beside the LAEs (``ALL_MODELS``).

Notation: P = W1 C, S = W1 C W1^T, G = W2^T W2, and the reconstruction loss (eq. 1, no 1/2)
  L = tr(C) - 2 tr(W2 W1 C) + tr(S G),  dL/dW1 = 2 (G P - W2^T C),  dL/dW2 = 2 (W2 S - P^T).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .backend import flush
from .learners import (LEARNERS, eigengame_grads, eigh_closed_form, eigh_grads, gha_grads,
                       oja_grads, projection_loss)
from .rotation import rotation_augment

MODELS = ("uniform_sum", "non_uniform_sum", "rotation", "nd_exp", "nd", "vae")
# What a sweep may name: the six linear autoencoders, then the dedicated PCA learners
# (learners.py) that run beside them as baselines.
ALL_MODELS = MODELS + LEARNERS


def _inner(xp, a, b):
    """<a, b> over the last two axes: (r,)."""
    return xp.sum(a * b, axis=(-2, -1))


@dataclass
class Moments:
    """Products every objective shares, computed once per step."""

    P: Any      # W1 C   (r, k, m)
    CW2: Any    # C W2   (r, m, k)
    S: Any      # W1 C W1^T (r, k, k)
    G: Any      # W2^T W2   (r, k, k)


def moments(op, W1: Any, W2: Any) -> Moments:
    P, CW2, S = op.cov_products(W1, W2)
    # As units grow orthogonal, off-diagonal entries of S and G sink far below rounding level;
    # times small weights they would refill flushed coordinates with subnormal numbers (slow
    # arithmetic) every epoch. Flushing these k x k matrices costs O(k^2).
    return Moments(P, CW2, flush(op.xp, S, op.floor), flush(op.xp, W2.mT @ W2, op.floor))


def reconstruction_loss(op, W1: Any, W2: Any, mo: Moments | None = None) -> Any:
    """L = ||X - W2 W1 X||_F^2 / n = tr(C) - 2 tr(W2 W1 C) + tr(S G): (r,)."""
    xp = op.xp
    mo = mo or moments(op, W1, W2)
    return op.trace - 2 * _inner(xp, W2.mT, mo.P) + _inner(xp, mo.S, mo.G)


def _reconstruction_grads(mo: Moments, W2: Any) -> tuple[Any, Any]:
    # In-place updates of fresh temporaries (standard array-API operators): each saves an
    # allocation and a pass over a (k, m) array, which is what an epoch mostly costs.
    g1 = mo.G @ mo.P
    g1 -= mo.CW2.mT
    g1 *= 2
    g2 = W2 @ mo.S
    g2 -= mo.P.mT
    g2 *= 2
    return g1, g2


# --- L2-regularised LAEs ------------------------------------------------------------------------

def _l2_weights(lam: Any) -> tuple[Any, Any]:
    """lam (scalar or (k,)) shaped to scale W1's rows and W2's columns."""
    if isinstance(lam, float):
        return lam, lam
    return lam[:, None], lam[None, :]


def l2_loss(op, params, hp, mo=None) -> Any:
    """L + sum_i lam_i (||W1[i, :]||^2 + ||W2[:, i]||^2); lam scalar for uniform_sum."""
    xp = op.xp
    W1, W2 = params
    row, col = _l2_weights(hp["lam"])
    return (reconstruction_loss(op, W1, W2, mo) + xp.sum(row * W1 * W1, axis=(-2, -1))
            + xp.sum(col * W2 * W2, axis=(-2, -1)))


def l2_grads(op, params, hp, noise=None) -> tuple[Any, ...]:
    """dL/dW1 + 2 Lam W1, dL/dW2 + 2 W2 Lam."""
    W1, W2 = params
    g1, g2 = _reconstruction_grads(moments(op, W1, W2), W2)
    row, col = _l2_weights(hp["lam2"])
    g1 += row * W1
    g2 += col * W2
    return g1, g2


# --- rotation-augmented gradient ----------------------------------------------------------------

def rotation_loss(op, params, hp, mo=None) -> Any:
    """The unregularised reconstruction loss L (RAG changes the gradient, not the loss)."""
    return reconstruction_loss(op, *params, mo)


def rotation_grads(op, params, hp, noise=None) -> tuple[Any, ...]:
    W1, W2 = params
    mo = moments(op, W1, W2)
    g1, g2 = _reconstruction_grads(mo, W2)
    return rotation_augment(op.xp, mo.S, W1, W2, g1, g2)


# --- nested dropout -----------------------------------------------------------------------------

def nd_exp_loss(op, params, hp, mo=None) -> Any:
    """L_ND = tr(C) - 2 tr(D W1 C W2) + tr(S (G o M)), D = diag(p), M_ij = p_max(i,j)."""
    xp = op.xp
    W1, W2 = params
    mo = mo or moments(op, W1, W2)
    p = hp["keep_probs"]
    return (op.trace - 2 * _inner(xp, p[:, None] * mo.P, W2.mT)
            + _inner(xp, mo.S, mo.G * hp["keep_matrix"]))


def nd_exp_grads(op, params, hp, noise=None) -> tuple[Any, ...]:
    """dW1 = 2 ((G o M) W1 C - D W2^T C), dW2 = 2 (W2 (S o M) - C W1^T D)."""
    W1, W2 = params
    mo = moments(op, W1, W2)
    M2 = hp["keep_matrix2"]                      # 2 M and 2 p: the factor 2 costs k^2, not k m
    g1 = (mo.G * M2) @ mo.P
    g1 -= hp["keep_probs2"][:, None] * mo.CW2.mT
    g2 = W2 @ (mo.S * M2)
    g2 -= mo.P.mT * hp["keep_probs2"]
    return g1, g2


def nd_masks(xp, cutoffs: Any, k: int, dtype: Any) -> Any:
    """Nested-dropout masks from truncation indices b (r, n): unit i kept iff b >= i: (r, n, k)."""
    units = xp.arange(k, dtype=cutoffs.dtype)
    return xp.astype(units <= cutoffs[..., None], dtype)


def _times_samples(xp, A: Any, B: Any) -> Any:
    """A @ B[i] for every run i as ONE wide product: A (a, b), B (r, b, c) -> (r, a, c).

    The runs' columns sit side by side, so the product with the (n, m) samples is one large
    GEMM instead of r thin ones (c = 2k is tiny at small k, where thin GEMMs are slow)."""
    r, b, c = B.shape
    wide = xp.reshape(xp.permute_dims(B, (1, 0, 2)), (b, r * c))
    return xp.permute_dims(xp.reshape(A @ wide, (A.shape[0], r, c)), (1, 0, 2))


def nd_grads(op, params, hp, noise) -> tuple[Any, ...]:
    """Stochastic nested dropout on the samples; ``noise`` holds the cut-offs b (r, n).

    With Y = X [W1^T | W2], Z = X W1^T, Zm = mask o Z, H = mask o (Zm G - X W2):
      dW1 = (2/n) H^T X,  dW2 = (2/n) (W2 Zm^T Zm - X^T Zm).
    Two (n, m) x (m, 2k r) products per epoch; the (n, m) residual is never formed.
    """
    xp = op.xp
    W1, W2 = params
    X, n, k = op.X, op.n, W1.shape[-2]
    mask = nd_masks(xp, noise, k, W1.dtype)
    Y = _times_samples(xp, X, xp.concat((W1.mT, W2), axis=-1))
    Zm = mask * Y[..., :k]
    H = Zm @ (W2.mT @ W2)
    H -= Y[..., k:]
    H *= mask
    T = _times_samples(xp, X.mT, xp.concat((H, Zm), axis=-1))
    g1 = (2 / n) * T[..., :k].mT
    g2 = W2 @ (Zm.mT @ Zm)
    g2 -= T[..., k:]
    g2 *= 2 / n
    return g1, g2


def draw_cutoffs(rngs: list[np.random.Generator], steps: int, n: int,
                 keep_probs: np.ndarray) -> np.ndarray:
    """Truncation indices b for ``steps`` epochs of each run: (steps, r, n), host int32.

    P(b >= i) = keep_probs[i]; drawn by inverse CDF from one uniform per sample, on the host,
    so that every backend sees the same masks.
    """
    thresholds = -np.asarray(keep_probs[1:], dtype=np.float64)  # ascending
    u = np.stack([rng.random((steps, n)) for rng in rngs], axis=1)
    return np.searchsorted(thresholds, -u, side="left").astype(np.int32)


# --- linear VAE ---------------------------------------------------------------------------------

def _vae_terms(op, params, mo):
    xp = op.xp
    W1, W2, v, s = params
    ev, sig2 = xp.exp(v), xp.exp(s)
    diag_G = xp.linalg.diagonal(mo.G)                       # (r, k) squared column norms
    T = xp.sum(ev * diag_G, axis=-1) + reconstruction_loss(op, W1, W2, mo)
    return ev, sig2, diag_G, T


def vae_loss(op, params, hp, mo=None) -> Any:
    """NELBO = 1/2 [sum (e^v - 1 - v) + tr S] + T / (2 sigma^2) + m/2 (log 2 pi + s)."""
    xp = op.xp
    W1, W2, v, s = params
    mo = mo or moments(op, W1, W2)
    ev, sig2, _, T = _vae_terms(op, params, mo)
    trace_S = xp.sum(mo.P * W1, axis=(-2, -1))
    m = W1.shape[-1]
    return (0.5 * (xp.sum(ev - 1 - v, axis=-1) + trace_S) + T / (2 * sig2)
            + m / 2 * (math.log(2 * math.pi) + s))


def vae_grads(op, params, hp, noise=None) -> tuple[Any, ...]:
    """Gradients of the NELBO for (W1, W2, v, s), with sigma^2 = e^s:
    dW1 = (G P - W2^T C) / sigma^2 + P,  dW2 = (W2 S - P^T + W2 diag(e^v)) / sigma^2,
    dv = (e^v - 1) / 2 + diag(G) e^v / (2 sigma^2),  ds = m/2 - T / (2 sigma^2),
    with T = sum_i e^(v_i) G_ii + L."""
    W1, W2, v, s = params
    mo = moments(op, W1, W2)
    ev, sig2, diag_G, T = _vae_terms(op, params, mo)
    inv = (1 / sig2)[:, None, None]
    g1 = mo.G @ mo.P
    g1 -= mo.CW2.mT
    g1 *= inv
    g1 += mo.P
    g2 = W2 @ mo.S
    g2 -= mo.P.mT
    g2 += W2 * ev[:, None, :]
    g2 *= inv
    return (g1, g2) + vae_variance_grads(ev, sig2, diag_G, T, W1.shape[-1])


def vae_variance_grads(ev: Any, sig2: Any, diag_G: Any, T: Any, m: int) -> tuple[Any, Any]:
    """The NELBO's gradients for the log-variances v and the log noise s (sigma^2 = e^s):
    dv = (e^v - 1) / 2 + diag(G) e^v / (2 sigma^2) (r, k), ds = m/2 - T / (2 sigma^2) (r,)."""
    gv = (ev - 1) / 2 + diag_G * ev / (2 * sig2[:, None])
    gs = m / 2 - T / (2 * sig2)
    return gv, gs


def vae_extra_params(k: int, r: int) -> tuple[np.ndarray, np.ndarray]:
    """Initial log-variances v = 0 (r, k) and log observation noise s = 0 (r,)."""
    return np.zeros((r, k)), np.zeros(r)


# --- registry -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Objective:
    """A model: its loss (r,), its gradients, and what it needs."""

    name: str
    loss: Callable[..., Any]
    grads: Callable[..., tuple[Any, ...]]
    hyperparameters: tuple[str, ...] = ()
    needs_samples: bool = False     # only the sample formulation can run it
    stochastic: bool = False        # draws nested-dropout cut-offs every epoch
    extra_params: Callable[[int, int], tuple[np.ndarray, ...]] | None = field(default=None)
    # (k, m) x (m, k)-sized products of one spectral-form epoch (S, G, G P, W2 S; the rotation
    # term adds A W1 and W2 A): what the speed accounting counts as the epoch's k^2 m work.
    kk_products: int = 4
    # What its fixed points recover: "ordered" components, only the "subspace" (Oja), or
    # "unordered" axes (the VAE: a signed permutation). Tables say so next to d_align.
    recovers: str = "ordered"
    # A PCA learner (learners.py), not an autoencoder objective
    learner: bool = False
    # (C (m, m) host, k, runs) -> host (W1, W2): the run starts at the answer (eigh: epochs 0)
    closed_form: Callable[[np.ndarray, int, int], tuple[np.ndarray, np.ndarray]] | None = None
    # lam is one weight per unit, (k,), rather than one number for all units
    lam_per_unit: bool = False
    # The loss the official code logs: the full objective (the VAE's NELBO), else L
    logs_objective: bool = False
    # Names of the parameters after (W1, W2), as ``replay`` returns them
    extra_param_names: tuple[str, ...] = ()
    # The gradient written with k x k coefficients (``steps.packed``): "l2" (K1 = 2G,
    # K2 = 2S^T, rows 2 lam), "rag" (also L1 = -A), "nested_dropout" (K1 = G o 2M,
    # K2 = S^T o 2M, rows 2p) or "vae"; None: not of that form (the packed step cannot run it)
    kk_form: str | None = None


OBJECTIVES: dict[str, Objective] = {
    "uniform_sum": Objective("uniform_sum", l2_loss, l2_grads, ("lam",), kk_form="l2"),
    "non_uniform_sum": Objective("non_uniform_sum", l2_loss, l2_grads, ("lam",),
                                 lam_per_unit=True, kk_form="l2"),
    "rotation": Objective("rotation", rotation_loss, rotation_grads, kk_products=6,
                          kk_form="rag"),
    "nd_exp": Objective("nd_exp", nd_exp_loss, nd_exp_grads, ("keep_probs",),
                        kk_form="nested_dropout"),
    # nd's objective is its expectation over the cut-offs, i.e. nd_exp's loss.
    "nd": Objective("nd", nd_exp_loss, nd_grads, ("keep_probs",), needs_samples=True,
                    stochastic=True),
    "vae": Objective("vae", vae_loss, vae_grads, extra_params=vae_extra_params,
                     recovers="unordered", logs_objective=True,
                     extra_param_names=("logvar", "log_sigma_sq"), kk_form="vae"),
    # kk_products: M = V^T C V and V triu(M) (EigenGame: also the projection, O(k m)).
    "gha": Objective("gha", projection_loss, gha_grads, kk_products=2, learner=True),
    "eigengame": Objective("eigengame", projection_loss, eigengame_grads, kk_products=2,
                           learner=True),
    "oja": Objective("oja", projection_loss, oja_grads, kk_products=2, recovers="subspace",
                     learner=True),
    "eigh": Objective("eigh", projection_loss, eigh_grads, kk_products=0, learner=True,
                      closed_form=eigh_closed_form),
}


def get_objective(name: str) -> Objective:
    if name not in OBJECTIVES:
        raise ValueError(f"model: {name!r} is not one of {', '.join(ALL_MODELS)}")
    return OBJECTIVES[name]
