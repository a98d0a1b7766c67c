"""The fused passes of the packed step (``packed.py``), one implementation per backend.

Each kernel set has two operations:
  ``flush(a, floor)``  in place: entries of ``a`` below ``floor`` in magnitude become 0;
  ``tail(optimizer, W, Q, prod1, prod2, E, a, b, sd, lr, state, count, floor, c, Qn)``
      in place, for every run i, row q < 2k and column j of W (r, 2k, m):
        g = prod[q, j] + a[q] Q[partner(q), j] + b[q] W[q, j] (+ E[q, j] for q < k, RAG)
        g = s[q] g + d[q] Q[q, j]     (only when sd = (s, d) is given: the VAE)
      where prod = (prod1; prod2) and partner swaps the halves; then the optimizer's update
      of W with g (torch's operation order, as ``optim``), the flush of W, and when ``c`` is
      given (eigenbasis) Qn = W c, the next epoch's Q.

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


class NumpyKernels:
    """Plain NumPy, a few calls per operation; exact reference arithmetic."""

    def __init__(self):
        self._g: dict = {}

    def flush(self, a: np.ndarray, floor: float) -> None:
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

    def flush(self, a: np.ndarray, floor: float) -> None:
        self._flush(a, a.dtype.type(floor), a.dtype.type(0))

    def tail(self, optimizer, W, Q, prod1, prod2, E, a, b, sd, lr, state, count, floor, c,
             Qn):
        s1, s2 = (tuple(state) + self._spares(W))[:2]
        s, d = (a, b) if sd is None else sd
        consts = cpu_block.constants(W.dtype, floor)
        self._tail(cpu_block.OPT_CODES[optimizer], W, Q, W if Qn is None else Qn, prod1, prod2,
                   E, a, b, s, d, sd is not None, s1, s2, lr, count,
                   W[0, 0] if c is None else c, c is not None, consts)

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
CUDA_TYPES = {"float32": "float", "float64": "double"}
THREADS = 256


class CupyKernels:
    """One CUDA kernel per operation, compiled once per process (``cupy.RawModule``).

    --fmad=false keeps a*b + c as two roundings, as NumPy computes it."""

    def __init__(self):
        import cupy
        self.cupy = cupy
        names = [f"lae_flush<{t}>" for t in CUDA_TYPES.values()] + \
                [f"lae_tail<{t},{code}>" for t in CUDA_TYPES.values()
                 for code in OPTIMIZER_CODES.values()]
        self.module = cupy.RawModule(code=CUDA_SOURCE, options=("--fmad=false",),
                                     name_expressions=names)

    def _launch(self, name: str, size: int, args: tuple) -> None:
        blocks = (size + THREADS - 1) // THREADS
        if blocks:
            self.module.get_function(name)((blocks,), (THREADS,), args)

    def flush(self, a, floor: float) -> None:
        t = CUDA_TYPES[a.dtype.name]
        self._launch(f"lae_flush<{t}>", a.size, (a, np.int64(a.size), a.dtype.type(floor)))

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
