"""Hessian conditioning at the closed-form global optimum (docs/theory.md, "Hessian
conditioning").

Everything works in the eigenbasis of C (the spectral operator), where the optimum is axis
aligned and the Hessian's eigenvalues are those of the original basis (an orthogonal change of
parameters). Parameters x = (W1 (k, m), W2 (m, k)), n = 2 k m numbers.

Optimum (Theorems 2-3 and their nested-dropout analogue), W2 = W1^T = E diag(a), E = the first k
identity columns:
  non_uniform_sum  a_i = sqrt(1 - lam_i / c_i), which needs lam_i < c_i;
  nd_exp           a_i = 1. L_ND is invariant under W1 -> D W1, W2 -> W2 D^-1 (D diagonal), so
                   its minima form a k-dimensional family and its Hessian has k zero
                   eigenvalues along it. Gradient flow conserves ||W1_i||^2 - ||W2_i||^2 along
                   this symmetry, ~0 from the paper's tiny initialisation: the balanced point
                   a_i = 1 is the one training approaches. The condition number is taken on the
                   complement of the flat directions (they do not change d_align).

Rayleigh quotients q(v) = v^T H v / v^T v at the optimum, in closed form (the units decouple
in the eigenbasis, so each reduces to a one- or two-unit problem):
  radial i (scale unit i up, both W1 row and W2 column):
      non_uniform_sum 4 (c_i - lam_i);             nd_exp 4 p_i c_i
  rotation i < j (v = (A W1, -W2 A), A = e_i e_j^T - e_j e_i^T):
      non_uniform_sum 2 (lam_j - lam_i)(a_i^2 - a_j^2) / (a_i^2 + a_j^2)
      nd_exp          (p_i - p_j)(c_i - c_j) / 2
so kappa(H) >= max_i radial_i / min_{i<j} rotation_ij, for any m and k in O(k^2).

Exact extremes: Lanczos (scipy.sparse.linalg.eigsh) on Hessian-vector products of the analytic
gradient. The gradient is a cubic polynomial in x, so the Richardson combination of central
differences  Hv = [8 (g(x + e v) - g(x - e v)) - (g(x + 2 e v) - g(x - 2 e v))] / (12 e)
is exact (the error term is the fifth derivative) for any step e: e = 1/2 keeps rounding at
the level of g itself. The four gradients are one batched call on the run axis, on the array
namespace given (CuPy on a GPU); Lanczos itself runs on the host.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from . import backend as be
from .hyper import device_hyperparameters
from .objectives import get_objective
from .operators import Spectral

STEP = 0.5                      # e of the exact Richardson HVP (see the module docstring)
RICHARDSON = (1.0, -1.0, 2.0, -2.0)


class HessianError(ValueError):
    """A model or hyperparameters without an isolated minimum to analyse."""


class BudgetExceeded(RuntimeError):
    """Lanczos did not finish within its time budget."""


# --- the optimum and its Rayleigh quotients: one entry per model -------------------------------

def _l2_scales(c: np.ndarray, hp: dict[str, Any]) -> np.ndarray:
    lam = np.broadcast_to(np.asarray(hp["lam"], dtype=np.float64), c.shape)
    if np.any(lam >= c):
        i = int(np.argmax(lam >= c))
        raise HessianError(f"hessian: lam_{i + 1} = {lam[i]:.4g} >= c_{i + 1} = {c[i]:.4g}: "
                           "no minimum with all k units (use the well_posed preset)")
    return np.sqrt(1 - lam / c)


def _l2_quotients(c: np.ndarray, hp: dict[str, Any], a2: np.ndarray, i: np.ndarray,
                  j: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lam = np.broadcast_to(np.asarray(hp["lam"], dtype=np.float64), c.shape)
    return 4 * (c - lam), 2 * (lam[j] - lam[i]) * (a2[i] - a2[j]) / (a2[i] + a2[j])


def _nd_quotients(c: np.ndarray, hp: dict[str, Any], a2: np.ndarray, i: np.ndarray,
                  j: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(hp["keep_probs"], dtype=np.float64)
    return 4 * p * c, (p[i] - p[j]) * (c[i] - c[j]) / 2


@dataclass(frozen=True)
class HessianForms:
    """What the analysis knows of one model (module docstring): the optimum's scales a (k,)
    from c (k,) and hp; radial (k,) and rotation (pairs,) quotients from (c, hp, a^2, i, j);
    whether per-unit rescalings are exact symmetries (flat directions)."""

    scales: Callable[[np.ndarray, dict[str, Any]], np.ndarray]
    quotients: Callable[..., tuple[np.ndarray, np.ndarray]]
    rescaling_symmetry: bool = False


HESSIAN_FORMS = {
    "non_uniform_sum": HessianForms(_l2_scales, _l2_quotients),
    "nd_exp": HessianForms(lambda c, hp: np.ones(c.size), _nd_quotients, True),
}
HESSIAN_MODELS = tuple(HESSIAN_FORMS)


def hessian_forms(model: str) -> HessianForms:
    if model not in HESSIAN_FORMS:
        raise HessianError(f"hessian: {model} has no isolated minimum to analyse (analysed: "
                           f"{', '.join(HESSIAN_MODELS)}; uniform_sum and rotation are flat "
                           "along rotations, the VAE is not covered)")
    return HESSIAN_FORMS[model]


def optimum_scales(model: str, c: np.ndarray, hp: dict[str, Any]) -> np.ndarray:
    """a (k,): the optimum's W2 = W1^T = E diag(a); c: the top k eigenvalues (k,)."""
    return hessian_forms(model).scales(np.asarray(c, dtype=np.float64), hp)


def rayleigh_quotients(model: str, c: np.ndarray, hp: dict[str, Any]
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Radial quotients (k,) and rotation quotients (k, k) (upper triangle i < j, else nan)."""
    c = np.asarray(c, dtype=np.float64)
    a2 = optimum_scales(model, c, hp) ** 2
    i, j = np.triu_indices(c.size, k=1)
    radial, pairs = hessian_forms(model).quotients(c, hp, a2, i, j)
    rotation = np.full((c.size, c.size), np.nan)
    rotation[i, j] = pairs
    return radial, rotation


def rayleigh_bound(model: str, c: np.ndarray, hp: dict[str, Any]) -> tuple[float, float, float]:
    """(max radial quotient, min rotation quotient, their ratio <= kappa(H)); k >= 2."""
    radial, rotation = rayleigh_quotients(model, c, hp)
    high, low = float(np.max(radial)), float(np.nanmin(rotation))
    return high, low, high / low if low > 0 else np.inf


def radial_direction(a: np.ndarray, m: int, i: int) -> tuple[np.ndarray, np.ndarray]:
    """The radial direction of unit i at the optimum: (dW1 (k, m), dW2 (m, k))."""
    d1 = np.zeros((a.size, m))
    d1[i, i] = a[i]
    return d1, d1.T.copy()


def rotation_direction(a: np.ndarray, m: int, i: int, j: int
                       ) -> tuple[np.ndarray, np.ndarray]:
    """(A W1, -W2 A) with A = e_i e_j^T - e_j e_i^T at the optimum: (k, m), (m, k)."""
    k = a.size
    A = np.zeros((k, k))
    A[i, j], A[j, i] = 1.0, -1.0
    W1 = np.zeros((k, m))
    W1[np.arange(k), np.arange(k)] = a
    return A @ W1, -(W1.T @ A)


# --- Hessian-vector products --------------------------------------------------------------------

@dataclass
class HessianProblem:
    """The optimum of ``model`` at latent size k on eigenvalues c (m,), ready for products."""

    model: str
    c: np.ndarray
    k: int
    hp: dict[str, Any]
    xp: Any = None
    dtype: str = "float64"

    def __post_init__(self) -> None:
        xp = self.xp if self.xp is not None else be.get_namespace("numpy")
        self.xp, self.m = xp, self.c.size
        dt = be.dtype_of(xp, self.dtype)
        self.scales = optimum_scales(self.model, self.c[: self.k], self.hp)
        self.op = Spectral(xp, self.c, self.k, dt)
        self.op.floor = 0.0         # no flushing: the products must be exact polynomials
        self.objective = get_objective(self.model)
        self.device_hp = device_hyperparameters(xp, self.hp, dt)
        W1 = np.zeros((self.k, self.m))
        W1[np.arange(self.k), np.arange(self.k)] = self.scales
        self.x = (W1, W1.T.copy())
        self.flat = flat_directions(self.model, self.scales, self.m)
        self._dt = dt

    @property
    def size(self) -> int:
        """n = 2 k m, the number of parameters."""
        return 2 * self.k * self.m

    def split(self, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A flat vector (n,) as (dW1 (k, m), dW2 (m, k))."""
        km = self.k * self.m
        return v[:km].reshape(self.k, self.m), v[km:].reshape(self.m, self.k)

    @staticmethod
    def join(d1: np.ndarray, d2: np.ndarray) -> np.ndarray:
        return np.concatenate([d1.ravel(), d2.ravel()])

    def gradient(self, W1: np.ndarray, W2: np.ndarray) -> np.ndarray:
        """The analytic gradient at a batch of points (r, k, m), (r, m, k), flat: (r, n)."""
        xp = self.xp
        params = (be.to_device(xp, W1, self._dt), be.to_device(xp, W2, self._dt))
        g1, g2 = self.objective.grads(self.op, params, self.device_hp)
        r = W1.shape[0]
        return np.concatenate([be.to_host(g1).reshape(r, -1), be.to_host(g2).reshape(r, -1)],
                              axis=1).astype(np.float64)

    def hvp(self, v: np.ndarray) -> np.ndarray:
        """H v (n,), exact for the cubic gradient (module docstring): 4 gradients, 1 call."""
        d1, d2 = self.split(np.asarray(v, dtype=np.float64).ravel())
        t = STEP * np.asarray(RICHARDSON)[:, None, None]
        g = self.gradient(self.x[0] + t * d1, self.x[1] + t * d2)
        return (8 * (g[0] - g[1]) - (g[2] - g[3])) / (12 * STEP)

    def quotient(self, d1: np.ndarray, d2: np.ndarray) -> float:
        """v^T H v / v^T v for the direction (dW1, dW2)."""
        v = self.join(d1, d2)
        return float(v @ self.hvp(v) / (v @ v))

    def dense_hessian(self) -> np.ndarray:
        """The full (n, n) Hessian, column by column (small problems and tests only)."""
        H = np.stack([self.hvp(e) for e in np.eye(self.size)], axis=1)
        return (H + H.T) / 2


@dataclass(frozen=True)
class FlatDirections:
    """Orthonormal directions of exact symmetry at the optimum, each touching two entries of
    the flat parameter vector: positions ``index`` (s, 2), entries ``value`` (s, 2). Kept
    sparse: a dense (s, n) basis would be k x 2 k m numbers (4 GB at k = 500, m = 1000)."""

    index: np.ndarray
    value: np.ndarray

    def coefficients(self, v: np.ndarray) -> np.ndarray:
        """U v: (s,)."""
        return np.sum(v[self.index] * self.value, axis=1)

    def combine(self, coefficients: np.ndarray, n: int) -> np.ndarray:
        """U^T coefficients: (n,)."""
        out = np.zeros(n)
        np.add.at(out, self.index.ravel(), (self.value * coefficients[:, None]).ravel())
        return out

    def dense(self, n: int) -> np.ndarray:
        """U as an (s, n) array (small problems and tests)."""
        return np.stack([self.combine(e, n) for e in np.eye(len(self.index))]) \
            if len(self.index) else np.zeros((0, n))


def flat_directions(model: str, a: np.ndarray, m: int) -> FlatDirections:
    """nd_exp's per-unit rescalings (row i of W1 up, column i of W2 down), normalised; none
    for non_uniform_sum."""
    k = a.size
    if not hessian_forms(model).rescaling_symmetry:
        return FlatDirections(np.zeros((0, 2), dtype=np.int64), np.zeros((0, 2)))
    units = np.arange(k)
    # W1[i, i] sits at i m + i of the flat vector, W2[i, i] at k m + i k + i
    index = np.stack([units * m + units, k * m + units * k + units], axis=1)
    value = np.stack([a, -a], axis=1) / (np.sqrt(2) * a[:, None])
    return FlatDirections(index, value)


# --- Lanczos ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Extremes:
    """Extreme Hessian eigenvalues on the complement of the flat directions."""

    largest: float
    smallest: float
    products: int           # Hessian-vector products spent
    seconds: float

    @property
    def condition(self) -> float:
        return self.largest / self.smallest if self.smallest > 0 else np.inf


def lanczos_extremes(problem: HessianProblem, budget_s: float, tol: float = 1e-8
                     ) -> Extremes:
    """Largest and smallest eigenvalue by ``eigsh`` on Hessian-vector products.

    The flat directions U (if any) are moved to the top of the spectrum, H' = P H P + s U U^T
    with P = I - U U^T and s = the largest eigenvalue, so that the smallest eigenvalue found
    is the smallest on their complement. Raises BudgetExceeded past ``budget_s`` seconds.
    """
    from scipy.sparse.linalg import LinearOperator, eigsh

    U, n, start, count = problem.flat, problem.size, time.perf_counter(), [0]

    def product(shift: float) -> Callable[[np.ndarray], np.ndarray]:
        def matvec(v: np.ndarray) -> np.ndarray:
            if time.perf_counter() - start > budget_s:
                raise BudgetExceeded(f"Lanczos stopped after {budget_s:g} s")
            count[0] += 1
            v = np.asarray(v, dtype=np.float64).ravel()
            along = U.combine(U.coefficients(v), n)
            Hv = problem.hvp(v - along)
            return Hv - U.combine(U.coefficients(Hv), n) + shift * along
        return matvec

    v0 = np.random.default_rng(0).standard_normal(n)   # reproducible start vector
    top = eigsh(LinearOperator((n, n), matvec=product(0.0), dtype=np.float64), k=1,
                which="LA", tol=tol, v0=v0, return_eigenvectors=False)[0]
    low = eigsh(LinearOperator((n, n), matvec=product(float(top)), dtype=np.float64), k=1,
                which="SA", tol=tol, v0=v0, return_eigenvectors=False, maxiter=50 * n)[0]
    return Extremes(float(top), float(low), count[0], time.perf_counter() - start)
