"""The fused passes of the packed step (``packed.py``), one implementation per backend.

Each kernel set has these operations:
  ``flush(a, floor)``  in place: entries of ``a`` below ``floor`` in magnitude become 0;
  ``tail(rule, sc, W, Q, prod1, prod2, E, a, b, sd, lr, state, floor, c, Qn)``
      in place, for every run i, row q < 2k and column j of W (r, 2k, m):
        g = prod[q, j] + a[q] Q[partner(q), j] + b[q] W[q, j] (+ E[q, j] for q < k, RAG)
        g = s[q] g + d[q] Q[q, j]     (only when sd = (s, d) is given: the VAE)
      where prod = (prod1; prod2) and partner swaps the halves; then the optimizer's update
      of W with g (torch's operation order, as ``optim``), the flush of W, and when ``c`` is
      given (eigenbasis) Qn = W c, the next epoch's Q. ``rule`` is ``Optimizer.code`` and
      ``sc`` ``Optimizer.scalars`` of this step: no pass holds an optimizer number of its own.
``ArrayProducts`` forms the rest of an epoch with BLAS or cuBLAS; ``CupyKernels`` also has it
as kernels of its own, for ``packed.GraphStep``.

- ``NumpyKernels``: NumPy calls with ``out=``; the fallback without Numba and the oracle of
  the other two.
- ``NumbaKernels``: the same arithmetic compiled in one loop nest (the CPU default).
- ``CupyKernels``: the same arithmetic as one CUDA kernel (``cuda/tail.cu``; the small-k
  products in ``cuda/small_k.cu``; the VAE's own parameters in ``cuda/vae.cu``; nested
  dropout on the samples in ``cuda/nd.cu``), compiled at run time by ``cupy.RawModule``.
  ``CublasProducts``: the eager epoch's products as cuBLAS calls on the buffers as they lie
  (no operand copies, nothing allocated).

Scalars follow the arrays' dtype exactly as NumPy's weak-scalar rules do in ``optim``.
"""
from __future__ import annotations

from importlib import resources
from typing import Any

import numpy as np

from ..optim import GD, NESTEROV, UPDATE_CODES
from . import cpu_block

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

    def times_c(self, W, C, Q) -> None:
        """Q = W C (covariance form): one (r 2k, m) x (m, m) product over all runs."""
        r, k2, m = W.shape
        self.xp.matmul(W.reshape(r * k2, m), C, out=Q.reshape(r * k2, m))

    def coefficients(self, model: int, S, G, M2, K1, K2, L1, floor: float = 0.0) -> None:
        """``cpu_block.KK_FORM_CODES``: 0 L2 (K1 = 2G, K2 = 2S^T), 1 RAG (also L1 = -A,
        K2 = 2S^T - A, A = skew(triu(S, 1))), 2 nested dropout (K1 = G o 2M, K2 = S^T o 2M).
        ``floor`` is unused: ``grams`` flushed S and G already."""
        xp = self.xp
        if model == cpu_block.NESTED_DROPOUT:
            xp.multiply(G, M2, out=K1)
            xp.multiply(S.mT, M2.mT, out=K2)
            return
        xp.multiply(G, 2, out=K1)
        xp.multiply(S.mT, 2, out=K2)
        if model == cpu_block.RAG:
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

    def tail(self, rule, sc, W, Q, prod1, prod2, E, a, b, sd, lr, state, floor, c, Qn):
        k = W.shape[1] // 2
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
        if rule == GD:
            W -= lr3 * g
        elif rule == NESTEROV:
            buf, = state
            buf *= sc[0]
            buf += g
            W -= (buf * sc[0] + g) * lr3
        else:                                           # ADAM
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

    def tail(self, rule, sc, W, Q, prod1, prod2, E, a, b, sd, lr, state, floor, c, Qn):
        s1, s2 = (tuple(state) + self._spares(W))[:2]
        s, d = (a, b) if sd is None else sd
        consts = self._constants(W.dtype, floor)
        self._tail(rule, W, Q, W if Qn is None else Qn, prod1, prod2, E, a, b, s, d,
                   sd is not None, s1, s2, lr, sc, W[0, 0] if c is None else c, c is not None,
                   consts)

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


CUDA_TYPES = {"float32": "float", "float64": "double"}
THREADS = 256
# The CUDA C of ``CupyKernels``, shipped as package data beside this module (cuda/*.cu).
# (vae.cu uses small_k.cu's lae_flushed, nd.cu also vae.cu's lae_update: the order matters.)
CUDA_FILES = ("tail.cu", "small_k.cu", "vae.cu", "nd.cu")


def cuda_source() -> str:
    """The CUDA source of every kernel, read from the package (no GPU or CuPy needed)."""
    folder = resources.files(__package__).joinpath("cuda")
    return "".join(folder.joinpath(name).read_text(encoding="utf-8") for name in CUDA_FILES)


def kernel_names() -> list[str]:
    """Every kernel instance ``CupyKernels`` launches, as ``RawModule`` name expressions."""
    return [f"{kernel}<{t}>" for t in CUDA_TYPES.values()
            for kernel in ("lae_flush", "lae_grams", "lae_coefficients", "lae_left",
                           "lae_nd_mask", "lae_nd_residual")] + \
           [f"{kernel}<{t},{code}>" for t in CUDA_TYPES.values()
            for code in UPDATE_CODES.values()
            for kernel in ("lae_tail", "lae_vae_coefficients", "lae_vae_noise", "lae_nd_tail")]


class CupyKernels:
    """One CUDA kernel per operation, compiled once per process (``cupy.RawModule``).

    --fmad=false keeps a*b + c as two roundings, as NumPy computes it."""

    def __init__(self):
        import cupy
        self.cupy = cupy
        names = kernel_names()
        self.module = cupy.RawModule(code=cuda_source(),
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

    def coefficients(self, model: int, S, G, M2, K1, K2, L1, floor: float) -> None:
        """K1, K2, L1 of every run (``cpu_block.KK_FORM_CODES``); S and G flushed in place."""
        total = S.size
        self._launch(f"lae_coefficients<{CUDA_TYPES[S.dtype.name]}>", total,
                     (np.int64(total), np.int32(S.shape[1]), np.int32(model), S, G, M2, K1,
                      K2, L1, S.dtype.type(floor)))

    def left(self, W, Q, K1, K2, L1, prod1, prod2, E, rotation: bool) -> None:
        """prod1 = K1 P, prod2 = K2 W2T and, for RAG, E = L1 W1 (small k: no cuBLAS)."""
        r, k, m = prod1.shape
        rows = 3 * k if rotation else 2 * k
        total = r * rows * m
        self._launch(f"lae_left<{CUDA_TYPES[W.dtype.name]}>", total,
                     (np.int64(total), np.int32(k), np.int32(m), np.int32(rows), W, Q, K1, K2,
                      L1, prod1, prod2, E if rotation else prod1))

    def vae_coefficients(self, rule, sc, W, Q, S, G, K1, K2, b, scale, v, v_state, s, terms,
                         lr, floor) -> None:
        """The VAE's k x k coefficients, rows b and scale, the terms of T (r, 3k), and the
        update of v (r, k) with state ``v_state`` (``cuda/vae.cu``)."""
        r, k = v.shape
        dt = W.dtype.type
        v1, v2 = (tuple(v_state) + (v, v))[:2]
        self._launch(f"lae_vae_coefficients<{CUDA_TYPES[W.dtype.name]},"
                     f"{rule}>", r * k,
                     (np.int64(r * k), np.int32(k), np.int32(W.shape[2]), W, Q, S, G, K1, K2,
                      b, scale, v, v1, v2, s, terms, lr, *(dt(x) for x in sc), dt(floor)))

    def vae_noise(self, rule, sc, s, s_state, terms, trace: float, m: int, lr,
                  floor) -> None:
        """The update of the VAE's log noise s (r,) from the terms of T (``cuda/vae.cu``)."""
        r, k = terms.shape[0], terms.shape[1] // 3
        dt = s.dtype.type
        s1, s2 = (tuple(s_state) + (s, s))[:2]
        self._launch(f"lae_vae_noise<{CUDA_TYPES[s.dtype.name]},{rule}>",
                     r, (np.int64(r), np.int32(k), np.int32(m), s, s1, s2, terms, dt(trace),
                         lr, *(dt(x) for x in sc), dt(floor)))

    def nd_mask(self, Y, cutoffs, HZ, W, G) -> None:
        """Zm = mask o Z into HZ[:, :, k:] and G = W2T W2T^T, one launch (``cuda/nd.cu``).
        Y, HZ (n, r, 2k); cutoffs (r, n) int32 of this epoch; W (r, 2k, m); G (r, k, k)."""
        n, r, k2 = HZ.shape
        k = k2 // 2
        total = n * r * k + r * k * k
        self._launch(f"lae_nd_mask<{CUDA_TYPES[W.dtype.name]}>", total,
                     (np.int64(total), np.int32(r), np.int32(k), np.int32(W.shape[2]),
                      np.int32(n), Y, cutoffs, HZ, W, G))

    def nd_residual(self, Y, cutoffs, HZ) -> None:
        """H = mask o (Zm G - Y2) in place over Zm G in HZ[:, :, :k] (``cuda/nd.cu``)."""
        n, r, k2 = HZ.shape
        total = n * r * (k2 // 2)
        self._launch(f"lae_nd_residual<{CUDA_TYPES[HZ.dtype.name]}>", total,
                     (np.int64(total), np.int32(r), np.int32(k2 // 2), np.int32(n), Y,
                      cutoffs, HZ))

    def nd_tail(self, rule, sc, W, T, prod2, lr, state, floor, n: int) -> None:
        """nd's gradient from T (m, r, 2k) and prod2 (r, k, m), the update and the flush of
        W (``cuda/nd.cu``)."""
        r, k2, m = W.shape
        dt = W.dtype.type
        s1, s2 = (tuple(state) + (W, W))[:2]
        self._launch(f"lae_nd_tail<{CUDA_TYPES[W.dtype.name]},{rule}>",
                     W.size, (np.int64(W.size), np.int32(r), np.int32(k2 // 2), np.int32(m),
                              dt(2 / n), W, T, prod2, lr, s1, s2, *(dt(x) for x in sc),
                              dt(floor)))

    def tail(self, rule, sc, W, Q, prod1, prod2, E, a, b, sd, lr, state, floor, c, Qn):
        dt = W.dtype.type
        s, d = (a, b) if sd is None else sd
        s1, s2 = (tuple(state) + (W, W))[:2]
        k, m = W.shape[1] // 2, W.shape[2]
        name = f"lae_tail<{CUDA_TYPES[W.dtype.name]},{rule}>"
        has_e = E.shape[1] > 0
        self._launch(name, W.size, (
            np.int64(W.size), np.int32(k), np.int32(m), W, Q, prod1, prod2,
            E if has_e else prod1, np.int32(has_e), a, b, s, d, np.int32(sd is not None),
            lr, s1, s2,
            *(dt(x) for x in sc), dt(floor), W if c is None else c,
            W if Qn is None else Qn, np.int32(c is not None)))


class CublasProducts:
    """The eager epoch's products on a GPU without a copy or an allocation: cuBLAS's strided
    batched GEMM on the packed buffers as they lie, transposes by flag (CuPy's ``matmul``
    copies every operand of a batched product that is not C-contiguous: W1^T, and the halves
    of W and Q when there is more than one run). S and G are left unflushed: the coefficient
    kernel flushes them (``cuda/small_k.cu``). Shapes as ``ArrayProducts``."""

    def __init__(self, kern: "CupyKernels", cublas: Any = None, handle: Any = None):
        if cublas is None:
            from cupy_backends.cuda.libs import cublas
        self.kern, self.cublas = kern, cublas
        self.handle = kern.cupy.cuda.device.get_cublas_handle() if handle is None else handle
        self._scalars = {dt: (np.ones((), dt), np.zeros((), dt))
                         for dt in (np.dtype(np.float32), np.dtype(np.float64))}

    def gemm(self, A, trans_a: bool, B, trans_b: bool, out) -> None:
        """out[i] = op(A[i]) op(B[i]) for every run i; each operand a view whose rows have
        unit stride (op transposes it when its flag is set); a 2-D operand is shared by all
        runs. Row-major out = op(A) op(B) is column-major out^T = op(B)^T op(A)^T, so cuBLAS
        gets B first, each with its own flag."""
        batch = out.shape[0] if out.ndim == 3 else 1
        rows, cols = out.shape[-2:]
        inner = A.shape[-2] if trans_a else A.shape[-1]
        one, zero = self._scalars[out.dtype]
        gemm = (self.cublas.sgemmStridedBatched if out.dtype == np.float32
                else self.cublas.dgemmStridedBatched)
        gemm(self.handle, int(trans_b), int(trans_a), cols, rows, inner, one.ctypes.data,
             *_operand(B), *_operand(A), zero.ctypes.data, *_operand(out), batch)

    def times_c(self, W, C, Q) -> None:
        r, k2, m = W.shape
        self.gemm(W.reshape(r * k2, m), False, C, False, Q.reshape(r * k2, m))

    def grams(self, W, Q, S, G, floor: float) -> None:
        """S = P W1^T, G = W2T W2T^T, unflushed (``coefficients`` flushes them)."""
        k = S.shape[1]
        self.gemm(Q[:, :k], False, W[:, :k], True, S)
        self.gemm(W[:, k:], False, W[:, k:], True, G)

    def coefficients(self, model: int, S, G, M2, K1, K2, L1, floor: float) -> None:
        self.kern.coefficients(model, S, G, M2, K1, K2, L1, floor)

    def left(self, W, Q, K1, K2, L1, prod1, prod2, E, rotation: bool) -> None:
        k = K1.shape[1]
        self.gemm(K1, False, Q[:, :k], False, prod1)
        self.gemm(K2, False, W[:, k:], False, prod2)
        if rotation:
            self.gemm(L1, False, W[:, :k], False, E)


def _operand(a) -> tuple[int, int, int]:
    """(address, leading dimension, batch stride) in elements of a view with unit row stride;
    stride 0 for a 2-D operand shared by every run."""
    item = a.dtype.itemsize
    if a.strides[-1] != item:
        raise ValueError(f"gemm operand with strides {a.strides}: rows need unit stride")
    return a.data.ptr, a.strides[-2] // item, a.strides[0] // item if a.ndim == 3 else 0


def products_for(xp: Any, kern: Any) -> Any:
    """The products of the array-call epoch: cuBLAS without copies for the CUDA kernel set,
    else NumPy (BLAS) calls into preallocated outputs."""
    if isinstance(kern, CupyKernels):
        return CublasProducts(kern)
    return ArrayProducts(xp, kern.flush)


_SETS: dict[str, Any] = {}


def for_module(xp: Any) -> Any:
    """The kernel set for numpy (Numba's where it is installed) or cupy, made once."""
    if xp is not np:
        if "cupy" not in _SETS:
            _SETS["cupy"] = CupyKernels()
        return _SETS["cupy"]
    if "numba" not in _SETS:
        compiled = cpu_block.compiled()
        _SETS["numba"] = NumbaKernels(compiled) if compiled else None
    return _SETS["numba"] or NumpyKernels()
