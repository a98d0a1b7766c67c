"""The CUDA kernels of the packed step (``lae_core/steps/cuda/*.cu``), checked without a GPU.

A CUDA kernel that gives each thread one element and never synchronises is a C++ function of
its thread index. Compiled for the host with a small shim (the thread index a loop variable)
it runs here, on the same inputs as ``kernels.NumpyKernels``, and must give the same bits. A
second test compiles the real source with nvcc where nvcc exists.
"""
from __future__ import annotations

import ctypes
import shutil
import subprocess

import numpy as np
import pytest

from lae_core import backend as be
from lae_core.optim import UPDATE_CODES, get_optimizer
from lae_core.steps import kernels

from .cuda_shim import SMALL_K_ARGS, TAIL_ARGS, TYPES, run_host_tail


@pytest.mark.parametrize("optimizer", ["gd", "sgd_nesterov", "adam"])
@pytest.mark.parametrize("rotation, scaled, spectral", [(False, False, True),
                                                          (True, False, False),
                                                          (False, True, True)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_cuda_pass_equals_the_numpy_pass_bit_for_bit(host_kernels, optimizer, rotation,
                                                         scaled, spectral, dtype):
    rng = np.random.default_rng(11)
    r, k, m = 3, 4, 29

    def arr(*shape, scale=1.0):
        return np.ascontiguousarray((scale * rng.standard_normal(shape)).astype(dtype))
    W, Q = arr(r, 2 * k, m), arr(r, 2 * k, m)
    W[0, 0, :3] = be.flush_floor(np, dtype) / 4       # below the floor; run 0 does not move
    lr = np.ascontiguousarray(np.abs(arr(r, scale=0.01)) * (np.arange(r) > 0))
    inputs = (arr(r, k, m), arr(r, k, m), arr(r, k if rotation else 0, m), arr(r, 2 * k),
              arr(r, 2 * k), (arr(r, 2 * k), arr(r, 2 * k)) if scaled else None, lr)
    c = np.abs(arr(m)) if spectral else None
    n_state = {"gd": 0, "sgd_nesterov": 1, "adam": 2}[optimizer]
    state = tuple(np.abs(arr(r, 2 * k, m)) for _ in range(n_state))
    floor = dtype(be.flush_floor(np, dtype))
    outputs = []
    for run in (kernels.NumpyKernels().tail,
                lambda *args: run_host_tail(host_kernels, *args)):
        W_, state_, Qn = W.copy(), tuple(x.copy() for x in state), np.zeros_like(W)
        opt = get_optimizer(optimizer)
        run(opt.code, opt.scalars(5, dtype), W_, Q, *inputs, state_, floor, c,
            Qn if spectral else None)
        outputs.append((W_, Qn) + state_)
    for got, want in zip(outputs[1], outputs[0]):
        np.testing.assert_array_equal(got, want)
    assert np.all(outputs[1][0][0, 0, :3] == 0)


@pytest.mark.parametrize("model", [0, 1, 2])          # L2, RAG, nested dropout in expectation
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_small_k_cuda_epoch_equals_the_numpy_products(host_kernels, model, dtype):
    """grams, coefficients and left products of the GPU's small-k epoch, run on the host,
    against NumPy's matmuls (sums in another order: within rounding, not bit for bit)."""
    rng = np.random.default_rng(5)
    r, k, m = 2, 5, 23
    ctype, cscalar = TYPES[dtype]
    ptr = lambda x: x.ctypes.data_as(ctypes.c_void_p)   # noqa: E731
    W, Q = (np.ascontiguousarray(rng.standard_normal((r, 2 * k, m)).astype(dtype))
            for _ in range(2))
    W[0, :k, :] *= 1e-7                  # some entries of S fall below the flush floor
    M2 = np.ascontiguousarray(rng.random((k, k)).astype(dtype))
    floor = 1e-6                         # any floor: the kernels take it as an argument
    kk = (r, k, k)
    host = {name: np.zeros(kk, dtype) for name in ("S", "G", "K1", "K2", "L1")}
    host |= {name: np.zeros((r, k, m), dtype) for name in ("prod1", "prod2", "E")}
    mine = {name: a.copy() for name, a in host.items()}
    getattr(host_kernels, f"grams_{ctype}")(ctypes.c_longlong(2 * r * k * k), k, m, ptr(W),
                                            ptr(Q), ptr(host["S"]), ptr(host["G"]),
                                            cscalar(floor))
    getattr(host_kernels, f"coefficients_{ctype}")(
        ctypes.c_longlong(r * k * k), k, model, ptr(host["S"]), ptr(host["G"]), ptr(M2),
        ptr(host["K1"]), ptr(host["K2"]), ptr(host["L1"]), cscalar(floor))
    rows = 3 * k if model == 1 else 2 * k
    getattr(host_kernels, f"left_{ctype}")(
        ctypes.c_longlong(r * rows * m), k, m, rows, ptr(W), ptr(Q), ptr(host["K1"]),
        ptr(host["K2"]), ptr(host["L1"]), ptr(host["prod1"]), ptr(host["prod2"]),
        ptr(host["E"]))
    array_products = kernels.ArrayProducts(np)
    array_products.grams(W, Q, mine["S"], mine["G"], floor)
    array_products.coefficients(model, mine["S"], mine["G"], M2, mine["K1"], mine["K2"],
                               mine["L1"])
    array_products.left(W, Q, mine["K1"], mine["K2"], mine["L1"], mine["prod1"],
                       mine["prod2"], mine["E"], model == 1)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    for name in ("S", "G", "K1", "K2", "prod1", "prod2") + (("L1", "E") if model == 1 else ()):
        np.testing.assert_allclose(host[name], mine[name], rtol=rtol,
                                   atol=rtol * np.abs(mine[name]).max(), err_msg=name)
    assert np.array_equal(host["S"] == 0, mine["S"] == 0)     # the same entries flushed
    assert np.any(host["S"] == 0)


def test_the_cuda_source_compiles_with_nvcc(tmp_path):
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("nvcc is not installed")
    instances = "".join(
        f"template __global__ void lae_tail<{ctype}, {code}>({TAIL_ARGS.replace('T', ctype)});\n"
        for ctype, _ in TYPES.values() for code in UPDATE_CODES.values())
    instances += "".join(f"template __global__ void lae_flush<{ctype}>({ctype}*, const long long,"
                         f" const {ctype});\n" for ctype, _ in TYPES.values())
    instances += "".join(
        f"template __global__ void lae_{name}<{ctype}>({args.replace('T', ctype)});\n"
        for ctype, _ in TYPES.values() for name, args in SMALL_K_ARGS.items())
    # every other instance the CuPy set launches: taking its address instantiates it
    instances += "void* lae_kernels[] = {%s};\n" % ", ".join(
        f"(void*)&{name}" for name in kernels.kernel_names())
    (tmp_path / "kernels.cu").write_text(kernels.cuda_source() + instances)
    done = subprocess.run([nvcc, "--fmad=false", "-ptx", "-o", str(tmp_path / "k.ptx"),
                           str(tmp_path / "kernels.cu")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]


def test_every_kernel_the_cupy_set_launches_is_defined_in_the_packaged_source():
    """The .cu files are read through importlib.resources, as an installed wheel holds them."""
    source = kernels.cuda_source()
    for kernel in ("lae_flush", "lae_tail", "lae_grams", "lae_coefficients", "lae_left",
                   "lae_vae_coefficients", "lae_vae_noise", "lae_nd_mask", "lae_nd_residual",
                   "lae_nd_tail"):
        assert f"__global__ void {kernel}(" in source, kernel
