"""BLAS threads for a sweep: as many as the problem and the free cores justify, chosen by
measurement, recorded in the manifest, overridable (config key ``threads``, flag --threads).

Two BLAS threads on a two-core machine where another process holds one core wait for each
other at every product: the quick preset's Adam epochs went from 0.2-0.5 ms to 4-9 ms. So the
sweep counts the cores that other processes left free (below), times its dominant product
(C times the weights of the largest cell) with 1 ... free threads, and keeps the fewest
threads within 10% of the fastest: a thread that buys less than that is not worth what it
costs when the load changes. The data is built before the limit applies,
with the library's own thread count, so its fingerprint does not depend on the choice.

Free cores are the usable cores less those that other processes kept busy since the previous
count (over a 0.2 s look at first): on Linux, the busy time of this process's CPUs in
/proc/stat less this process's own CPU time. The load average would count the sweep itself:
on two cores, a sweep that had run for a minute saw one free core and chose one thread even
when nothing else ran (quick: 286 s instead of 246 s). Elsewhere the load average is used.

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


def load_average() -> float | None:
    """The 1-minute load average, None where the system keeps none."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def cpu_seconds() -> tuple[float, float, float] | None:
    """(now, seconds the CPUs this process may use have been busy, seconds this process has
    run), all monotonic. None where /proc/stat is missing (not Linux)."""
    busy = 0
    try:
        cpus = os.sched_getaffinity(0)
        with open("/proc/stat") as stat:
            for line in stat:
                name, *ticks = line.split()
                if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus:
                    user, nice, system, idle, iowait, irq, softirq, steal = map(int, ticks[:8])
                    busy += user + nice + system + irq + softirq + steal
    except (OSError, ValueError, AttributeError):     # AttributeError: no affinity (macOS)
        return None
    own = os.times()
    return time.monotonic(), busy / os.sysconf("SC_CLK_TCK"), own.user + own.system


def others_busy(before: tuple[float, float, float], after: tuple[float, float, float]) -> float:
    """Cores other processes kept busy between two cpu_seconds samples."""
    wall = after[0] - before[0]
    return max(0.0, (after[1] - before[1]) - (after[2] - before[2])) / wall if wall > 0 else 0.0


_previous: tuple[float, float, float] | None = None     # the last count's sample


def free_cores(cores: int | None = None) -> int:
    """Cores other processes left free, at least one: since the previous call, or over a
    0.2 s look the first time; from the load average where /proc/stat is missing."""
    global _previous
    cores = usable_cores() if cores is None else cores
    if cpu_seconds() is None:
        return max(1, min(cores, cores - round(load_average() or 0.0)))
    if _previous is None:
        _previous = cpu_seconds()
        time.sleep(0.2)
    now = cpu_seconds()
    others, _previous = others_busy(_previous, now), now
    return max(1, min(cores, cores - round(others)))


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
    cores, load = usable_cores(), load_average()
    if requested != AUTO:
        return {"blas": int(requested), "requested": requested, "cores": cores, "load": load}
    free = free_cores(cores)
    measured = {n: time_with(n, product) for n in range(1, free + 1)}
    fastest = min(measured.values())
    chosen = min(n for n, t in measured.items() if t <= fastest * WORTH)
    return {"blas": chosen, "requested": AUTO, "cores": cores, "load": load,
            "free_cores": free, "measured_s": {str(n): t for n, t in measured.items()}}
