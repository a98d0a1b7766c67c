"""The packed step's CPU engine: a whole evaluation block of epochs in one compiled call.

On the CPU an epoch at small k costs a few microseconds of arithmetic, while every Python-level
array call costs about one: the calls were the whole cost. ``run_block`` therefore runs every
epoch of a block, for every run, inside Numba: the products go to BLAS (``np.dot`` with an
output buffer), the model's k x k coefficients and the fused gradient-tail/optimizer/flush pass
are compiled loops. Runs are the outer loop, so one run's buffers stay in cache for the whole
block (a large batch is then no slower per run-epoch than single runs).

The arithmetic is ``packed.py``'s (read its module docstring for the packed layout and the
coefficients K1, K2, L1, a, b), in the reference's operation order. The VAE is left to the
array-call epoch: its e^v must come from NumPy's exp, which differs from libm's by one ulp for
a few per cent of arguments, a difference Adam amplifies (see tests/core/steps/test_steps.py).

Numba is optional: ``compiled()`` is None without it and the packed step falls back to its
array-call epoch.
"""
from __future__ import annotations

import math

import numpy as np

# The gradient forms compiled here (``Objective.kk_form``; the VAE's is left to the array-call
# epoch, see above)
L2, RAG, NESTED_DROPOUT = 0, 1, 2
KK_FORM_CODES = {"l2": L2, "rag": RAG, "nested_dropout": NESTED_DROPOUT}
FORM_CODES = {"spectral": 0, "covariance": 1}
# constants, stored in the parameters' dtype so that Numba keeps float32 arithmetic float32;
# the optimizer's numbers come separately, from ``optim.Optimizer.scalars`` (argument ``sc``)
CONSTANTS = ("two", "zero", "floor")
(TWO, ZERO, FLOOR) = range(len(CONSTANTS))


def constants(dtype, floor: float) -> np.ndarray:
    """The block's constants as a ``dtype`` array (rounded as NumPy rounds Python floats)."""
    return np.asarray((2, 0, floor), dtype=dtype)


try:
    import numba
except ImportError:      # optional: the packed step then runs its array-call epoch
    numba = None


def _jit(**options):
    """numba.njit with an on-disk cache (module-level functions: the cache is found again by
    the next process); without Numba the functions stay Python and are never called."""
    if numba is None:
        return lambda function: function
    return numba.njit(cache=True, error_model="numpy", **options)


def compiled():
    """(run_block, flush_inplace, tail_runs), or None without Numba."""
    return None if numba is None else (run_block, flush_inplace, tail_runs)


@_jit()
def flush_inplace(x, floor, zero):
    flat = x.reshape(-1)
    for j in range(flat.size):
        if abs(flat[j]) < floor:
            flat[j] = zero

@_jit()
def coefficients(model, S, G, K1, K2, L1, a, b, lam2, keep2, M2, c):
    """K1, K2, L1 (k, k) and the row coefficients a, b (2k,) of one run."""
    k = S.shape[0]
    for p in range(k):
        for q in range(k):
            if model == L2:         # L2: K1 = 2G, K2 = 2 S^T
                K1[p, q] = G[p, q] * c[TWO]
                K2[p, q] = S[q, p] * c[TWO]
            elif model == RAG:      # RAG: K1 = 2G, K2 = 2 S^T - A, L1 = -A
                A = (S[p, q] if p < q else c[ZERO]) - (S[q, p] if q < p else c[ZERO])
                A = A / c[TWO]
                K1[p, q] = G[p, q] * c[TWO]
                K2[p, q] = S[q, p] * c[TWO] - A
                L1[p, q] = -A
            else:                   # nested dropout in expectation: M2 = 2M
                K1[p, q] = G[p, q] * M2[p, q]
                K2[p, q] = S[q, p] * M2[q, p]
    for p in range(2 * k):
        if model == L2:
            a[p], b[p] = -c[TWO], lam2[p % k]
        elif model == RAG:
            a[p], b[p] = -c[TWO], c[ZERO]
        else:
            a[p], b[p] = -keep2[p % k], c[ZERO]

@_jit()
def update(opt, p, g, s1, s2, lr, sc, c):
    """One row's optimizer update in place (torch's order, as ``optim``), then its flush.
    opt: ``optim.UPDATE_CODES``; sc: ``Optimizer.scalars`` of this step (Nesterov: mu;
    Adam: 1 - b1, 1 - b2, b2, 1 - b1^t, sqrt(1 - b2^t), eps). One loop per optimizer, free
    of branches but the flush, so that it vectorises."""
    m = p.shape[0]
    if opt == 0:
        for j in range(m):
            p[j] = p[j] - lr * g[j]
    elif opt == 1:
        momentum = sc[0]
        for j in range(m):
            buf = s1[j] * momentum + g[j]
            s1[j] = buf
            p[j] = p[j] - (buf * momentum + g[j]) * lr
    else:
        one_minus_b1, one_minus_b2, b2, bc2, eps = sc[0], sc[1], sc[2], sc[4], sc[5]
        step_size = lr / sc[3]
        for j in range(m):
            mu = (g[j] - s1[j]) * one_minus_b1 + s1[j]
            nu = (g[j] * one_minus_b2) * g[j] + s2[j] * b2
            s1[j], s2[j] = mu, nu
            p[j] = p[j] - (mu / (math.sqrt(nu) / bc2 + eps)) * step_size
    for j in range(m):
        if abs(p[j]) < c[FLOOR]:
            p[j] = c[ZERO]

# Reductions may be reassociated (vector accumulators, as BLAS does): without it the sum
# runs at one addition per floating-point latency.
@_jit(fastmath={"reassoc"})
def gram(A, B, out, zero):
    """out = A B^T: (k, m), (k, m) -> (k, k)."""
    k, m = A.shape
    for a in range(k):
        for b in range(B.shape[0]):
            acc = zero
            for j in range(m):
                acc += A[a, j] * B[b, j]
            out[a, b] = acc

@_jit()
def left(K, V, out, zero):
    """out = K V: (k, k), (k, m) -> (k, m), as axpy rows that vectorise over m."""
    k, m = V.shape
    for a in range(K.shape[0]):
        row = out[a]
        for j in range(m):
            row[j] = zero
        for q in range(k):
            kaq, v = K[a, q], V[q]
            for j in range(m):
                row[j] += kaq * v[j]

@_jit()
def tail(opt, W, Q, Qn, prod1, prod2, E, rotation, scaled, a, b, s, d, s1, s2, lr, sc,
         cvec, spectral, g, c):
    """The fused pass over one run's (2k, m) buffer; see ``kernels`` for the formula."""
    k2, m = W.shape
    k = k2 // 2
    for q in range(k2):
        if q < k:
            src, part = prod1[q], Q[q + k]
        else:
            src, part = prod2[q - k], Q[q - k]
        aq, bq, w = a[q], b[q], W[q]
        for j in range(m):
            g[j] = src[j] + aq * part[j]
            g[j] = g[j] + bq * w[j]
        if rotation and q < k:
            for j in range(m):
                g[j] = g[j] + E[q, j]
        if scaled:
            sq, dq, own = s[q], d[q], Q[q]
            for j in range(m):
                g[j] = g[j] * sq + dq * own[j]
        update(opt, w, g, s1[q], s2[q], lr, sc, c)
        if spectral:
            for j in range(m):
                Qn[q, j] = w[j] * cvec[j]

@_jit()
def run_block(model, form, opt, steps, start, W, Qs, cmat, cvec, S, G, K1, K2, L1,
              E, prod1, prod2, rows, s1, s2, lr, lam2, keep2, M2, c, scalars):
    """``steps`` epochs of every run. W (r, 2k, m); Qs (2, r, 2k, m): Q in Qs[start] and, in
    the eigenbasis, the next Q; rows (r, 2, 2k): a, b; scalars (steps, 6): the optimizer's
    scalars of each epoch (``Optimizer.scalars``). Returns the index of the buffer that holds
    the current Q."""
    r, k2, m = W.shape
    k = k2 // 2
    g = np.empty(m, dtype=W.dtype)
    cur = start
    for i in range(r):
        cur = start
        for t in range(steps):
            Wi, Q, Qn = W[i], Qs[cur, i], Qs[1 - cur, i]
            if form == 1:
                np.dot(Wi, cmat, Q)
            P, W1, W2T = Q[:k], Wi[:k], Wi[k:]
            gram(P, W1, S[i], c[ZERO])
            gram(W2T, W2T, G[i], c[ZERO])
            flush_inplace(S[i], c[FLOOR], c[ZERO])
            flush_inplace(G[i], c[FLOOR], c[ZERO])
            coefficients(model, S[i], G[i], K1[i], K2[i], L1[i], rows[i, 0], rows[i, 1],
                         lam2, keep2, M2, c)
            left(K1[i], P, prod1[i], c[ZERO])
            left(K2[i], W2T, prod2[i], c[ZERO])
            if model == RAG:
                left(L1[i], W1, E[i], c[ZERO])
            tail(opt, Wi, Q, Qn, prod1[i], prod2[i], E[i], model == RAG, False,
                 rows[i, 0], rows[i, 1], rows[i, 0], rows[i, 1], s1[i], s2[i], lr[i],
                 scalars[t], cvec, form == 0, g, c)
            if form == 0:
                cur = 1 - cur
    return cur

@_jit()
def tail_runs(opt, W, Q, Qn, prod1, prod2, E, a, b, s, d, scaled, s1, s2, lr, sc, cvec,
              spectral, c):
    """``tail`` for every run: the fused pass of the array-call epoch (``kernels``)."""
    g = np.empty(W.shape[-1], dtype=W.dtype)
    for i in range(W.shape[0]):
        tail(opt, W[i], Q[i], Qn[i], prod1[i], prod2[i], E[i], E.shape[1] > 0, scaled,
             a[i], b[i], s[i], d[i], s1[i], s2[i], lr[i], sc, cvec, spectral, g, c)

