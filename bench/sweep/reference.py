"""What the timing gate needs besides the epoch times, measured beside every timing block.

1. The CPU share of every block: the training thread's CPU time over the wall time from one
   evaluation to the next. Other processes that take the CPU away (time-slicing on a busy
   machine) leave it below 1; the gate keeps only the blocks that had the CPU to themselves.
2. A same-run reference product, a check of the conditions: a fixed matrix product of the
   dominant shape of the cell's formulation (``flops.dominant_shape``: the same kernel, size
   and threading as the epoch's main work), with fixed random operands so that no change to
   the training code can move it. A machine that runs at another speed without taking the CPU
   away (a VM's host, a busy sibling hyperthread, another clock) shows in it; the gate does not
   judge two sides whose reference times differ. It is timed right after every evaluation,
   just before the next block starts, and costs about ``1 / (5 x products per epoch)`` of a
   block.
"""
from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np

from lae_core import backend as be

from .flops import dominant_shape

MAX_ROWS = 4096     # the sample form's (n, m) operand, capped: a reference, not a second X
PRODUCTS_PER_EPOCHS = 5   # one reference product per 5 epochs of a block


class ReferenceClock:
    """``on_eval`` for ``run_batch`` that times the reference product at every evaluation.

    times[j]: seconds per product measured after evaluation j (j = 0 before the first block),
    so ``times[b - 1]`` sits right before block b."""

    def __init__(self, xp: Any, dtype: str, model: str, formulation: str, k: int, m: int,
                 n: int, eval_every: int, then: Callable[[int, np.ndarray], None] | None = None):
        a_shape, b_shape = dominant_shape(model, formulation, k, m, n)
        a_shape = (min(a_shape[0], MAX_ROWS),) + tuple(a_shape[1:])
        rng = np.random.default_rng(0)
        dt = be.dtype_of(xp, dtype)
        self.xp, self.then = xp, then
        # On a GPU the host thread waits for the device: its CPU share says nothing of load.
        self.on_cpu = be.backend_name(xp) != "cupy"
        self.a = be.to_device(xp, rng.standard_normal(a_shape), dt)
        self.b = be.to_device(xp, rng.standard_normal(b_shape), dt)
        self.products = max(1, eval_every // PRODUCTS_PER_EPOCHS)
        self.times: list[float] = []
        self.shares: list[float] = []      # shares[b - 1]: CPU share of block b (and its eval)
        self._mark: tuple[float, float] | None = None

    def __call__(self, epoch: int, align: np.ndarray) -> None:
        wall, cpu = time.perf_counter(), time.thread_time()
        if self._mark is not None:
            self.shares.append(min(1.0, (cpu - self._mark[1]) / max(wall - self._mark[0],
                                                                      1e-12)))
        if self.then is not None:
            self.then(epoch, align)
        self.times.append(self.measure())
        self._mark = (time.perf_counter(), time.thread_time())

    def measure(self) -> float:
        """Seconds per product, device-synchronised."""
        be.synchronize(self.xp)
        t0 = time.perf_counter()
        for _ in range(self.products):
            self.a @ self.b
        be.synchronize(self.xp)
        return (time.perf_counter() - t0) / self.products

    def block_times(self, blocks: int) -> list[float]:
        """The reference time beside each of the first ``blocks`` blocks (the one measured
        just before it), warm-up block excluded as in the epoch timings."""
        return list(self.times[1:blocks])

    def block_shares(self, blocks: int) -> list[float] | None:
        """The CPU share of each of the first ``blocks`` blocks, warm-up block excluded (None
        on a GPU)."""
        return [round(s, 4) for s in self.shares[1:blocks]] if self.on_cpu else None
