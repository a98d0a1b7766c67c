"""A test double for CuPy: NumPy underneath, every device call counted.

``FakeCupy`` is a module-like namespace named ``cupy``: installed in ``sys.modules`` it is
what ``import cupy`` returns, and ``array_api_compat`` takes it (and its ``ndarray``) for CuPy,
so the packed steps run their CuPy code unchanged on the CPU. Every call they make is
recorded in a ``Ledger``:

- ``launches``: device kernels: each elementwise operation, reduction, copy or fill, each
  ``RawModule`` kernel; ``cublas`` (also launches): each matrix product;
- ``allocations``: each new device array (not a view);
- ``transfers``: host <-> device copies; ``graph_launches``: CUDA graph replays.

What it models of CuPy (read from CuPy's source, ``cupy/_core/_routines_linalg.pyx``):
a batched ``matmul`` (3 or more dimensions) makes a C-contiguous copy of each operand that is
not C-contiguous, and writes into ``out`` only when ``out`` is C-contiguous and overlaps
neither operand (else a temporary and a copy); a 2-D product takes transposed operands as
they are. ``RawModule`` kernels really run: their CUDA C is compiled for the host with a
shim that loops over the thread index (``HostModule``), so results are the kernels' own.
During a stream capture nothing runs: the calls are recorded into the graph and run when the
graph is launched, as CUDA does.
"""
from __future__ import annotations

import contextlib
import ctypes
import hashlib
import shutil
import subprocess
import sys
import tempfile
import types
from collections import Counter
from pathlib import Path
from typing import Any, Callable

import array_api_compat.numpy as compat_numpy
import numpy as np


class Ledger:
    """Counts of device calls; ``names`` keeps which call each launch was."""

    FIELDS = ("launches", "cublas", "allocations", "transfers", "graph_launches")

    def __init__(self):
        self.counts: Counter = Counter()
        self.names: Counter = Counter()

    def add(self, field: str, name: str = "") -> None:
        self.counts[field] += 1
        if name:
            self.names[f"{field}:{name}"] += 1

    def reset(self) -> None:
        self.counts.clear()
        self.names.clear()

    def snapshot(self) -> dict[str, int]:
        return {name: self.counts[name] for name in self.FIELDS}


LEDGER = Ledger()
_CAPTURE: list | None = None     # the calls of a stream capture in progress


def _device(work: Callable[[], Any]) -> Any:
    """Run device work now, or record it into the graph being captured."""
    if _CAPTURE is not None:
        _CAPTURE.append(work)
        return None
    return work()


def _host(a: Any) -> Any:
    """The plain NumPy view of a device array (anything else unchanged)."""
    return a.view(np.ndarray) if isinstance(a, ndarray) else a


def _wrap(a: Any) -> Any:
    return a.view(ndarray) if isinstance(a, np.ndarray) and not isinstance(a, ndarray) else a


_ALLOCATOR: list = []        # cuda.using_allocator's hook, innermost last


def _new(a: Any, name: str) -> Any:
    """A freshly allocated device array (one allocation; the allocator hook, if set, is
    asked first, as CuPy asks its allocator)."""
    if _ALLOCATOR and _ALLOCATOR[-1] is not None:
        _ALLOCATOR[-1](a.nbytes)
    LEDGER.add("allocations", name)
    return _wrap(a)


def _unwrap_all(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return type(value)(_unwrap_all(v) for v in value)
    return _host(value)


def _arrays(value: Any) -> list:
    if isinstance(value, (list, tuple)):
        return [a for v in value for a in _arrays(v)]
    return [value] if isinstance(value, np.ndarray) else []


class ndarray(np.ndarray):      # noqa: N801 - the name array_api_compat looks for
    """A device array: NumPy memory, every operation on it recorded in ``LEDGER``."""

    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):
        if ufunc is np.matmul and method == "__call__":
            return matmul(*inputs, out=None if out is None else out[0])
        args = _unwrap_all(inputs)
        if out is not None:
            kwargs["out"] = _unwrap_all(out)
        LEDGER.add("launches", f"{ufunc.__name__}.{method}")
        result = getattr(ufunc, method)(*args, **kwargs)
        if out is not None:
            return out[0] if len(out) == 1 else out
        if isinstance(result, np.ndarray) and result.ndim:
            return _new(result, ufunc.__name__)
        return result

    def __array_function__(self, func, types_, args, kwargs):
        inputs = _arrays(args) + _arrays(list(kwargs.values()))
        result = func(*_unwrap_all(args), **{k: _unwrap_all(v) for k, v in kwargs.items()})
        if isinstance(result, np.ndarray):
            if any(np.may_share_memory(result, a) for a in inputs):
                return _wrap(result)                    # a view: no device work
            LEDGER.add("launches", func.__name__)
            return _new(result, func.__name__)
        if isinstance(result, tuple):
            return tuple(_wrap(r) for r in result)
        return result

    def __getitem__(self, key):
        result = np.ndarray.__getitem__(self.view(np.ndarray), _unwrap_all(key))
        if isinstance(result, np.ndarray) and not np.may_share_memory(result, self):
            LEDGER.add("launches", "take")               # advanced indexing gathers
            return _new(result, "take")
        return _wrap(result)

    def __setitem__(self, key, value):
        LEDGER.add("launches", "setitem")
        np.ndarray.__setitem__(self.view(np.ndarray), _unwrap_all(key), _host(value))

    def copy(self, order="C"):
        LEDGER.add("launches", "copy")
        return _new(self.view(np.ndarray).copy(order), "copy")

    def astype(self, dtype, order="K", casting="unsafe", subok=True, copy=True):
        if not copy and self.dtype == dtype:
            return self
        LEDGER.add("launches", "astype")
        return _new(self.view(np.ndarray).astype(dtype, order=order), "astype")

    def fill(self, value):
        LEDGER.add("launches", "fill")
        self.view(np.ndarray).fill(value)

    def get(self, stream=None):
        LEDGER.add("transfers", "device_to_host")
        return self.view(np.ndarray).copy()

    def set(self, host, stream=None):
        """Host-to-device copy into this array (CuPy's ``ndarray.set``)."""
        LEDGER.add("transfers", "host_to_device")
        self.view(np.ndarray)[...] = host

    def item(self, *args):
        LEDGER.add("transfers", "device_to_host")
        return self.view(np.ndarray).item(*args)

    def __float__(self):
        return float(self.item())

    def __bool__(self):
        return bool(self.item())

    @property
    def data(self):
        """``a.data.ptr`` as CuPy has it: the address of the first element."""
        return types.SimpleNamespace(ptr=self.ctypes.data)


ndarray.__module__ = "cupy"


# --- functions CuPy has that allocate -------------------------------------------------------------

def _creator(fn: Callable, launches: bool) -> Callable:
    def create(*args, **kwargs):
        if launches:
            LEDGER.add("launches", fn.__name__)
        return _new(np.asarray(fn(*_unwrap_all(args), **kwargs)), fn.__name__)
    create.__name__ = fn.__name__
    return create


def asarray(a, dtype=None, order=None):
    if isinstance(a, ndarray):
        return a if dtype is None or a.dtype == dtype else a.astype(dtype)
    LEDGER.add("transfers", "host_to_device")
    return _new(np.array(a, dtype=dtype, order=order), "asarray")


def ascontiguousarray(a, dtype=None):
    if isinstance(a, ndarray) and a.flags.c_contiguous and (dtype is None or a.dtype == dtype):
        return a
    if not isinstance(a, ndarray):
        return asarray(np.ascontiguousarray(a, dtype))
    LEDGER.add("launches", "ascontiguousarray")
    return _new(np.ascontiguousarray(_host(a), dtype), "ascontiguousarray")


def matmul(a, b, out=None):
    """CuPy's matmul as ``_routines_linalg.matmul`` runs it: see the module docstring."""
    a, b = (asarray(x) for x in (a, b))
    if max(a.ndim, b.ndim) > 2:
        a, b = ascontiguousarray(a), ascontiguousarray(b)
    LEDGER.add("cublas", "gemm")
    LEDGER.add("launches", "gemm")
    product = np.matmul(_host(a), _host(b))
    direct = (out is not None and out.flags.c_contiguous
              and not np.may_share_memory(out, a) and not np.may_share_memory(out, b))
    if direct:
        out.view(np.ndarray)[...] = product
        return out
    result = _new(product, "matmul")
    if out is None:
        return result
    LEDGER.add("launches", "copy")
    out.view(np.ndarray)[...] = product
    return out


# --- kernels compiled for the host --------------------------------------------------------------

LAUNCHER = r"""
#include <cmath>
#include <cstddef>
#include <type_traits>
#include <utility>
struct Index { unsigned int x; };
static Index blockIdx, blockDim, threadIdx;
using std::fabs; using std::sqrt; using std::exp;
#define __global__
#define __device__
template <typename... A, std::size_t... I>
static void call_with(void (*f)(A...), void** p, std::index_sequence<I...>) {
    f(*static_cast<typename std::remove_reference<A>::type*>(p[I])...);
}
template <typename... A>
static void launch(void (*f)(A...), unsigned grid, unsigned block, void** p) {
    blockDim.x = block;
    for (unsigned b = 0; b < grid; ++b)
        for (unsigned t = 0; t < block; ++t) {
            blockIdx.x = b; threadIdx.x = t;
            call_with(f, p, std::index_sequence_for<A...>{});
        }
}
"""
_LIBRARIES: dict[str, ctypes.CDLL] = {}
SCALARS = {np.int32: ctypes.c_int, np.int64: ctypes.c_longlong, np.float32: ctypes.c_float,
           np.float64: ctypes.c_double, np.uint64: ctypes.c_ulonglong}


def host_compiler() -> str | None:
    return shutil.which("g++")


def compile_for_host(code: str, name_expressions: tuple[str, ...]) -> ctypes.CDLL:
    """The kernels as host functions ``launch_<i>(grid, block, void** args)``, one per name
    expression, each a loop over every (block, thread) index; compiled once per source.
    -ffp-contract=off: no fused multiply-adds, as the kernels are compiled (--fmad=false)."""
    source = LAUNCHER + code + "".join(
        f'extern "C" void launch_{i}(unsigned g, unsigned b, void** p) '
        f"{{ launch(&{name}, g, b, p); }}\n" for i, name in enumerate(name_expressions))
    key = hashlib.sha256(source.encode()).hexdigest()[:16]
    if key not in _LIBRARIES:
        folder = Path(tempfile.mkdtemp(prefix="fake_cupy_"))
        (folder / "kernels.cpp").write_text(source)
        subprocess.run([host_compiler() or "g++", "-std=c++17", "-O1", "-ffp-contract=off",
                        "-shared", "-fPIC", "-o", str(folder / "kernels.so"),
                        str(folder / "kernels.cpp")], check=True, capture_output=True)
        _LIBRARIES[key] = ctypes.CDLL(str(folder / "kernels.so"))
    return _LIBRARIES[key]


def _kernel_argument(value: Any) -> Any:
    """A ctypes object holding ``value`` as CuPy passes it to a kernel."""
    if isinstance(value, np.ndarray):
        return ctypes.c_void_p(value.ctypes.data)
    for scalar, ctype in SCALARS.items():
        if isinstance(value, scalar):
            return ctype(value)
    raise TypeError(f"kernel argument of type {type(value).__name__}: pass a NumPy scalar")


class RawKernel:
    def __init__(self, library: ctypes.CDLL, index: int, name: str):
        self.fn, self.name = getattr(library, f"launch_{index}"), name
        self.fn.argtypes = (ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p)

    def __call__(self, grid, block, args, **kwargs):
        LEDGER.add("launches", self.name)
        grid = grid[0] if isinstance(grid, tuple) else grid
        block = block[0] if isinstance(block, tuple) else block
        held = [_kernel_argument(a) for a in args]      # alive until the kernel has run

        def work():
            pointers = (ctypes.c_void_p * len(held))(
                *(ctypes.cast(ctypes.pointer(h), ctypes.c_void_p) for h in held))
            self.fn(grid, block, pointers)
        _device(work)


class RawModule:
    """``cupy.RawModule(code=..., options=..., name_expressions=...)`` on the host."""

    def __init__(self, code: str, options: tuple = (), name_expressions: tuple = (), **kw):
        self.names = tuple(name_expressions)
        self.library = compile_for_host(code, self.names)

    def get_function(self, name: str) -> RawKernel:
        return RawKernel(self.library, self.names.index(name), name)


# --- streams and graphs -----------------------------------------------------------------------

class Graph:
    def __init__(self, calls: list):
        self.calls = calls

    def launch(self, stream=None) -> None:
        LEDGER.add("graph_launches", "graph")
        for call in self.calls:
            call()


class Event:
    def record(self, stream=None):
        return self

    def synchronize(self) -> None:
        pass


class Stream:
    def __init__(self, non_blocking: bool = False, null: bool = False):
        self.calls: list | None = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def begin_capture(self, mode=None) -> None:
        global _CAPTURE
        _CAPTURE = self.calls = []

    def end_capture(self) -> Graph:
        global _CAPTURE
        _CAPTURE = None
        return Graph(self.calls)

    def is_capturing(self) -> bool:
        return _CAPTURE is not None

    def record(self, event=None) -> Event:
        return event or Event()

    def wait_event(self, event) -> None:
        pass

    def synchronize(self) -> None:
        pass


@contextlib.contextmanager
def using_allocator(allocator=None):
    """``cupy.cuda.using_allocator``: every allocation inside goes to ``allocator``."""
    _ALLOCATOR.append(allocator)
    try:
        yield
    finally:
        _ALLOCATOR.pop()


_NULL_STREAM = Stream(null=True)
cuda = types.SimpleNamespace(Stream=Stream, Event=Event, Graph=Graph,
                             get_current_stream=lambda: _NULL_STREAM,
                             get_elapsed_time=lambda a, b: 0.0, using_allocator=using_allocator,
                             runtime=types.SimpleNamespace(streamCaptureModeThreadLocal=1))


# --- the namespace ----------------------------------------------------------------------------

class FakeCupy(types.ModuleType):
    """``import cupy`` while installed: explicit CuPy functions above, the rest NumPy's (and
    array_api_compat's) acting on ``ndarray`` through its recording hooks."""

    def __init__(self):
        super().__init__("cupy")
        self.ndarray, self.cuda, self.RawModule = ndarray, cuda, RawModule
        self.asarray, self.ascontiguousarray, self.matmul = asarray, ascontiguousarray, matmul
        self.array = asarray
        self.__version__ = "fake"
        for name in ("empty", "empty_like"):
            setattr(self, name, _creator(getattr(np, name), launches=False))
        for name in ("zeros", "zeros_like", "ones", "ones_like", "full", "arange", "eye"):
            setattr(self, name, _creator(getattr(np, name), launches=True))

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        for source in (compat_numpy, np):
            if hasattr(source, name):
                return getattr(source, name)
        raise AttributeError(f"the fake cupy has no {name!r}")


# --- cuBLAS -------------------------------------------------------------------------------------

def _column_major(ptr: int, dtype, rows: int, cols: int, ld: int, stride: int,
                  batch: int) -> np.ndarray:
    """The (batch, rows, cols) column-major matrices at device address ``ptr``, as a view."""
    item = np.dtype(dtype).itemsize
    extent = (batch - 1) * stride + (cols - 1) * ld + rows
    base = np.ctypeslib.as_array((ctypes.c_char * (extent * item)).from_address(ptr))
    return np.lib.stride_tricks.as_strided(base.view(dtype), (batch, rows, cols),
                                           (stride * item, item, ld * item))


def _gemm_strided_batched(dtype):
    """cublas<t>gemmStridedBatched as CuPy binds it (alpha and beta by host pointer):
    C[i] = alpha op(A[i]) op(B[i]) + beta C[i], column-major, op by transa / transb."""
    scalar = ctypes.c_float if dtype == np.float32 else ctypes.c_double

    def gemm(handle, transa, transb, m, n, k, alpha, A, lda, strideA, B, ldb, strideB, beta,
             C, ldc, strideC, batch):
        LEDGER.add("launches", "gemm")
        LEDGER.add("cublas", "gemm")
        a_value, b_value = scalar.from_address(alpha).value, scalar.from_address(beta).value

        def work():
            a = _column_major(A, dtype, *((k, m) if transa else (m, k)), lda, strideA, batch)
            b = _column_major(B, dtype, *((n, k) if transb else (k, n)), ldb, strideB, batch)
            c = _column_major(C, dtype, m, n, ldc, strideC, batch)
            product = np.matmul(a.mT if transa else a, b.mT if transb else b)
            # beta = 0: C is not read (it may hold anything), as BLAS specifies
            c[...] = a_value * product if b_value == 0 else a_value * product + b_value * c
        _device(work)
    return gemm


cublas = types.ModuleType("cupy_backends.cuda.libs.cublas")
cublas.CUBLAS_OP_N, cublas.CUBLAS_OP_T = 0, 1
cublas.sgemmStridedBatched = _gemm_strided_batched(np.float32)
cublas.dgemmStridedBatched = _gemm_strided_batched(np.float64)
cuda.device = types.SimpleNamespace(get_cublas_handle=lambda: 0)


def install(monkeypatch) -> FakeCupy:
    """Put the double where ``import cupy`` and ``from cupy_backends.cuda.libs import cublas``
    find it, for one test (``monkeypatch`` undoes it)."""
    fake = FakeCupy()
    monkeypatch.setitem(sys.modules, "cupy", fake)
    for name in ("cupy_backends", "cupy_backends.cuda", "cupy_backends.cuda.libs"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setattr(sys.modules["cupy_backends.cuda.libs"], "cublas", cublas, raising=False)
    monkeypatch.setitem(sys.modules, "cupy_backends.cuda.libs.cublas", cublas)
    return fake
