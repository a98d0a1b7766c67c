"""Hessian conditioning at the optimum: products, Lanczos, closed-form Rayleigh quotients."""
from __future__ import annotations

import numpy as np
import pytest

from lae_core.hessian import (HESSIAN_MODELS, HessianError, HessianProblem, lanczos_extremes,
                              radial_direction, rayleigh_bound, rayleigh_quotients,
                              rotation_direction)
from lae_core.hyper import preset_hyperparameters

from ..conftest import xp_assert_close

M = 7
EIGVALS = np.linspace(10.0, 1.0, M)


def problem(model: str, k: int, m: int = M, xp=None) -> HessianProblem:
    c = np.linspace(10.0, 1.0, m)
    hp = preset_hyperparameters(model, k, m, preset="well_posed", eigvals=c)
    return HessianProblem(model, c, k, hp, xp=xp)


def complement_extremes(P: HessianProblem) -> tuple[float, float]:
    """Dense extremes of H on the complement of the flat directions."""
    H = P.dense_hessian()
    U = P.flat.dense(P.size)
    if U.shape[0]:
        basis = np.linalg.svd(np.eye(P.size) - U.T @ U)[0][:, : P.size - U.shape[0]]
        H = basis.T @ H @ basis
    w = np.linalg.eigvalsh(H)
    return float(w[-1]), float(w[0])


@pytest.mark.parametrize("model", HESSIAN_MODELS)
def test_the_optimum_is_stationary(model):
    P = problem(model, 3)
    g = P.gradient(P.x[0][None], P.x[1][None])
    assert np.max(np.abs(g)) < 1e-12


@pytest.mark.parametrize("model", HESSIAN_MODELS)
def test_hessian_vector_products_equal_finite_differences_of_the_gradient(model):
    P = problem(model, 3)
    rng = np.random.default_rng(0)
    for _ in range(3):
        v = rng.standard_normal(P.size)
        d1, d2 = P.split(v)
        e = 1e-6
        plus = P.gradient(P.x[0][None] + e * d1, P.x[1][None] + e * d2)[0]
        minus = P.gradient(P.x[0][None] - e * d1, P.x[1][None] - e * d2)[0]
        np.testing.assert_allclose(P.hvp(v), (plus - minus) / (2 * e), rtol=1e-6, atol=1e-7)


def test_hessian_vector_products_stay_on_the_namespace(xp):
    """The gradients of the product run on the namespace given; only Lanczos is on the host."""
    P = problem("non_uniform_sum", 2, xp=xp)
    reference = problem("non_uniform_sum", 2)
    v = np.random.default_rng(1).standard_normal(P.size)
    np.testing.assert_allclose(P.hvp(v), reference.hvp(v), rtol=1e-10, atol=1e-10)
    from lae_core.backend import to_device
    W1 = to_device(xp, P.x[0][None], xp.float64)
    xp_assert_close(P.op.times_c(xp.matrix_transpose(W1)), P.x[1][None] * EIGVALS[:, None],
                    xp=xp)


@pytest.mark.parametrize("model", HESSIAN_MODELS)
@pytest.mark.parametrize("k", [2, 3])
def test_lanczos_extremes_equal_a_dense_eigendecomposition(model, k):
    P = problem(model, k)
    largest, smallest = complement_extremes(P)
    ex = lanczos_extremes(P, budget_s=30, tol=1e-10)
    assert ex.largest == pytest.approx(largest, rel=1e-8)
    assert ex.smallest == pytest.approx(smallest, rel=1e-6)
    assert smallest > 0


def test_nd_exp_is_flat_along_per_unit_rescalings():
    """Its k zero eigenvalues are exactly the rescalings Lanczos deflates."""
    P = problem("nd_exp", 3)
    w = np.linalg.eigvalsh(P.dense_hessian())
    assert np.sum(np.abs(w) < 1e-9) == 3
    U = P.flat.dense(P.size)
    np.testing.assert_allclose(U @ U.T, np.eye(3), atol=1e-15)
    for u in U:
        assert np.linalg.norm(P.hvp(u)) < 1e-10


@pytest.mark.parametrize("model", HESSIAN_MODELS)
def test_closed_form_quotients_equal_the_hessians(model):
    k = 4
    P = problem(model, k)
    radial, rotation = rayleigh_quotients(model, EIGVALS[:k], P.hp)
    for i in range(k):
        assert P.quotient(*radial_direction(P.scales, M, i)) == pytest.approx(radial[i],
                                                                                rel=1e-10)
    for i, j in [(0, 1), (1, 3), (2, 3)]:
        assert P.quotient(*rotation_direction(P.scales, M, i, j)) == pytest.approx(
            rotation[i, j], rel=1e-9)


@pytest.mark.parametrize("model", HESSIAN_MODELS)
def test_the_rayleigh_bound_is_below_the_exact_condition_number_and_grows_with_k(model):
    bounds = []
    for k in (2, 3, 4, 5):
        P = problem(model, k, m=9)
        largest, smallest = complement_extremes(P)
        _, _, bound = rayleigh_bound(model, P.c[:k], P.hp)
        assert 1 < bound <= largest / smallest * (1 + 1e-9)
        bounds.append(bound)
    assert all(b > a for a, b in zip(bounds, bounds[1:]))


def test_nd_exp_bound_grows_at_least_quadratically_on_the_paper_prior():
    """Over the Figure 4 grid (the geometric prior's gaps shrink like 0.9^k: eventually faster
    than any power of k, slower than k^2 at small k)."""
    c = np.linspace(100.0, 1.0, 1000)
    ks = np.array([2, 5, 10, 20, 50, 100, 200, 300, 400, 500])
    bounds = [rayleigh_bound("nd_exp", c[:k], preset_hyperparameters("nd_exp", k, 1000))[2]
              for k in ks]
    slope = np.polyfit(np.log(ks), np.log(bounds), 1)[0]
    assert slope >= 2


def test_no_minimum_is_refused_with_a_reason():
    c = np.linspace(10.0, 1.0, M)
    with pytest.raises(HessianError, match="lam_2"):
        HessianProblem("non_uniform_sum", c, 2, {"lam": np.array([1.0, 20.0])})
    with pytest.raises(HessianError, match="no isolated minimum"):
        rayleigh_bound("rotation", c[:2], {})
