"""Objectives: analytic gradients against finite differences, the three formulations against
each other, and the properties the theory states (docs/theory.md, "What the tests hold the
formulas to")."""
from __future__ import annotations

import array_api_compat.numpy as xnp
import numpy as np
import pytest

from lae_core.backend import to_device, to_host
from lae_core.hyper import (device_hyperparameters, geometric_keep_probs,
                            preset_hyperparameters, validate_hyperparameters)
from lae_core.objectives import (get_objective, moments, nd_exp_grads, nd_grads,
                                 reconstruction_loss)
from lae_core.operators import into_basis, make_operator
from lae_core.rotation import rotation_generator

from ..conftest import rel_err, xp_assert_close

K = 3
DETERMINISTIC = ("uniform_sum", "non_uniform_sum", "rotation", "nd_exp", "vae")
WITH_LOSS = ("uniform_sum", "non_uniform_sum", "nd_exp", "vae")  # RAG is not a gradient


def random_params(model: str, r: int, k: int, m: int, seed: int = 0) -> tuple:
    """O(1) weights (far from the tiny paper init, so every term matters), host float64."""
    rng = np.random.default_rng(seed)
    params = (0.3 * rng.standard_normal((r, k, m)), 0.3 * rng.standard_normal((r, m, k)))
    if model == "vae":
        params += (0.2 * rng.standard_normal((r, k)), 0.2 * rng.standard_normal(r))
    return params


def hyper(xp, model: str, data, k: int = K) -> dict:
    hp = preset_hyperparameters(model, k, data.m, preset="well_posed", eigvals=data.eigvals)
    return device_hyperparameters(xp, validate_hyperparameters(model, hp, k), xp.float64)


def on_device(xp, params):
    return tuple(to_device(xp, p, xp.float64) for p in params)


def central_differences(f, params: tuple, h: float = 1e-6) -> tuple:
    """Gradient of the scalar f(params) by central differences, entry by entry."""
    grads = []
    for i, p in enumerate(params):
        g = np.zeros_like(p)
        for idx in np.ndindex(p.shape):
            up, down = [q.copy() for q in params], [q.copy() for q in params]
            up[i][idx] += h
            down[i][idx] -= h
            g[idx] = (f(tuple(up)) - f(tuple(down))) / (2 * h)
        grads.append(g)
    return tuple(grads)


@pytest.mark.parametrize("model", WITH_LOSS)
def test_gradients_match_central_differences(model, small_data):
    op = make_operator("covariance", xnp, small_data, K, xnp.float64)
    objective, hp = get_objective(model), hyper(xnp, model, small_data)
    params = random_params(model, 2, K, small_data.m)
    analytic = objective.grads(op, params, hp)
    numeric = central_differences(lambda p: float(np.sum(objective.loss(op, p, hp))), params)
    for a, n in zip(analytic, numeric):
        assert rel_err(a, n) < 1e-6


def masked_loss(X, W1, W2, mask):
    """(1/n) sum_j ||x_j - W2 (mask_j o W1 x_j)||^2, written independently of lae_core."""
    R = (mask * (X @ W1.T)) @ W2.T - X
    return float(np.sum(R * R) / X.shape[0])


def test_nd_gradients_match_central_differences_for_fixed_masks(small_data):
    op = make_operator("sample", xnp, small_data, K, xnp.float64)
    hp = hyper(xnp, "nd", small_data)
    W1, W2 = random_params("nd", 1, K, small_data.m)
    cutoffs = np.random.default_rng(1).integers(0, K, size=(1, small_data.n)).astype(np.int32)
    mask = (np.arange(K) <= cutoffs[0][:, None]).astype(float)
    analytic = nd_grads(op, (W1, W2), hp, cutoffs)
    numeric = central_differences(
        lambda p: masked_loss(small_data.X, p[0][0], p[1][0], mask), (W1, W2))
    for a, n in zip(analytic, numeric):
        assert rel_err(a, n) < 1e-6


def test_nd_gradient_averaged_over_cutoffs_is_nd_exp_gradient(small_data):
    """E_b[grad of the masked loss] = grad of the expected loss (nested dropout, Section 5)."""
    p = geometric_keep_probs(K, 0.7)
    prior = p - np.append(p[1:], 0.0)                  # P(b = i)
    hp = device_hyperparameters(xnp, {"keep_probs": p}, xnp.float64)
    samples = make_operator("sample", xnp, small_data, K, xnp.float64)
    params = random_params("nd", 2, K, small_data.m)
    expected = [np.zeros_like(q) for q in params]
    for b in range(K):
        cutoffs = np.full((2, small_data.n), b, dtype=np.int32)
        for e, g in zip(expected, nd_grads(samples, params, hp, cutoffs)):
            e += prior[b] * g
    for e, g in zip(expected, nd_exp_grads(samples, params, hp)):
        assert rel_err(e, g) < 1e-12


@pytest.mark.parametrize("model", DETERMINISTIC)
def test_formulations_give_the_same_gradients(xp, model, small_data):
    """covariance == sample, and spectral == covariance after rotating into the eigenbasis."""
    objective = get_objective(model)
    params = random_params(model, 2, K, small_data.m)

    def grads(namespace, form: str) -> tuple:
        op = make_operator(form, namespace, small_data, K, namespace.float64)
        W1, W2 = into_basis(form, small_data, *params[:2])
        return objective.grads(op, on_device(namespace, (W1, W2) + params[2:]),
                               hyper(namespace, model, small_data))

    reference = [to_host(g) for g in grads(xnp, "covariance")]   # NumPy, dense C
    for form in ("covariance", "sample", "spectral"):
        # gradients change basis as the weights do (an orthogonal change of variables)
        expected = into_basis(form, small_data, *reference[:2]) + tuple(reference[2:])
        for a, b in zip(grads(xp, form), expected):
            xp_assert_close(a, b, xp=xp, rtol=0, atol=1e-10 * np.abs(b).max(), err_msg=form)


def test_rotation_term_conserves_reconstruction_loss(xp, small_data):
    """<dL/dW1, A W1> - <dL/dW2, W2 A> = 0: RAG moves along a level set of L (first order)."""
    op = make_operator("covariance", xp, small_data, K, xp.float64)
    W1, W2 = on_device(xp, random_params("rotation", 2, K, small_data.m))
    plain = get_objective("uniform_sum").grads(op, (W1, W2),
                                               device_hyperparameters(xp, {"lam": 0.0}, xp.float64))
    A = rotation_generator(xp, moments(op, W1, W2).S)
    along_W1 = xp.sum(plain[0] * (A @ W1), axis=(-2, -1))
    along_W2 = xp.sum(plain[1] * (W2 @ A), axis=(-2, -1))
    scale = np.abs(to_host(along_W1)).max()
    assert scale > 1e-3  # the term is not trivially zero
    xp_assert_close(along_W1, along_W2, xp=xp, rtol=0, atol=1e-12 * scale)


def closed_form_optimum(data, lam: np.ndarray):
    """Theorems 2-3: W1* = (I - Lam diag(c)^-1)^{1/2} U_k^T and W2* = W1*^T."""
    k = lam.size
    W1 = np.sqrt(1 - lam / data.eigvals[:k])[:, None] * data.eigvecs[:, :k].T
    return W1, W1.T.copy()


def test_closed_form_optimum_of_non_uniform_sum_is_stationary(small_data):
    lam = np.linspace(0.05, 0.8, K) * small_data.eigvals[K - 1]
    assert np.all(lam < small_data.eigvals[:K])
    op = make_operator("covariance", xnp, small_data, K, xnp.float64)
    W1, W2 = closed_form_optimum(small_data, lam)
    objective = get_objective("non_uniform_sum")
    hp = device_hyperparameters(xnp, {"lam": lam}, np.float64)
    g1, g2 = objective.grads(op, (W1[None], W2[None]), hp)
    assert max(np.abs(g1).max(), np.abs(g2).max()) < 1e-12 * np.abs(small_data.C).max()
    # and it beats nearby points: a minimum, not a saddle
    base = objective.loss(op, (W1[None], W2[None]), hp)[0]
    rng = np.random.default_rng(0)
    for _ in range(20):
        d1, d2 = 1e-3 * rng.standard_normal(W1.shape), 1e-3 * rng.standard_normal(W2.shape)
        assert objective.loss(op, ((W1 + d1)[None], (W2 + d2)[None]), hp)[0] > base


def test_reconstruction_loss_equals_its_definition(small_data):
    op = make_operator("covariance", xnp, small_data, K, xnp.float64)
    W1, W2 = random_params("rotation", 1, K, small_data.m)
    R = small_data.X - small_data.X @ W1[0].T @ W2[0].T
    assert rel_err(reconstruction_loss(op, W1, W2), [np.sum(R * R) / small_data.n]) < 1e-12
