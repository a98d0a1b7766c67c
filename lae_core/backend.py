"""Array backends: choosing the namespace, host<->device copies, synchronisation, timing.

This is the only module that knows which library holds the arrays. Everything else receives an
array-API namespace ``xp`` (numpy or cupy wrapped by array-api-compat, or array-api-strict in the
tests) and stays on it.
"""
from __future__ import annotations

import contextlib
import platform
import time
from typing import Any, Iterator

import array_api_compat
import numpy as np

BACKENDS = ("auto", "numpy", "cupy")
DTYPES = ("float32", "float64")


class BackendError(RuntimeError):
    """A backend was asked for that cannot run here."""


def _cupy_or_reason() -> tuple[Any, str]:
    """Import CuPy and prove a device works (allocation + matmul); return (module, reason)."""
    try:
        import cupy
    except Exception as exc:  # ImportError, or a broken CUDA install raising anything
        return None, f"cupy is not importable ({type(exc).__name__}: {exc})"
    try:
        a = cupy.ones((2, 2), dtype=cupy.float32)
        float((a @ a).sum())
    except Exception as exc:
        return None, f"cupy imports but no CUDA device works ({type(exc).__name__}: {exc})"
    return cupy, ""


def cupy_available() -> bool:
    """True when CuPy imports and a CUDA device really computes."""
    return _cupy_or_reason()[0] is not None


def get_namespace(backend: str = "auto") -> Any:
    """Return the array namespace for ``backend`` ('auto', 'numpy' or 'cupy').

    'auto' takes CuPy when a device really works, else NumPy; 'cupy' without a working device
    raises BackendError with the reason.
    """
    if backend not in BACKENDS:
        raise BackendError(f"backend: {backend!r} is not one of {', '.join(BACKENDS)}")
    if backend in ("auto", "cupy"):
        cupy, reason = _cupy_or_reason()
        if cupy is not None:
            import array_api_compat.cupy as xp_cupy
            return xp_cupy
        if backend == "cupy":
            raise BackendError(f"backend: 'cupy' cannot run here: {reason}")
    import array_api_compat.numpy as xp_numpy
    return xp_numpy


def backend_name(xp: Any) -> str:
    """'numpy', 'cupy' or the namespace's own name (e.g. 'array_api_strict')."""
    if array_api_compat.is_numpy_namespace(xp):
        return "numpy"
    if array_api_compat.is_cupy_namespace(xp):
        return "cupy"
    return xp.__name__.split(".")[0]


def dtype_of(xp: Any, name: str) -> Any:
    if name not in DTYPES:
        raise BackendError(f"dtype: {name!r} is not one of {', '.join(DTYPES)}")
    return getattr(xp, name)


def to_device(xp: Any, host: np.ndarray, dtype: Any = None) -> Any:
    """Copy a host (NumPy) array into namespace ``xp``, optionally casting."""
    out = xp.asarray(np.ascontiguousarray(host))
    return out if dtype is None else xp.astype(out, dtype)


def to_host(x: Any) -> np.ndarray:
    """Copy an array of any supported namespace back to a NumPy array."""
    if isinstance(x, np.ndarray):
        return x
    if array_api_compat.is_cupy_array(x):
        return x.get()
    return np.from_dlpack(x)  # array-api-strict and other DLPack producers on the CPU


def synchronize(xp: Any) -> None:
    """Wait for all queued device work (a no-op on CPU namespaces)."""
    if array_api_compat.is_cupy_namespace(xp):
        import cupy
        cupy.cuda.get_current_stream().synchronize()


class Stopwatch:
    """Elapsed seconds of device work: CUDA events on CuPy, perf_counter elsewhere."""

    def __init__(self, xp: Any):
        self._gpu = array_api_compat.is_cupy_namespace(xp)

    def start(self) -> None:
        if self._gpu:
            import cupy
            self._begin = cupy.cuda.Event()
            self._begin.record()
        else:
            self._t0 = time.perf_counter()

    def stop(self) -> float:
        if self._gpu:
            import cupy
            end = cupy.cuda.Event()
            end.record()
            end.synchronize()
            return cupy.cuda.get_elapsed_time(self._begin, end) / 1e3
        return time.perf_counter() - self._t0


def flush_floor(xp: Any, dtype: Any) -> float:
    """The cube root of the smallest normal number (float32: 2e-13, float64: 3e-103).

    Entries below it are set to zero during training: then no product of three of them (the
    deepest an epoch forms, e.g. G P) is subnormal, and arithmetic on subnormal numbers is up
    to ~100x slower on x86 CPUs. Decaying units and coordinates produce them in long runs.
    """
    return float(xp.finfo(dtype).smallest_normal) ** (1 / 3)


def flush(xp: Any, a: Any, floor: float) -> Any:
    """``a`` with the entries below ``floor`` in magnitude set to zero."""
    return xp.where(xp.abs(a) < floor, 0.0, a)


@contextlib.contextmanager
def quiet_float_errors() -> Iterator[None]:
    """Silence overflow/invalid warnings: divergence is detected from the values themselves."""
    with np.errstate(all="ignore"):
        yield


def cpu_model() -> str:
    """The CPU's marketing name (Linux /proc/cpuinfo), else what platform knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def device_facts(xp: Any) -> dict[str, Any]:
    """Name, memory, driver and runtime of the device behind ``xp`` (empty for CPU namespaces)."""
    if not array_api_compat.is_cupy_namespace(xp):
        return {}
    import cupy
    dev = cupy.cuda.Device()
    props = cupy.cuda.runtime.getDeviceProperties(dev.id)
    name = props["name"]
    return {
        "gpu_name": name.decode() if isinstance(name, bytes) else str(name),
        "gpu_memory_bytes": int(props["totalGlobalMem"]),
        "cuda_driver_version": int(cupy.cuda.runtime.driverGetVersion()),
        "cuda_runtime_version": int(cupy.cuda.runtime.runtimeGetVersion()),
        "cupy_version": cupy.__version__,
    }
