"""BLAS threads for a sweep: as many as the problem and the free cores justify, chosen by
measurement, recorded in the manifest, overridable (config key ``threads``, flag --threads).

Two BLAS threads on a two-core machine where another process holds one core wait for each
other at every product: the quick preset's Adam epochs went from 0.2-0.5 ms to 4-9 ms. So the
sweep counts the cores that are free now (usable cores less the load average, at least one),
times its dominant product (C times the weights of the largest cell) with 1 ... free threads,
and keeps the fewest threads within 10% of the fastest: a thread that buys less than that is
not worth what it costs when the load changes. The data is built before the limit applies,
with the library's own thread count, so its fingerprint does not depend on the choice.

threadpoolctl (the library scikit-learn uses for the same job) sets the limit; it finds the
BLAS NumPy loaded, whichever it is, and restores the previous count afterwards.
"""
from __future__ import annotations

import os
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator

AUTO = "auto"
WORTH = 1.10                   # a thread must make the product at least 10% faster


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:     # not Linux
        return os.cpu_count() or 1


def free_cores(cores: int | None = None, load: float | None = None) -> int:
    """Cores not busy with other work now: usable cores less the 1-minute load average
    (rounded), at least one."""
    cores = usable_cores() if cores is None else cores
    if load is None:
        try:
            load = os.getloadavg()[0]
        except OSError:
            load = 0.0
    return max(1, min(cores, cores - round(load)))


@contextmanager
def blas_threads(count: int | None) -> Iterator[None]:
    """BLAS limited to ``count`` threads inside the block (None: left alone)."""
    if count is None:
        yield
        return
    from threadpoolctl import threadpool_limits
    with threadpool_limits(limits=count, user_api="blas"):
        yield


def time_with(count: int, product: Callable[[], Any], repeats: int = 5) -> float:
    """Best seconds of ``product`` over ``repeats`` calls with ``count`` BLAS threads."""
    with blas_threads(count):
        product()                             # warm-up: threads start, caches fill
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            product()
            best = min(best, time.perf_counter() - start)
    return best


def choose(requested: Any, product: Callable[[], Any]) -> dict[str, Any]:
    """The BLAS thread count for this session and why, as the manifest records it:
    {blas, requested, free_cores, load, measured_s}. ``requested``: "auto" or a count."""
    cores = usable_cores()
    try:
        load = round(os.getloadavg()[0], 2)
    except OSError:
        load = None
    if requested != AUTO:
        return {"blas": int(requested), "requested": requested, "cores": cores, "load": load}
    free = free_cores(cores, load)
    measured = {n: time_with(n, product) for n in range(1, free + 1)}
    fastest = min(measured.values())
    chosen = min(n for n, t in measured.items() if t <= fastest * WORTH)
    return {"blas": chosen, "requested": AUTO, "cores": cores, "load": load,
            "free_cores": free, "measured_s": {str(n): t for n, t in measured.items()}}
