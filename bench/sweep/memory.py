"""Memory preflight: the bytes a sweep needs, counted before anything is allocated.

A sweep builds its data once on the host (float64), then trains each cell as one batch of
seeds on its backend. What each part holds, in 8-byte (float64) or ``itemsize`` words:

    building synthetic data   n*m samples + n*m scaled copy + m*m rotation (+ m*m QR work),
                              then C (m*m) and its eigenvectors (m*m)
    kept for training         C and eigenvectors (m*m each), the samples (n*m) when a model
                              needs them
    one cell on its backend   C in the sweep's dtype (m*m), the samples (n*m) if needed, and
                              per run: encoder and decoder (2*k*m), their gradients, the
                              optimizer's moments (two, Adam's) and the products with C (m*k)

The counts are upper bounds of the arrays the code makes (not of allocator slack). A sweep
whose largest cell does not fit in the memory available now is refused with the number and
the largest m (or n) that would fit; ``--estimate`` says the same.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from ..errors import UsageError

HOST_WORD = 8                     # the data is built in float64 whatever the sweep's dtype
RUN_ARRAYS = 8                    # W1, W2, their gradients, two moments each (upper bound)


@dataclass(frozen=True)
class Need:
    """Bytes of the largest allocation stages of a sweep."""

    build: int        # host, while the data is made
    cell: int         # backend, while the largest cell trains

    @property
    def peak(self) -> int:
        return max(self.build, self.cell)


def format_bytes(count: int) -> str:
    """Bytes in binary units, three significant digits: 74.5 GiB."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if count < 1024 or unit == "TiB":
            return f"{count:.3g} {unit}" if unit != "B" else f"{count} B"
        count /= 1024
    return f"{count:.3g} TiB"


def build_bytes(m: int, n: int, keep_samples: bool) -> int:
    """Host bytes while the data is made (synthetic: the worst case; files read n*m once)."""
    return HOST_WORD * (3 * n * m + 4 * m * m + (n * m if keep_samples else 0))


def cell_bytes(m: int, n: int, k: int, runs: int, itemsize: int, keep_samples: bool) -> int:
    """Backend bytes of one cell: C, the samples if kept, and per run its weights, gradients,
    moments and products (see the module docstring)."""
    data = m * m + (n * m if keep_samples else 0)
    per_run = RUN_ARRAYS * k * m + 2 * m * k + (n * k if keep_samples else 0)
    return itemsize * (data + runs * per_run)


def available_bytes(backend: str = "numpy") -> int | None:
    """Memory free now: MemAvailable of /proc/meminfo on the host, the device's free bytes
    for CuPy; None when unknown (the preflight then lets the sweep try)."""
    if backend == "cupy":
        try:
            import cupy
            free, _ = cupy.cuda.runtime.memGetInfo()
            return int(free)
        except Exception:      # noqa: BLE001 - no usable device: the backend check says why
            return None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def largest_fitting(fits, high: int) -> int:
    """The largest value v in [0, high] with fits(v) (fits is monotone: True then False)."""
    low = 0
    while low < high:
        mid = (low + high + 1) // 2
        low, high = (mid, high) if fits(mid) else (low, mid - 1)
    return low


def check(m: int, n: int, k_max: int, runs: int, itemsize: int, keep_samples: bool,
          backend: str = "numpy", available: int | None = None) -> Need:
    """The bytes the sweep needs; UsageError, naming the number and what fits, when its data
    or its largest cell does not fit in the memory available."""
    need = Need(build_bytes(m, n, keep_samples),
                cell_bytes(m, n, k_max, runs, itemsize, keep_samples))
    check_build(m, n, keep_samples, available)
    host = available_bytes("numpy") if available is None else available
    device = host if backend != "cupy" or available is not None else available_bytes(backend)
    if device is not None and need.cell > device:
        raise UsageError(_refusal(f"a cell of {runs} runs at k = {k_max}", need.cell, device,
                                  m, n, lambda mm, nn: cell_bytes(mm, nn, min(k_max, mm), runs,
                                                                  itemsize, keep_samples)))
    return need


def check_build(m: int, n: int, keep_samples: bool, available: int | None = None) -> int:
    """The host bytes of building the data; UsageError when they exceed what is free (every
    path that builds data comes through here: sweeps, tune, hessian)."""
    need = build_bytes(m, n, keep_samples)
    host = available_bytes("numpy") if available is None else available
    if host is not None and need > host:
        raise UsageError(_refusal("building the data", need, host, m, n,
                                  lambda mm, nn: build_bytes(mm, nn, keep_samples)))
    return need


def _refusal(what: str, need: int, have: int, m: int, n: int, bytes_of) -> str:
    best_m = largest_fitting(lambda mm: bytes_of(mm, n) <= have, m)
    best_n = largest_fitting(lambda nn: bytes_of(m, nn) <= have, n)
    fits = [f"m <= {best_m:,} at n = {n:,}" if best_m else None,
            f"n <= {best_n:,} at m = {m:,}" if best_n else None]
    fits = " or ".join(f for f in fits if f) or "no size of this shape"
    return (f"data: m = {m:,}, n = {n:,}: {what} needs {format_bytes(need)} but "
            f"{format_bytes(have)} of memory is available; what fits: {fits}")
