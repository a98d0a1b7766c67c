"""Cells as Dask tasks: ``scheduler: local:N | cuda | tcp://HOST:PORT`` (the ``distributed`` extra).

One task per cell, all its seeds as one batch, as in the serial run. The data is built here and
broadcast once to every worker (bitwise the serial run's data: a worker building it with its own
BLAS thread count would change C's last bits); a worker keeps it per config hash, trains cells and
returns their records; this process, the only writer, stores each record atomically as its task
finishes, so workers need no shared file system and resume works whichever scheduler ran first.

stop_on_failure: the cells of a curve are submitted one after another in order of k, and a
failure skips the larger k (they are never submitted); different curves run side by side.
Without it every pending cell is submitted at once. Either way the work left in a cell's curve
(``epoch_work``: its products' flops, every run to the cap) is its priority: the longest curves
start first, so the sweep ends on short tasks rather than one worker finishing a long curve
alone. A worker that dies mid-task has its cell rescheduled on another worker, at
most ALLOWED_FAILURES times on a cluster started here (a running scheduler keeps its own
``distributed.scheduler.allowed-failures``); a cell whose task still fails gets ``error`` records
and the sweep goes on. Ctrl-C cancels the futures and closes a cluster started here; nothing
half-done is written.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Iterator

from lae_core import Dataset
from lae_core.backend import backend_name

from ..errors import UsageError
from . import env
from .cells import Cell, ResolvedCell
from .config import LOCAL_SCHEDULER, SweepConfig
from .flops import dominant_shape
from .progress import Progress
from .record import Record
from .runner import Outcome, Sweep
from .trainer import CellTrainer, Results, sweep_namespace

INSTALL_HINT = "pip install 'lae-bench[distributed]'"
ALLOWED_FAILURES = 2          # reschedules of a cell whose worker died, on a cluster started here
CONNECT_TIMEOUT_S = 15.0      # an address that answers nothing within this is unreachable
WORKER_WAIT_S = 60.0          # a running scheduler must have a worker within this
EPOCH_OVERHEAD_FLOP = 1e6     # an epoch's fixed cost beside its main product, in flops (~20 us)
# Thread pools a worker's libraries size at import: BLAS builds, OpenMP, Numba.
THREAD_VARIABLES = env.THREAD_VARIABLES + ("VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS",
                                           "NUMBA_NUM_THREADS")


# --- on the workers -----------------------------------------------------------------------------

_worker_trainers: dict[str, CellTrainer] = {}   # this worker process's trainer by config hash
_worker_lock = threading.Lock()                 # a worker with several threads builds it once


def worker_trainer(config: SweepConfig, dataset: Dataset) -> CellTrainer:
    """This worker's trainer of ``config`` on the client's ``dataset`` (broadcast once to every
    worker: built here, a worker's BLAS thread count would change C's last bits and, through
    long Adam runs, epochs-to-threshold), kept for the next tasks (only the latest config's:
    one sweep's data in memory at a time)."""
    with _worker_lock:
        trainer = _worker_trainers.get(config.hash)
        if trainer is None:
            _worker_trainers.clear()
            trainer = _worker_trainers[config.hash] = CellTrainer(config, dataset,
                                                                  *sweep_namespace(config))
    return trainer


def train_cell_task(config: SweepConfig, resolved: ResolvedCell, seeds: list[int],
                    dataset: Dataset) -> tuple[Results, float]:
    """The task of one cell: its records (and histories) and the seconds it took."""
    started = time.perf_counter()
    results = worker_trainer(config, dataset).train(resolved, seeds)
    return results, time.perf_counter() - started


def describe_worker(config: SweepConfig) -> dict[str, Any]:
    """What the manifest records of a worker: host, machine, BLAS threads, backend, device."""
    xp, facts = sweep_namespace(config)    # no data needed
    return {"host": socket.gethostname(), "pid": os.getpid(), "backend": backend_name(xp),
            "device": env.device_name(facts), "machine": facts["machine"],
            "blas": facts["blas"], "gpu": facts["gpu"]}


# --- the cluster --------------------------------------------------------------------------------

def require(module: str, spec: str, hint: str = INSTALL_HINT):
    """Import ``module`` or say, in one line, what to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise UsageError(f"scheduler: {spec} needs {module.split('.')[0]}, which is not "
                         f"installed; {hint}") from None
    except Exception as exc:  # installed but broken here (dask-cuda without a CUDA driver)
        raise UsageError(f"scheduler: {spec}: {module} cannot load here ({one_line(exc)})") \
            from None


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def worker_threads(workers: int, cores: int) -> int:
    """Library threads per worker so that workers x threads <= cores (at least one)."""
    return max(1, cores // workers)


@contextmanager
def spawned_worker_threads(threads: int) -> Iterator[None]:
    """Worker processes spawned inside size their thread pools to ``threads``.

    NumPy's BLAS and Numba read these variables once, at import, so they must be in the
    environment a worker process starts with: Dask's Nanny copies its ``pre-spawn-environ``
    into this process's environment before each (re)start of a worker, and prefers values
    already there. This process's environment is restored on the way out."""
    import dask

    saved = dict(os.environ)
    wanted = {name: str(threads) for name in THREAD_VARIABLES}
    os.environ.update(wanted)
    spawn = {**dask.config.get("distributed.nanny.pre-spawn-environ"), **wanted}
    try:
        with dask.config.set({"distributed.nanny.pre-spawn-environ": spawn,
                              "distributed.scheduler.allowed-failures": ALLOWED_FAILURES}):
            yield
    finally:
        for name in set(os.environ) - set(saved):
            del os.environ[name]
        os.environ.update(saved)


@contextmanager
def local_cluster(spec: str, distributed) -> Iterator[Any]:
    """local:N: a LocalCluster of N single-threaded worker processes, closed on the way out
    (its HTTP endpoint on a free port: 8787 may be another cluster's)."""
    workers = int(LOCAL_SCHEDULER.fullmatch(spec)[1])
    with spawned_worker_threads(worker_threads(workers, usable_cores())):
        cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1,
                                           processes=True, dashboard_address=":0",
                                           silence_logs=logging.CRITICAL)
        try:
            yield cluster
        finally:
            cluster.close()


@contextmanager
def cuda_cluster(spec: str) -> Iterator[Any]:
    """cuda: dask-cuda's LocalCUDACluster, one worker per GPU (each pinned to its device by
    CUDA_VISIBLE_DEVICES), closed on the way out."""
    dask_cuda = require("dask_cuda", spec, "pip install dask-cuda (and a CUDA GPU)")
    try:
        from dask_cuda.utils import get_n_gpus

        gpus = get_n_gpus()
    except Exception as exc:  # no driver, no device, NVML missing: the same answer for all
        raise UsageError(f"scheduler: cuda: no GPU here ({one_line(exc)})") from None
    if gpus < 1:
        raise UsageError("scheduler: cuda: no GPU here (CUDA_VISIBLE_DEVICES is empty?)")
    with spawned_worker_threads(worker_threads(gpus, usable_cores())):
        try:
            cluster = dask_cuda.LocalCUDACluster(threads_per_worker=1, dashboard_address=":0",
                                                 silence_logs=logging.CRITICAL)
        except Exception as exc:
            raise UsageError(f"scheduler: cuda: no GPU cluster can start here "
                             f"({one_line(exc)})") from None
        try:
            yield cluster
        finally:
            cluster.close()


def one_line(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:200]


def connect(spec: str, distributed) -> Any:
    """A client of the running scheduler at ``spec``, once it has a worker."""
    try:
        client = distributed.Client(spec, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise UsageError(f"scheduler: cannot reach {spec} ({one_line(exc)}); is a Dask scheduler "
                         "running there?") from None
    try:
        client.wait_for_workers(1, timeout=WORKER_WAIT_S)
    except TimeoutError:
        client.close()
        raise UsageError(f"scheduler: {spec} has no worker (none joined within "
                         f"{WORKER_WAIT_S:.0f} s)") from None
    return client


@contextmanager
def quiet_dask_logs() -> Iterator[None]:
    """Dask's own log lines (reconnection tracebacks, worker restarts) kept off stderr: the
    sweep reports what matters in its own one-line way."""
    # Dask's logging config gives some of its loggers levels of their own: set each one.
    names = ["distributed"] + [name for name in logging.root.manager.loggerDict
                               if name.startswith("distributed.")]
    levels = {name: logging.getLogger(name).level for name in names}
    for name in names:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


@contextmanager
def open_cluster(spec: str) -> Iterator[Any]:
    """A Dask client for ``spec``; a cluster started for it is closed on the way out."""
    distributed = require("distributed", spec)
    with ExitStack() as stack:
        stack.enter_context(quiet_dask_logs())
        if spec.startswith("tcp://"):
            client = connect(spec, distributed)
        else:
            cluster = stack.enter_context(cuda_cluster(spec) if spec == "cuda"
                                          else local_cluster(spec, distributed))
            client = distributed.Client(cluster, set_as_default=False)
        stack.callback(client.close)
        yield client


# --- the sweep on a cluster ---------------------------------------------------------------------

def run_on_cluster(sweep: Sweep, *, quiet: bool = False) -> Outcome:
    """Run the pending cells of ``sweep`` as Dask tasks on ``sweep.config.scheduler``."""
    spec = sweep.config.scheduler
    with open_cluster(spec) as client:
        execution = {"scheduler": spec, "workers": describe_workers(client, sweep.config)}
        return sweep.run_with(partial(run_cells, client, sweep), quiet=quiet,
                              execution=execution)


def describe_workers(client, config: SweepConfig) -> dict[str, dict[str, Any]]:
    """Each worker's facts, by address, from a task pinned to it."""
    addresses = sorted(client.run(os.getpid))    # every worker (scheduler_info may cut)
    futures = [client.submit(describe_worker, config, workers=[address], pure=False,
                             allow_other_workers=False) for address in addresses]
    return dict(zip(addresses, client.gather(futures)))


@dataclass
class CurveQueue:
    """The cells of one curve not yet submitted, k ascending, and where it failed."""

    sweep: Sweep
    cells: list[Cell]
    failed_at: int | None = None

    def next_tasks(self, outcome: Outcome, progress: Progress
                   ) -> list[tuple[Cell, list[int], list[Record]]]:
        """(cell, pending seeds, stored records) to submit now: every pending cell, or with
        stop_on_failure the next one. Cells needing no task (done, or skipped after a failure)
        are accounted for on the way."""
        tasks = []
        while self.cells and not (tasks and self.sweep.config.stop_on_failure):
            cell = self.cells.pop(0)
            if self.failed_at is not None:
                outcome.skipped.append(cell)
                progress.cell_done(f"{cell.label}: skipped, the curve failed at "
                                   f"k={self.failed_at}")
                continue
            seeds = self.sweep.run_dir.pending_seeds(cell)
            stored = self.sweep.run_dir.finished(cell, seeds)
            outcome.reused_runs += len(stored)
            if seeds:
                tasks.append((cell, seeds, stored))
            else:
                progress.cell_done()
                self.cell_finished(cell, stored)
        return tasks

    def cell_finished(self, cell: Cell, records: list[Record]) -> None:
        if self.sweep.stops_curve(records):
            self.failed_at = cell.k

    def priority(self, cell: Cell) -> float:
        """Dask priority of ``cell`` (higher runs first): the work left in its curve, itself
        included, so that the longest curves start first and the last tasks are short ones
        (fewer idle workers at the end)."""
        return sum(epoch_work(self.sweep, c) for c in [cell, *self.cells])


def epoch_work(sweep: Sweep, cell: Cell) -> float:
    """A static estimate of a cell's cost per epoch: its dominant product's flops plus a fixed
    overhead (launches, the update), as if every run went to the epoch cap."""
    data = sweep.config.data
    (rows, inner), (_, cols) = dominant_shape(cell.model, cell.formulation, cell.k, data.m,
                                              data.n)
    return 2.0 * rows * inner * cols + EPOCH_OVERHEAD_FLOP


@dataclass
class Task:
    """A submitted cell: its curve, pending seeds, stored records and submission time."""

    curve: CurveQueue
    cell: Cell
    seeds: list[int]
    stored: list[Record]
    submitted: float = field(default_factory=time.perf_counter)


def run_cells(client, sweep: Sweep, grid: list[list[Cell]], outcome: Outcome,
              progress: Progress) -> None:
    """Submit the cells of every curve, store each cell's records as its task finishes, and
    submit what a finished cell lets run next."""
    from distributed import as_completed

    tasks: dict[Any, Task] = {}
    finished = as_completed(loop=client.loop)
    dataset: Any = None

    def submit(curve: CurveQueue) -> None:
        nonlocal dataset
        for cell, seeds, stored in curve.next_tasks(outcome, progress):
            if dataset is None:     # the data goes out once, when the first cell does
                dataset = client.scatter(sweep.trainer.dataset, broadcast=True)
            future = client.submit(train_cell_task, sweep.config, sweep.trainer.resolve(cell),
                                   seeds, dataset,
                                   pure=False,
                                   key=f"cell-{cell.model}-{cell.optimizer}-k{cell.k}-"
                                       f"{uuid.uuid4().hex[:8]}",
                                   priority=curve.priority(cell))
            tasks[future] = Task(curve, cell, seeds, stored)
            finished.add(future)

    try:
        for curve in grid:
            submit(CurveQueue(sweep, list(curve)))
        for future in finished:
            task = tasks.pop(future)
            new = store_results(sweep, task, future, outcome, progress)
            task.curve.cell_finished(task.cell, task.stored + new)
            submit(task.curve)
    finally:
        client.cancel(list(tasks))   # Ctrl-C or an error here: no task outlives the sweep


class ClusterLost(RuntimeError):
    """The sweep's tasks were cancelled under it: the scheduler went away (or was told to)."""


def store_results(sweep: Sweep, task: Task, future, outcome: Outcome, progress: Progress
                  ) -> list[Record]:
    """Write the records of a finished task (error records when the task itself failed)."""
    try:
        results, seconds = future.result()
    except Exception as exc:  # its workers kept dying (KilledWorker), or it could not start
        if future.status == "cancelled":   # not the cell's fault: no record, stop here
            raise ClusterLost(f"scheduler {sweep.config.scheduler}: the task of "
                              f"{task.cell.label} was cancelled "
                              f"({getattr(exc, 'reason', None) or 'no reason given'}); "
                              "finished runs are saved, rerun to resume") from None
        seconds = time.perf_counter() - task.submitted
        results = [(sweep.trainer.error_record(task.cell, s, len(task.seeds), exc, seconds),
                    None) for s in task.seeds]
    new = sweep.run_dir.write(results)
    outcome.written += new
    progress.cell_done(sweep.describe(task.cell, new, seconds))
    return new
