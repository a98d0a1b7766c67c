"""Per-epoch speed against the machine's matrix-product throughput, measured in one run.

An epoch's floating-point work is dominated by its matrix products; ``epoch_flops`` counts them
for each formulation (elementwise work is O(k m) and shows up as the gap to the bound). The
bound is that work divided by the throughput of a plain matrix product of the formulation's
dominant shape, timed in the same process on the same backend and dtype, so the ratio
``epoch time / bound`` says how close an epoch runs to what the BLAS (or cuBLAS) can do.
Timings come from the real training loop (``run_batch``), device-synchronised, warm-up excluded.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, Iterable

import numpy as np

from lae_core import backend as be
from lae_core import Dataset, Schedule, choose_formulation, get_objective, run_batch

from ..sweep.flops import dominant_shape, epoch_flops


def gemm_seconds(xp: Any, a_shape: tuple, b_shape: tuple, dtype: str,
                 repeats: int = 20) -> float:
    """Median seconds of one a @ b with random operands, synchronised."""
    rng = np.random.default_rng(0)
    dt = be.dtype_of(xp, dtype)
    a = be.to_device(xp, rng.standard_normal(a_shape), dt)
    b = be.to_device(xp, rng.standard_normal(b_shape), dt)
    times = []
    for _ in range(repeats + 1):
        be.synchronize(xp)
        t0 = time.perf_counter()
        a @ b
        be.synchronize(xp)
        times.append(time.perf_counter() - t0)
    return float(np.median(times[1:]))


def epoch_seconds(dataset: Dataset, model: str, optimizer: str, k: int, *, runs: int = 1,
                  dtype: str = "float64", backend: Any = "numpy", lr: float = 1e-4,
                  epochs_per_block: int = 10, blocks: int = 6,
                  step: str = "auto") -> tuple[float, float, str, str, str | None]:
    """(median, IQR) seconds of one batch epoch of ``runs`` stacked runs, the formulation, the
    training step that ran and why graph capture failed (None: not tried or captured). The
    first block is a warm-up and is dropped."""
    schedule = Schedule(thresholds=(), max_epochs=epochs_per_block * blocks,
                        eval_every=epochs_per_block)
    batch = run_batch(dataset, model, optimizer, k, [lr] * runs, list(range(runs)),
                      schedule=schedule, dtype=dtype, backend=backend, step=step)
    times = np.asarray(batch.runs[0].epoch_times[1:])
    q25, q50, q75 = np.quantile(times, [0.25, 0.5, 0.75])
    return float(q50), float(q75 - q25), batch.formulation, batch.step, batch.graph_error


@dataclass
class SpeedRow:
    model: str
    optimizer: str
    k: int
    formulation: str
    backend: str
    dtype: str
    epoch_s: float          # median seconds per epoch
    epoch_iqr_s: float
    gflop: float            # matrix-product work of one epoch
    gflops: float           # achieved: gflop / epoch_s
    gemm_gflops: float      # same-run throughput of the dominant product shape
    efficiency: float       # gflops / gemm_gflops
    bound_ratio: float      # epoch_s / (gflop / gemm_gflops): 1.0 = at the matmul bound
    step: str = "reference"  # the training step that ran: reference, packed, compiled, graph
    graph_error: str | None = None   # why CUDA-graph capture failed, where it was tried


def speed_row(dataset: Dataset, model: str, optimizer: str, k: int, *, dtype: str = "float64",
              backend: Any = "numpy", blocks: int | None = None,
              step: str = "auto") -> SpeedRow:
    """Time one (model, optimizer, k) and set it against a same-run matrix product."""
    xp = be.get_namespace(backend) if isinstance(backend, str) else backend
    form = choose_formulation(model, optimizer)
    m, n = dataset.m, dataset.n
    flops = epoch_flops(model, form, k, m, n)
    # few blocks where an epoch is long, many where it is short: ~equal total time
    blocks = blocks or int(np.clip(2e9 / max(flops, 1.0), 3, 20))
    epoch_s, iqr, form, ran, graph_error = epoch_seconds(
        dataset, model, optimizer, k, dtype=dtype, backend=xp, blocks=blocks, step=step)
    a_shape, b_shape = dominant_shape(model, form, k, m, n)
    gemm_s = gemm_seconds(xp, a_shape, b_shape, dtype)
    gemm_gflops = 2.0 * a_shape[0] * a_shape[1] * b_shape[1] / gemm_s / 1e9
    gflops = flops / epoch_s / 1e9
    return SpeedRow(model, optimizer, k, form, be.backend_name(xp), dtype, epoch_s, iqr,
                    flops / 1e9, gflops, gemm_gflops, gflops / gemm_gflops,
                    epoch_s / (flops / 1e9 / gemm_gflops), ran, graph_error)


@dataclass
class BatchScaling:
    model: str
    optimizer: str
    k: int
    runs: int
    single_epoch_s: float
    batch_epoch_s: float
    cost_ratio: float        # batch epoch / single epoch (runs = perfect linear scaling)
    throughput_gain: float   # run-epochs per second, batch over single


def batch_scaling(dataset: Dataset, model: str = "rotation", optimizer: str = "sgd_nesterov",
                  k: int = 10, runs: int = 64, **kwargs) -> BatchScaling:
    """What a batch of ``runs`` seeds costs against one run, per epoch."""
    single = epoch_seconds(dataset, model, optimizer, k, runs=1, **kwargs)[0]
    batch = epoch_seconds(dataset, model, optimizer, k, runs=runs, **kwargs)[0]
    return BatchScaling(model, optimizer, k, runs, single, batch, batch / single,
                        runs * single / batch)


def as_dicts(rows: Iterable[Any]) -> list[dict]:
    return [asdict(row) for row in rows]


def needs_samples(models: Iterable[str]) -> bool:
    return any(get_objective(m).needs_samples for m in models)
