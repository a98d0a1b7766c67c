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
from .metrics import all_metrics, d_align
from .objectives import draw_cutoffs, get_objective
from .operators import into_basis, make_operator, out_of_basis
from .optim import ROTATION_EQUIVARIANT, get_optimizer, select_runs

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


def choose_formulation(model: str, optimizer: str, requested: str = "auto") -> str:
    """spectral for rotation-equivariant optimizers, covariance otherwise, sample for nd."""
    get_optimizer(optimizer)
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


def run_batch(dataset: Dataset, model: str, optimizer: str, k: int,
              lrs: Sequence[float], seeds: Sequence[int], *,
              schedule: Schedule = Schedule(), hyperparameters: dict | None = None,
              dtype: str = "float64", backend: Any = "auto", formulation: str = "auto",
              initial: tuple[np.ndarray, np.ndarray] | None = None,
              init_scale: float = INIT_SCALE,
              on_eval: Callable[[int, np.ndarray], None] | None = None) -> BatchResult:
    """Train len(seeds) runs of one (model, optimizer, k) as one batch.

    lrs, seeds: one per run. initial: optional host (W1 (r, k, m), W2 (r, m, k)) replacing the
    seeded draw. on_eval(epoch, d_align of the runs still active) is called at every evaluation.
    """
    objective = get_objective(model)
    if not 1 <= k <= dataset.m:
        raise ConfigurationError(f"k: {k} must be between 1 and m = {dataset.m}")
    if len(lrs) != len(seeds):
        raise ConfigurationError("one learning rate per seed is needed")
    form = choose_formulation(model, optimizer, formulation)
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
    params = (W1, W2) + (objective.extra_params(k, len(seeds)) if objective.extra_params else ())
    loop = _Loop(xp, op, objective, get_optimizer(optimizer), device_hyperparameters(xp, hp_host, dt),
                 hp_host, schedule, dt, [seed_streams(s)[1] for s in seeds], on_eval)
    t0 = time.perf_counter()
    runs = loop.run(tuple(be.to_device(xp, p, dt) for p in params),
                    np.asarray(lrs, dtype=np.float64), list(seeds))
    wall = time.perf_counter() - t0
    with be.quiet_float_errors():  # a diverged run's weights are NaN: no warning for that
        for run in runs:
            run.params = out_of_basis(form, dataset, *run.params[:2]) + run.params[2:]
    return BatchResult(model, optimizer, k, form, be.backend_name(xp), dtype, hp_host, runs, wall)


class _Loop:
    """The state of one batch while it trains; ``run`` drives it to the end."""

    def __init__(self, xp, op, objective, optimizer, hp, hp_host, schedule, dtype, rngs, on_eval):
        self.xp, self.op, self.objective, self.optimizer = xp, op, objective, optimizer
        self.hp, self.hp_host, self.schedule, self.dtype = hp, hp_host, schedule, dtype
        self.rngs, self.on_eval = rngs, on_eval
        # Weights below the floor (be.flush_floor) are flushed every epoch: a flushed
        # coordinate is refilled by its coupling to the others with values far below the floor,
        # whose products are subnormal within the epoch. The optimizer state is flushed at each
        # evaluation (momenta at the same floor, squared-gradient averages at its square).
        self.floor = be.flush_floor(xp, dtype)
        self.stop_at = min(schedule.thresholds) if schedule.thresholds else None

    def run(self, params: tuple, lrs: np.ndarray, seeds: list[int]) -> list[RunResult]:
        xp, schedule = self.xp, self.schedule
        results = [RunResult(seed, float(lr), epochs_to={t: None for t in schedule.thresholds})
                   for seed, lr in zip(seeds, lrs)]
        active = np.arange(len(seeds))
        lr = be.to_device(xp, lrs, self.dtype)
        state = self.optimizer.init(params)
        watch = be.Stopwatch(xp)
        epoch = 0
        with be.quiet_float_errors():
            done = self._evaluate(params, results, active, epoch)
            while True:
                params, state, lr, active = self._retire(done, params, state, lr, active,
                                                         results, epoch)
                if active.size == 0 or epoch >= schedule.max_epochs:
                    break
                steps = min(schedule.eval_every, schedule.max_epochs - epoch)
                noise = self._draw_noise(active, steps)
                watch.start()
                for t in range(steps):
                    grads = self.objective.grads(self.op, params, self.hp,
                                                 None if noise is None else noise[t, ...])
                    params, state = self.optimizer.update(grads, state, params, lr)
                    params = self._flush(params, self.floor)
                per_epoch = watch.stop() / steps
                epoch += steps
                for i in active:
                    results[i].epoch_times.append(per_epoch)
                    results[i].batch_sizes.append(int(active.size))
                state = self._flush_state(state)
                done = self._evaluate(params, results, active, epoch)
                if epoch >= schedule.max_epochs:
                    done[:] = True
        return results

    def _draw_noise(self, active: np.ndarray, steps: int):
        if not self.objective.stochastic:
            return None
        cutoffs = draw_cutoffs([self.rngs[i] for i in active], steps, self.op.n,
                               self.hp_host["keep_probs"])
        return be.to_device(self.xp, cutoffs)  # one transfer per evaluation block

    def _evaluate(self, params, results, active, epoch) -> np.ndarray:
        """d_align and finiteness of the active runs (one small transfer); returns 'finished'."""
        xp = self.xp
        finite = None
        for p in params:
            ok = xp.all(xp.isfinite(p), axis=tuple(range(1, p.ndim))) if p.ndim > 1 \
                else xp.isfinite(p)
            finite = ok if finite is None else xp.logical_and(finite, ok)
        packed = be.to_host(xp.stack([d_align(self.op, params[1]),
                                      xp.astype(finite, params[1].dtype)]))
        align, finite_host = packed[0].astype(np.float64), packed[1] > 0
        if self.schedule.history:
            self._record_history(params, results, active, epoch)
        done = ~finite_host
        for j, i in enumerate(active):
            run = results[i]
            run.epochs = epoch
            if not finite_host[j]:
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

    def _record_history(self, params, results, active, epoch) -> None:
        metrics = {name: be.to_host(v) for name, v in
                   all_metrics(self.op, self.objective, params, self.hp).items()}
        for j, i in enumerate(active):
            hist = results[i].history = results[i].history or {"epoch": []}
            hist["epoch"].append(epoch)
            for name, values in metrics.items():
                hist.setdefault(name, []).append(float(values[j]))

    def _retire(self, done, params, state, lr, active, results, epoch):
        """Store the finished runs' final metrics and weights, and drop them from the batch."""
        if not done.any():
            return params, state, lr, active
        xp = self.xp
        final = {name: be.to_host(v) for name, v in
                 all_metrics(self.op, self.objective, params, self.hp).items()}
        host = [be.to_host(p) for p in params]
        for j in np.flatnonzero(done):
            run = results[active[j]]
            run.final = {name: float(v[j]) for name, v in final.items()}
            run.params = tuple(np.asarray(h[j], dtype=np.float64) for h in host)
            if run.history is not None:
                run.history = {name: np.asarray(v) for name, v in run.history.items()}
        keep = np.flatnonzero(~done)
        idx = be.to_device(xp, keep)
        params = tuple(xp.take(p, idx, axis=0) for p in params)
        return (params, select_runs(xp, state, idx), xp.take(lr, idx, axis=0), active[keep])

    def _flush(self, arrays: tuple, floor: float) -> tuple:
        return tuple(be.flush(self.xp, a, floor) for a in arrays)

    def _flush_state(self, state):
        squared = self.optimizer.squared_state
        return type(state)(**{
            name: self._flush(f, self.floor ** 2 if name in squared else self.floor)
            if isinstance(f, tuple) else f for name, f in state._asdict().items()})
