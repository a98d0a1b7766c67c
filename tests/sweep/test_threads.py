"""The free-core count behind ``threads: auto``: other processes' work counts, the sweep's own
does not (the load average counted both, and a sweep alone on two cores chose one thread)."""
from __future__ import annotations

import subprocess
import sys
import time

import pytest

from bench.sweep import threads

linux_only = pytest.mark.skipif(threads.cpu_seconds() is None, reason="needs /proc/stat")


def spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def test_others_busy_takes_this_process_out():
    # 2 s of wall time: the CPUs were busy 3 s, 1 s of it this process's own.
    assert threads.others_busy((0.0, 10.0, 5.0), (2.0, 13.0, 6.0)) == pytest.approx(1.0)
    assert threads.others_busy((0.0, 10.0, 5.0), (2.0, 11.0, 6.5)) == 0.0   # never below 0
    assert threads.others_busy((1.0, 10.0, 5.0), (1.0, 10.0, 5.0)) == 0.0   # no time passed


def quiet_or_skip() -> None:
    before = threads.cpu_seconds()
    time.sleep(0.3)
    if threads.others_busy(before, threads.cpu_seconds()) > 0.3:
        pytest.skip("other processes are busy on this machine: the count cannot be judged")


@linux_only
def test_the_sweeps_own_work_leaves_every_core_free():
    quiet_or_skip()
    threads.free_cores()                      # starts the window
    before = threads.cpu_seconds()
    spin(0.8)
    after = threads.cpu_seconds()
    assert (after[2] - before[2]) / (after[0] - before[0]) > 0.7    # this process was busy
    assert threads.others_busy(before, after) < 0.3
    assert threads.free_cores() == threads.usable_cores()


@linux_only
@pytest.mark.skipif(threads.usable_cores() < 2, reason="needs two cores")
def test_a_busy_process_beside_the_sweep_takes_its_core():
    quiet_or_skip()
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)                       # it has started
        threads.free_cores()
        spin(0.8)                             # the sweep's own work meanwhile
        assert threads.free_cores() == threads.usable_cores() - 1
    finally:
        busy.kill()
        busy.wait()
