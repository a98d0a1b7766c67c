"""The fused passes of the packed step (``packed.py``), one implementation per backend.

Each kernel set has these operations:
  ``flush(a, floor)``  in place: entries of ``a`` below ``floor`` in magnitude become 0;
  ``tail(optimizer, W, Q, prod1, prod2, E, a, b, sd, lr, state, count, floor, c, Qn)``
      in place, for every run i, row q < 2k and column j of W (r, 2k, m):
        g = prod[q, j] + a[q] Q[partner(q), j] + b[q] W[q, j] (+ E[q, j] for q < k, RAG)
        g = s[q] g + d[q] Q[q, j]     (only when sd = (s, d) is given: the VAE)
      where prod = (prod1; prod2) and partner swaps the halves; then the optimizer's update
      of W with g (torch's operation order, as ``optim``), the flush of W, and when ``c`` is
      given (eigenbasis) Qn = W c, the next epoch's Q.
``ArrayProducts`` forms the rest of an epoch with BLAS or cuBLAS; ``CupyKernels`` also has it
as kernels of its own, for ``packed.GraphStep``.

- ``NumpyKernels``: NumPy calls with ``out=``; the fallback without Numba and the oracle of
  the other two.
- ``NumbaKernels``: the same arithmetic compiled in one loop nest (the CPU default).
- ``CupyKernels``: the same arithmetic as one CUDA kernel (``cupy.RawModule``).

Scalars follow the arrays' dtype exactly as NumPy's weak-scalar rules do in ``optim``.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import cpu_block

MOMENTUM, B1, B2, EPS = 0.9, 0.9, 0.999, 1e-8   # torch's defaults, as ``optim``
OPTIMIZER_CODES = {"gd": 0, "sgd_nesterov": 1, "adam": 2}


def optimizer_scalars(optimizer: str, count: int, dtype: Any) -> np.ndarray:
    """(c1, ..., c6) in ``dtype``: Nesterov (mu); Adam at step t = count
    (1-b1, 1-b2, b2, 1-b1^t, sqrt(1-b2^t), eps), the bias corrections computed as ``optim``
    does, in double precision on the host."""
    values = {"gd": (), "sgd_nesterov": (MOMENTUM,),
              "adam": (1 - B1, 1 - B2, B2, 1 - B1 ** count, math.sqrt(1 - B2 ** count),
                       EPS)}[optimizer]
    out = np.zeros(6, dtype=dtype)
    out[: len(values)] = values
    return out


class ArrayProducts:
    """The k x k x m products of an epoch and the rules' k x k coefficients, as NumPy or CuPy
    calls into preallocated outputs (BLAS, cuBLAS); ``CupyKernels`` has the same three as
    kernels of its own, which a CUDA graph can capture. W, Q (r, 2k, m); S, G, K1, K2, L1
    (r, k, k); prod1, prod2, E (r, k, m). ``flush``: the kernel set's own (in place, no
    temporary on the epoch path); NumPy's by default."""

    def __init__(self, xp: Any, flush: Any = None):
        self.xp = xp
        self.flush = flush or NumpyKernels.flush

    def grams(self, W, Q, S, G, floor: float) -> None:
        """S = P W1^T, G = W2T W2T^T (P = Q[:, :k]), flushed."""
        xp, k = self.xp, S.shape[1]
        xp.matmul(Q[:, :k], W[:, :k].mT, out=S)
        xp.matmul(W[:, k:], W[:, k:].mT, out=G)
        self.flush(S, floor)
        self.flush(G, floor)

    def coefficients(self, model: int, S, G, M2, K1, K2, L1) -> None:
        """``cpu_block.MODEL_CODES``: 0 L2 (K1 = 2G, K2 = 2S^T), 1 RAG (also L1 = -A,
        K2 = 2S^T - A, A = skew(triu(S, 1))), 2 nested dropout (K1 = G o 2M, K2 = S^T o 2M)."""
        xp = self.xp
        if model == 2:
            xp.multiply(G, M2, out=K1)
            xp.multiply(S.mT, M2.mT, out=K2)
            return
        xp.multiply(G, 2, out=K1)
        xp.multiply(S.mT, 2, out=K2)
        if model == 1:
            T = xp.triu(S, 1)
            xp.subtract(T.mT, T, out=L1)
            L1 /= 2
            K2 += L1

    def left(self, W, Q, K1, K2, L1, prod1, prod2, E, rotation: bool) -> None:
        """prod1 = K1 P, prod2 = K2 W2T and, for RAG, E = L1 W1."""
        xp, k = self.xp, K1.shape[1]
        xp.matmul(K1, Q[:, :k], out=prod1)
        xp.matmul(K2, W[:, k:], out=prod2)
        if rotation:
            xp.matmul(L1, W[:, :k], out=E)


class NumpyKernels:
    """Plain NumPy, a few calls per operation; exact reference arithmetic."""

    def __init__(self):
        self._g: dict = {}

    @staticmethod
    def flush(a: np.ndarray, floor: float) -> None:
        a[np.abs(a) < floor] = 0

    def tail(self, optimizer, W, Q, prod1, prod2, E, a, b, sd, lr, state, count, floor, c,
             Qn):
        k = W.shape[1] // 2
        sc = optimizer_scalars(optimizer, count, W.dtype)
        g = self._buffer(W)
        np.multiply(a[:, :k, None], Q[:, k:], out=g[:, :k])
        np.multiply(a[:, k:, None], Q[:, :k], out=g[:, k:])
        g[:, :k] += prod1
        g[:, k:] += prod2
        g += b[..., None] * W
        if E.shape[1]:
            g[:, :k] += E
        if sd is not None:
            g *= sd[0][..., None]
            g += sd[1][..., None] * Q
        lr3 = lr[:, None, None]
        if optimizer == "gd":
            W -= lr3 * g
        elif optimizer == "sgd_nesterov":
            buf, = state
            buf *= sc[0]
            buf += g
            W -= (buf * sc[0] + g) * lr3
        else:
            m, v = state
            m[...] = (g - m) * sc[0] + m
            v[...] = (g * sc[1]) * g + v * sc[2]
            denom = np.sqrt(v) / sc[4] + sc[5]
            W -= (m / denom) * (lr3 / sc[3])
        self.flush(W, floor)
        if c is not None:
            np.multiply(W, c, out=Qn)

    def _buffer(self, W: np.ndarray) -> np.ndarray:
        key = (W.shape, W.dtype)
        if key not in self._g:
            self._g = {key: np.empty_like(W)}
        return self._g[key]


class NumbaKernels:
    """The CPU default: ``cpu_block``'s compiled loops, run by run."""

    def __init__(self, compiled):
        _, self._flush, self._tail = compiled
        self._spare: dict = {}
        self._consts: dict = {}

    def flush(self, a: np.ndarray, floor: float) -> None:
        self._flush(a, a.dtype.type(floor), a.dtype.type(0))

    def tail(self, optimizer, W, Q, prod1, prod2, E, a, b, sd, lr, state, count, floor, c,
             Qn):
        s1, s2 = (tuple(state) + self._spares(W))[:2]
        s, d = (a, b) if sd is None else sd
        consts = self._constants(W.dtype, floor)
        self._tail(cpu_block.OPT_CODES[optimizer], W, Q, W if Qn is None else Qn, prod1, prod2,
                   E, a, b, s, d, sd is not None, s1, s2, lr, count,
                   W[0, 0] if c is None else c, c is not None, consts)

    def _constants(self, dtype, floor: float) -> np.ndarray:
        """The pass's scalars, made once per dtype and floor (not every epoch)."""
        key = (dtype, floor)
        if key not in self._consts:
            self._consts[key] = cpu_block.constants(dtype, floor)
        return self._consts[key]

    def _spares(self, W: np.ndarray) -> tuple:
        """Zero buffers for the state slots an optimizer does not use (the pass writes them)."""
        key = (W.shape, W.dtype)
        if key not in self._spare:
            self._spare = {key: (np.zeros_like(W), np.zeros_like(W))}
        return self._spare[key]


CUDA_SOURCE = r"""
template<typename T>
__global__ void lae_flush(T* a, const long long size, const T floor) {
    long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx < size && fabs(a[idx]) < floor) a[idx] = (T)0;
}

template<typename T, int OPT>
__global__ void lae_tail(const long long total, const int k, const int m,
        T* __restrict__ W, const T* __restrict__ Q, const T* __restrict__ prod1,
        const T* __restrict__ prod2, const T* __restrict__ E, const int has_e,
        const T* __restrict__ a, const T* __restrict__ b, const T* __restrict__ s,
        const T* __restrict__ d, const int has_sd, const T* __restrict__ lr,
        T* __restrict__ s1, T* __restrict__ s2,
        const T c1, const T c2, const T c3, const T c4, const T c5, const T c6,
        const T floor, const T* __restrict__ c, T* __restrict__ Qn, const int write_q) {
    const long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= total) return;
    const int k2 = 2 * k;
    const long long per_run = (long long)k2 * m, half = (long long)k * m;
    const long long i = idx / per_run;
    const int q = (int)((idx % per_run) / m);
    const int j = (int)(idx % m);
    T g;
    if (q < k) {
        g = prod1[i * half + (long long)q * m + j]
            + a[i * k2 + q] * Q[i * per_run + (long long)(q + k) * m + j];
    } else {
        g = prod2[i * half + (long long)(q - k) * m + j]
            + a[i * k2 + q] * Q[i * per_run + (long long)(q - k) * m + j];
    }
    g = g + b[i * k2 + q] * W[idx];
    if (has_e && q < k) g = g + E[i * half + (long long)q * m + j];
    if (has_sd) g = g * s[i * k2 + q] + d[i * k2 + q] * Q[idx];
    T p = W[idx];
    if (OPT == 0) {
        p = p - lr[i] * g;
    } else if (OPT == 1) {
        const T buf = s1[idx] * c1 + g;
        s1[idx] = buf;
        p = p - (buf * c1 + g) * lr[i];
    } else {
        const T mu = (g - s1[idx]) * c1 + s1[idx];
        const T nu = (g * c2) * g + s2[idx] * c3;
        s1[idx] = mu;
        s2[idx] = nu;
        p = p - (mu / (sqrt(nu) / c5 + c6)) * (lr[i] / c4);
    }
    if (fabs(p) < floor) p = (T)0;
    W[idx] = p;
    if (write_q) Qn[idx] = p * c[j];
}
"""
# The rest of a small-k epoch as kernels, so that the eigenbasis epoch needs no cuBLAS call and
# a block of epochs can be captured as one CUDA graph (CuPy refuses cuBLAS during capture). One
# thread per output, no synchronisation: tests/core/steps/test_cuda_source.py runs them on the host.
CUDA_SMALL_K_SOURCE = r"""
template<typename T>
__global__ void lae_grams(const long long total, const int k, const int m,
        const T* __restrict__ W, const T* __restrict__ Q, T* __restrict__ S,
        T* __restrict__ G, const T floor) {
    // S = P W1^T (P = Q[:k]) and G = W2T W2T^T of every run, flushed: thread (i, which, a, b)
    const long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= total) return;
    const int kk = k * k;
    const long long i = idx / (2 * kk);
    const int rem = (int)(idx % (2 * kk)), which = rem / kk, a = (rem % kk) / k, b = rem % k;
    const long long base = i * 2 * k * (long long)m;
    const T* A = which == 0 ? Q + base + (long long)a * m : W + base + (long long)(k + a) * m;
    const T* B = W + base + (long long)((which == 0 ? 0 : k) + b) * m;
    T acc = (T)0;
    for (int j = 0; j < m; ++j) acc = acc + A[j] * B[j];
    if (fabs(acc) < floor) acc = (T)0;
    (which == 0 ? S : G)[i * kk + a * k + b] = acc;
}

template<typename T>
__global__ void lae_coefficients(const long long total, const int k, const int model,
        const T* __restrict__ S, const T* __restrict__ G, const T* __restrict__ M2,
        T* __restrict__ K1, T* __restrict__ K2, T* __restrict__ L1) {
    // K1, K2 (and L1) of every run, as packed.py's rules: model 0 L2, 1 RAG, 2 nd_exp
    const long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= total) return;
    const int kk = k * k, p = (int)(idx % kk) / k, q = (int)(idx % k);
    const long long i = idx / kk, at = i * kk + (long long)p * k + q;
    const T two = (T)2, Spq = S[at], Sqp = S[i * kk + (long long)q * k + p], Gpq = G[at];
    if (model == 2) {
        K1[at] = Gpq * M2[p * k + q];
        K2[at] = Sqp * M2[q * k + p];
        return;
    }
    K1[at] = Gpq * two;
    if (model == 0) {
        K2[at] = Sqp * two;
        return;
    }
    const T A = ((p < q ? Spq : (T)0) - (q < p ? Sqp : (T)0)) / two;
    K2[at] = Sqp * two - A;
    L1[at] = -A;
}

template<typename T>
__global__ void lae_left(const long long total, const int k, const int m, const int rows,
        const T* __restrict__ W, const T* __restrict__ Q, const T* __restrict__ K1,
        const T* __restrict__ K2, const T* __restrict__ L1, T* __restrict__ prod1,
        T* __restrict__ prod2, T* __restrict__ E) {
    // prod1 = K1 P, prod2 = K2 W2T and (rows = 3k, RAG) E = L1 W1: thread (i, row, j)
    const long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= total) return;
    const long long i = idx / ((long long)rows * m);
    const int q = (int)((idx / m) % rows), j = (int)(idx % m), part = q / k, a = q % k;
    const long long base = i * 2 * k * (long long)m, kk = (long long)k * k;
    const T* K = (part == 0 ? K1 : part == 1 ? K2 : L1) + i * kk + (long long)a * k;
    const T* V = (part == 0 ? Q + base : part == 1 ? W + base + (long long)k * m : W + base);
    T acc = (T)0;
    for (int l = 0; l < k; ++l) acc = acc + K[l] * V[(long long)l * m + j];
    (part == 0 ? prod1 : part == 1 ? prod2 : E)[i * k * (long long)m + (long long)a * m + j] = acc;
}
"""
CUDA_TYPES = {"float32": "float", "float64": "double"}
THREADS = 256


class CupyKernels:
    """One CUDA kernel per operation, compiled once per process (``cupy.RawModule``).

    --fmad=false keeps a*b + c as two roundings, as NumPy computes it."""

    def __init__(self):
        import cupy
        self.cupy = cupy
        names = [f"{kernel}<{t}>" for t in CUDA_TYPES.values()
                 for kernel in ("lae_flush", "lae_grams", "lae_coefficients", "lae_left")] + \
                [f"lae_tail<{t},{code}>" for t in CUDA_TYPES.values()
                 for code in OPTIMIZER_CODES.values()]
        self.module = cupy.RawModule(code=CUDA_SOURCE + CUDA_SMALL_K_SOURCE,
                                     options=("--fmad=false",), name_expressions=names)
        for name in names:      # compile and load now: never inside a graph capture
            self.module.get_function(name)

    def _launch(self, name: str, size: int, args: tuple) -> None:
        blocks = (size + THREADS - 1) // THREADS
        if blocks:
            self.module.get_function(name)((blocks,), (THREADS,), args)

    def flush(self, a, floor: float) -> None:
        t = CUDA_TYPES[a.dtype.name]
        self._launch(f"lae_flush<{t}>", a.size, (a, np.int64(a.size), a.dtype.type(floor)))

    def grams(self, W, Q, S, G, floor: float) -> None:
        """S = P W1^T and G = W2T W2T^T of every run, flushed (small k: no cuBLAS)."""
        r, k = S.shape[0], S.shape[1]
        total = 2 * r * k * k
        self._launch(f"lae_grams<{CUDA_TYPES[W.dtype.name]}>", total,
                     (np.int64(total), np.int32(k), np.int32(W.shape[2]), W, Q, S, G,
                      W.dtype.type(floor)))

    def coefficients(self, model: int, S, G, M2, K1, K2, L1) -> None:
        """K1, K2, L1 of every run (``cpu_block.MODEL_CODES``)."""
        total = S.size
        self._launch(f"lae_coefficients<{CUDA_TYPES[S.dtype.name]}>", total,
                     (np.int64(total), np.int32(S.shape[1]), np.int32(model), S, G, M2, K1,
                      K2, L1))

    def left(self, W, Q, K1, K2, L1, prod1, prod2, E, rotation: bool) -> None:
        """prod1 = K1 P, prod2 = K2 W2T and, for RAG, E = L1 W1 (small k: no cuBLAS)."""
        r, k, m = prod1.shape
        rows = 3 * k if rotation else 2 * k
        total = r * rows * m
        self._launch(f"lae_left<{CUDA_TYPES[W.dtype.name]}>", total,
                     (np.int64(total), np.int32(k), np.int32(m), np.int32(rows), W, Q, K1, K2,
                      L1, prod1, prod2, E if rotation else prod1))

    def tail(self, optimizer, W, Q, prod1, prod2, E, a, b, sd, lr, state, count, floor, c,
             Qn):
        dt = W.dtype.type
        s, d = (a, b) if sd is None else sd
        s1, s2 = (tuple(state) + (W, W))[:2]
        sc = optimizer_scalars(optimizer, count, W.dtype)
        k, m = W.shape[1] // 2, W.shape[2]
        name = f"lae_tail<{CUDA_TYPES[W.dtype.name]},{OPTIMIZER_CODES[optimizer]}>"
        has_e = E.shape[1] > 0
        self._launch(name, W.size, (
            np.int64(W.size), np.int32(k), np.int32(m), W, Q, prod1, prod2,
            E if has_e else prod1, np.int32(has_e), a, b, s, d, np.int32(sd is not None),
            lr, s1, s2,
            *(dt(x) for x in sc), dt(floor), W if c is None else c,
            W if Qn is None else Qn, np.int32(c is not None)))


_SETS: dict[str, Any] = {}


def for_module(xp: Any, prefer: str = "auto") -> Any:
    """The kernel set for numpy or cupy; ``prefer`` = 'numpy' forces the plain NumPy set."""
    if xp is not np:
        if "cupy" not in _SETS:
            _SETS["cupy"] = CupyKernels()
        return _SETS["cupy"]
    if prefer == "numpy":
        return NumpyKernels()
    if "numba" not in _SETS:
        compiled = cpu_block.compiled()
        _SETS["numba"] = NumbaKernels(compiled) if compiled else None
    return _SETS["numba"] or NumpyKernels()


def numba_available() -> bool:
    return for_module(np).__class__ is NumbaKernels
