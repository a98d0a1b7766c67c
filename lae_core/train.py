"""The epoch loop: batched runs until d_align reaches the thresholds, diverges, or hits the cap.

A batch is r runs of one model, optimizer, k and dataset, each with its own seed and learning
rate, stacked on a leading run axis so that all of them cost one batched product per step. A run
leaves the batch as soon as it is finished (all thresholds reached, or non-finite values), so
the remaining runs continue on a smaller batch and finished ones cost nothing.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from . import backend as be
from .data import Dataset
from .hyper import device_hyperparameters, preset_hyperparameters, validate_hyperparameters
from .objectives import draw_cutoffs, get_objective
from .operators import into_basis, make_operator, out_of_basis
from .optim import ROTATION_EQUIVARIANT, Optimizer, get_optimizer
from .steps import STEPS, ReferenceStep, Step
from .steps.packed import packed_step, packed_unsupported

INIT_SCALE = 1e-4


class ConfigurationError(ValueError):
    """A combination of model, optimizer and formulation that cannot run."""


@dataclass(frozen=True)
class Schedule:
    """When to evaluate and when to stop.

    thresholds: d_align levels whose first evaluated epoch is recorded; a run stops once the
    lowest is reached (none: run to max_epochs). history: keep every metric at every evaluation.
    """

    thresholds: tuple[float, ...] = (0.3,)
    max_epochs: int = 50_000
    eval_every: int = 10
    history: bool = False


@dataclass
class RunResult:
    """One run of a batch. ``params`` are host float64 arrays in the original basis."""

    seed: int
    lr: float
    status: str = "capped"
    epochs: int = 0
    epochs_to: dict[float, int | None] = field(default_factory=dict)
    final: dict[str, float] = field(default_factory=dict)
    history: dict[str, np.ndarray] | None = None
    params: tuple[np.ndarray, ...] = ()
    epoch_times: list[float] = field(default_factory=list)  # seconds per batch epoch, per block
    batch_sizes: list[int] = field(default_factory=list)    # runs in the batch, per block


@dataclass
class BatchResult:
    model: str
    optimizer: str
    k: int
    formulation: str
    backend: str
    dtype: str
    hyperparameters: dict[str, Any]
    runs: list[RunResult]
    wall_time: float
    step: str = "reference"   # which training step ran: reference, packed, compiled or graph
    graph_error: str | None = None   # why CUDA-graph capture failed, where it was tried


def choose_formulation(model: str, optimizer: str | Optimizer, requested: str = "auto") -> str:
    """spectral for rotation-equivariant optimizers, covariance otherwise, sample for nd."""
    optimizer = get_optimizer(optimizer).name
    if get_objective(model).needs_samples:
        if requested not in ("auto", "sample"):
            raise ConfigurationError(f"formulation: {model} needs the samples; "
                                     f"{requested!r} cannot run it (allowed: auto, sample)")
        return "sample"
    if requested == "auto":
        return "spectral" if optimizer in ROTATION_EQUIVARIANT else "covariance"
    if requested == "spectral" and optimizer not in ROTATION_EQUIVARIANT:
        raise ConfigurationError(f"formulation: 'spectral' is exact only for "
                                 f"{', '.join(ROTATION_EQUIVARIANT)}, not {optimizer}")
    if requested not in ("spectral", "covariance", "sample"):
        raise ConfigurationError(f"formulation: {requested!r} is not one of "
                                 "auto, spectral, covariance, sample")
    return requested


def seed_streams(seed: int) -> tuple[np.random.Generator, np.random.Generator]:
    """Independent host generators of one run: (initial weights, nested-dropout cut-offs)."""
    init, dropout = np.random.SeedSequence(seed).spawn(2)
    return np.random.default_rng(init), np.random.default_rng(dropout)


def initial_weights(seed: int, k: int, m: int, init_scale: float = INIT_SCALE):
    """W1 (k, m), W2 (m, k) with i.i.d. N(0, init_scale^2) entries, host float64."""
    rng = seed_streams(seed)[0]
    W1 = init_scale * rng.standard_normal((k, m))
    W2 = init_scale * rng.standard_normal((m, k))
    return W1, W2


def run_batch(dataset: Dataset, model: str, optimizer: str | Optimizer, k: int,
              lrs: Sequence[float], seeds: Sequence[int], *,
              schedule: Schedule = Schedule(), hyperparameters: dict | None = None,
              dtype: str = "float64", backend: Any = "auto", formulation: str = "auto",
              initial: tuple[np.ndarray, np.ndarray] | None = None,
              init_scale: float = INIT_SCALE, step: str = "auto",
              on_eval: Callable[[int, np.ndarray], None] | None = None) -> BatchResult:
    """Train len(seeds) runs of one (model, optimizer, k) as one batch.

    optimizer: a name of ``OPTIMIZERS`` (the paper's settings) or an ``Optimizer`` with its own
    hyperparameters (e.g. ``optim.adam(b1=0.8)``), which every step applies.
    lrs, seeds: one per run. initial: optional host (W1 (r, k, m), W2 (r, m, k)) replacing the
    seeded draw. step: 'auto' (the packed step where it supports the model, formulation and
    namespace, else the reference step), 'reference' or 'packed' (see ``lae_core.steps``).
    on_eval(epoch, d_align of the runs still active) is called at every evaluation.
    """
    objective = get_objective(model)
    if not 1 <= k <= dataset.m:
        raise ConfigurationError(f"k: {k} must be between 1 and m = {dataset.m}")
    if len(lrs) != len(seeds):
        raise ConfigurationError("one learning rate per seed is needed")
    opt = get_optimizer(optimizer)
    form = choose_formulation(model, opt, formulation)
    xp = be.get_namespace(backend) if isinstance(backend, str) else backend
    dt = be.dtype_of(xp, dtype)
    hp_host = validate_hyperparameters(
        model, preset_hyperparameters(model, k, dataset.m) if hyperparameters is None
        else hyperparameters, k)
    op = make_operator(form, xp, dataset, k, dt)
    if initial is None:
        pairs = [initial_weights(s, k, dataset.m, init_scale) for s in seeds]
        initial = (np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs]))
    W1, W2 = into_basis(form, dataset, *initial)
    host_params = (W1, W2) + (objective.extra_params(k, len(seeds)) if objective.extra_params
                              else ())
    lr_host = np.asarray(lrs, dtype=np.float64)
    the_step = make_step(step, op, objective, opt,
                         device_hyperparameters(xp, hp_host, dt),
                         tuple(be.to_device(xp, p, dt) for p in host_params),
                         be.to_device(xp, lr_host, dt), be.flush_floor(xp, dt))
    loop = _Loop(the_step, schedule, objective.stochastic,
                 [seed_streams(s)[1] for s in seeds], dataset.n, hp_host.get("keep_probs"),
                 on_eval, be.Stopwatch(xp))
    t0 = time.perf_counter()
    runs = loop.run(lr_host, list(seeds))
    wall = time.perf_counter() - t0
    with be.quiet_float_errors():  # a diverged run's weights are NaN: no warning for that
        for run in runs:
            run.params = out_of_basis(form, dataset, *run.params[:2]) + run.params[2:]
    return BatchResult(model, opt.name, k, form, be.backend_name(xp), dtype, hp_host, runs, wall,
                       the_step.name, getattr(the_step, "graph_error", None))


def make_step(kind: str, op, objective, optimizer, hp: dict, params: tuple, lr: Any,
              floor: float) -> Step:
    """The training step for ``kind`` ('auto', 'reference' or 'packed'); see ``step``."""
    if kind not in STEPS:
        raise ConfigurationError(f"step: {kind!r} is not one of {', '.join(STEPS)}")
    args = (op, objective, optimizer, hp, params, lr, floor)
    if kind == "reference":
        return ReferenceStep(*args)
    reason = packed_unsupported(op, objective, optimizer)
    if reason is None:
        return packed_step(*args)
    if kind == "packed":
        raise ConfigurationError(f"step: 'packed' cannot run {reason}")
    return ReferenceStep(*args)


class _Loop:
    """Drives a step through evaluation blocks until every run is finished."""

    def __init__(self, step: Step, schedule: Schedule, stochastic: bool, rngs, n_samples: int,
                 keep_probs, on_eval, watch: be.Stopwatch):
        self.step, self.schedule, self.stochastic = step, schedule, stochastic
        self.rngs, self.n_samples, self.keep_probs = rngs, n_samples, keep_probs
        self.on_eval, self.watch = on_eval, watch
        self.stop_at = min(schedule.thresholds) if schedule.thresholds else None

    def run(self, lrs: np.ndarray, seeds: list[int]) -> list[RunResult]:
        schedule, step = self.schedule, self.step
        results = [RunResult(seed, float(lr), epochs_to={t: None for t in schedule.thresholds})
                   for seed, lr in zip(seeds, lrs)]
        active = np.arange(len(seeds))
        epoch = 0
        with be.quiet_float_errors():
            done = self._evaluate(results, active, epoch)
            while True:
                active = self._retire(done, active, results)
                if active.size == 0 or epoch >= schedule.max_epochs:
                    break
                steps = min(schedule.eval_every, schedule.max_epochs - epoch)
                cutoffs = self._draw_cutoffs(active, steps)
                self.watch.start()
                step.run(steps, cutoffs)
                per_epoch = self.watch.stop() / steps
                epoch += steps
                for i in active:
                    results[i].epoch_times.append(per_epoch)
                    results[i].batch_sizes.append(int(active.size))
                done = self._evaluate(results, active, epoch)
                if epoch >= schedule.max_epochs:
                    done[:] = True
        return results

    def _draw_cutoffs(self, active: np.ndarray, steps: int) -> np.ndarray | None:
        if not self.stochastic:
            return None
        return draw_cutoffs([self.rngs[i] for i in active], steps, self.n_samples,
                            self.keep_probs)

    def _evaluate(self, results, active, epoch) -> np.ndarray:
        """Record d_align and finiteness of the active runs; returns 'finished' per run."""
        align, finite = self.step.evaluate()
        if self.schedule.history:
            self._record_history(results, active, epoch)
        done = ~finite
        for j, i in enumerate(active):
            run = results[i]
            run.epochs = epoch
            if not finite[j]:
                run.status = "diverged"
                continue
            for t in run.epochs_to:
                if run.epochs_to[t] is None and align[j] <= t:
                    run.epochs_to[t] = epoch
            if self.stop_at is not None and align[j] <= self.stop_at:
                run.status, done[j] = "reached", True
        if self.on_eval is not None:
            self.on_eval(epoch, align)
        return done

    def _record_history(self, results, active, epoch) -> None:
        metrics = self.step.metrics()
        for j, i in enumerate(active):
            hist = results[i].history = results[i].history or {"epoch": []}
            hist["epoch"].append(epoch)
            for name, values in metrics.items():
                hist.setdefault(name, []).append(float(values[j]))

    def _retire(self, done: np.ndarray, active: np.ndarray, results) -> np.ndarray:
        """Store the finished runs' final metrics and weights, and drop them from the step."""
        if not done.any():
            return active
        final = self.step.metrics()
        host = self.step.host_params()
        for j in np.flatnonzero(done):
            run = results[active[j]]
            run.final = {name: float(v[j]) for name, v in final.items()}
            run.params = tuple(np.asarray(h[j], dtype=np.float64) for h in host)
            if run.history is not None:
                run.history = {name: np.asarray(v) for name, v in run.history.items()}
        keep = np.flatnonzero(~done)
        if keep.size:
            self.step.retire(keep)
        return active[keep]
