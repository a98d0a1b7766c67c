"""The CUDA kernels compiled for the host: each thread a loop iteration (see
``test_cuda_source``). ``compile_host_kernels`` builds them once; ``run_host_tail`` calls the
fused pass with the arguments ``CupyKernels.tail`` passes."""
from __future__ import annotations

import ctypes
import subprocess
from pathlib import Path

import numpy as np

from lae_core.optim import UPDATE_CODES
from lae_core.steps import kernels

SHIM = r"""
#include <cmath>
struct Index { unsigned int x; };
static Index blockIdx, blockDim, threadIdx;
using std::fabs; using std::sqrt;
#define __global__
#define __device__
"""
TYPES = {np.float32: ("float", ctypes.c_float), np.float64: ("double", ctypes.c_double)}
TAIL_ARGS = ("long long total, int k, int m, T* W, const T* Q, const T* prod1, const T* prod2, "
             "const T* E, int has_e, const T* a, const T* b, const T* s, const T* d, "
             "int has_sd, const T* lr, T* s1, T* s2, T c1, T c2, T c3, T c4, T c5, T c6, "
             "T floor, const T* c, T* Qn, int write_q")


SMALL_K_ARGS = {
    "grams": "long long total, int k, int m, const T* W, const T* Q, T* S, T* G, T floor",
    "coefficients": "long long total, int k, int model, T* S, T* G, const T* M2, "
                    "T* K1, T* K2, T* L1, T floor",
    "left": "long long total, int k, int m, int rows, const T* W, const T* Q, const T* K1, "
            "const T* K2, const T* L1, T* prod1, T* prod2, T* E"}


def wrapper(name: str, kernel: str, args: str, ctype: str) -> str:
    """extern "C" ``name``: a host loop over every thread index of ``kernel``."""
    names = [p.split()[-1].lstrip("*") for p in args.split(", ")]
    return (f'extern "C" void {name}({args.replace("T", ctype)}) {{\n'
            f"  blockDim.x = 1; threadIdx.x = 0;\n"
            f"  for (long long i = 0; i < total; ++i) {{ blockIdx.x = (unsigned int)i;\n"
            f"    {kernel}({', '.join(names)}); }}\n}}\n")


def compile_host_kernels(folder: Path) -> ctypes.CDLL:
    """Every kernel of the package's .cu files as host functions, in one shared library."""
    source = SHIM + kernels.cuda_source() + "".join(
        wrapper(f"tail_{ctype}_{code}", f"lae_tail<{ctype}, {code}>", TAIL_ARGS, ctype)
        for ctype, _ in TYPES.values() for code in UPDATE_CODES.values()) + "".join(
        wrapper(f"{name}_{ctype}", f"lae_{name}<{ctype}>", args, ctype)
        for ctype, _ in TYPES.values() for name, args in SMALL_K_ARGS.items())
    (folder / "shim.cpp").write_text(source)
    # -ffp-contract=off: no fused multiply-adds, as the kernel is compiled (--fmad=false)
    subprocess.run(["g++", "-O1", "-ffp-contract=off", "-shared", "-fPIC", "-o",
                    str(folder / "shim.so"), str(folder / "shim.cpp")], check=True)
    return ctypes.CDLL(str(folder / "shim.so"))


def run_host_tail(lib, rule, sc, W, Q, prod1, prod2, E, a, b, sd, lr, state, floor, c, Qn):
    """The CUDA tail on the host, with the arguments ``CupyKernels.tail`` passes."""
    ctype, cscalar = TYPES[W.dtype.type]
    fn = getattr(lib, f"tail_{ctype}_{rule}")
    s1, s2 = (tuple(state) + (W, W))[:2]
    s, d = (a, b) if sd is None else sd
    k, m = W.shape[1] // 2, W.shape[2]
    has_e = E.shape[1] > 0
    ptr = lambda x: x.ctypes.data_as(ctypes.c_void_p)   # noqa: E731
    fn(ctypes.c_longlong(W.size), ctypes.c_int(k), ctypes.c_int(m), ptr(W), ptr(Q), ptr(prod1),
       ptr(prod2), ptr(E if has_e else prod1), ctypes.c_int(has_e), ptr(a), ptr(b), ptr(s),
       ptr(d), ctypes.c_int(sd is not None), ptr(lr), ptr(s1), ptr(s2),
       *(cscalar(x) for x in sc), cscalar(floor), ptr(W if c is None else c),
       ptr(W if Qn is None else Qn), ctypes.c_int(c is not None))
