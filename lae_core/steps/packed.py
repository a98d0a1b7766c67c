# Over 400 lines: the packed step and its variants (compiled CPU blocks, the captured GPU graph,
# nested dropout) share one buffer layout, one allocation and one retire; they are read together.
"""The packed step: persistent buffers, a few matrix products, one fused pass per epoch.

The encoder and the transposed decoder of all runs live in ONE buffer W (r, 2k, m):
W[:, :k] = W1, W[:, k:] = W2^T. Every model but stochastic nested dropout then has gradients

    g1  = K1 P   + a1 o CW2^T + b1 o W1 (+ L1 W1, RAG only)
    g2T = K2 W2T + a2 o P     + b2 o W2T

with P = W1 C, CW2^T = W2^T C (the two halves of Q = W C, one product), k x k matrices K1, K2
(and L1) formed from S = W1 C W1^T and G = W2^T W2, and per-row coefficients a, b (r, 2k) that
scale rows (``o``). An epoch is then: Q (one product, or one row scaling in the eigenbasis),
S and G (two products), the model's k x k coefficients, K1 P and K2 W2T (two products), and ONE
fused pass (``kernels``) that forms g, applies the optimizer, flushes W and, in the eigenbasis,
writes the next Q. Nothing is allocated per epoch; the matrix products write into buffers.

Shapes: r runs, k latent, m input. Parameters are in the operator's basis.
"""
from __future__ import annotations

import contextlib
from typing import Any

import array_api_compat
import numpy as np

from .. import backend as be
from . import cpu_block, kernels
from ..metrics import all_metrics, d_align
from ..objectives import MODELS, get_objective, vae_variance_grads
from ..optim import UPDATE_CODES, select_runs
from .interface import Step, finite_runs, flush_state, pack_evaluation

# The models whose gradient has the k x k form above (``Objective.kk_form``)
PACKED_MODELS = tuple(name for name in MODELS if get_objective(name).kk_form is not None)
PACKED_FORMS = ("spectral", "covariance")
# Up to this k the k x k x m products run as compiled loops inside one call per block; beyond
# it BLAS is faster than those loops and the per-call overhead of the array-call epoch is small.
COMPILED_MAX_K = 32
# The k x k forms whose small-k GPU epoch is kernels only (no cuBLAS call): it can be captured.
GRAPH_FORMS = (*cpu_block.KK_FORM_CODES, "vae")


def packed_unsupported(op, objective, optimizer) -> str | None:
    """Why the packed step cannot run this combination (None: it can)."""
    if objective.stochastic and array_api_compat.is_cupy_namespace(op.xp):    # nd: NdStep
        return None if optimizer.name in UPDATE_CODES else \
            f"optimizer {optimizer.name} (packed: {', '.join(UPDATE_CODES)})"
    if objective.kk_form is None:
        return f"model {objective.name} (packed: {', '.join(PACKED_MODELS)}; nd on CuPy)"
    if op.form not in PACKED_FORMS:
        return f"formulation {op.form} (packed: {', '.join(PACKED_FORMS)})"
    if optimizer.name not in UPDATE_CODES:
        return f"optimizer {optimizer.name} (packed: {', '.join(UPDATE_CODES)})"
    if not (array_api_compat.is_numpy_namespace(op.xp)
            or array_api_compat.is_cupy_namespace(op.xp)):
        return f"namespace {be.backend_name(op.xp)} (packed: numpy, cupy)"
    return None


def packed_step(op, objective, optimizer, hp: dict, params: tuple, lr: Any,
                floor: float) -> Step:
    """The packed step for this namespace: compiled blocks on NumPy with Numba, else the
    array-call epoch (CuPy kernels on a GPU, NumPy calls without Numba)."""
    k = params[0].shape[-2]
    if objective.stochastic:
        return NdStep(op, objective, optimizer, hp, params, lr, floor)
    # In the covariance form the (2k r, m) x (m, m) product is the epoch: one BLAS call over
    # all runs beats per-run products inside a compiled block, and call overhead is noise.
    on_cpu = raw_module(op.xp) is np
    # the CPU's compiled blocks know the k x k forms; the GPU's graph also the VAE's kernels
    small = (k <= COMPILED_MAX_K and op.form == "spectral"
             and objective.kk_form in (cpu_block.KK_FORM_CODES if on_cpu else GRAPH_FORMS))
    kind = packed_kind(on_cpu, small, optimizer.per_step, cpu_block.compiled() is not None)
    return {"compiled": CompiledStep, "graph": GraphStep, "packed": PackedStep}[kind](
        op, objective, optimizer, hp, params, lr, floor)


def packed_kind(on_cpu: bool, small: bool, per_step: bool, numba: bool) -> str:
    """Which packed step runs: 'compiled' (CPU with Numba), 'graph' (GPU, captured blocks:
    never an optimizer whose scalars change per step, see ``GraphStep``) or 'packed' (the
    array-call epoch)."""
    if on_cpu:
        return "compiled" if small and numba else "packed"
    return "graph" if small and not per_step else "packed"


def raw_module(xp: Any) -> Any:
    """numpy or cupy itself: the packed step needs ``out=`` arguments, not in the array API."""
    if array_api_compat.is_cupy_namespace(xp):
        import cupy
        return cupy
    return np


class PackedStep:
    """A batch of runs in persistent packed buffers (see the module docstring)."""

    name = "packed"

    def __init__(self, op, objective, optimizer, hp: dict, params: tuple, lr: Any,
                 floor: float, kern: Any = None):
        self.op, self.objective, self.optimizer, self.hp = op, objective, optimizer, hp
        self.np = raw_module(op.xp)
        self.kern = kern or kernels.for_module(self.np)
        self.products = self._products()
        self.floor = floor
        self.rule = self._rule()
        W1, W2 = params[0], params[1]
        self.k = W1.shape[-2]
        self.W = self.np.ascontiguousarray(self.np.concatenate((W1, W2.mT), axis=1))
        self.lr = lr
        self.state = tuple(self.np.zeros_like(self.W) for _ in optimizer.buffers)
        self.count = 0                                  # Adam's step count t
        # the VAE's log-variances and log noise: tiny, updated by the reference optimizer
        self.extra = tuple(params[2:])
        self.extra_state = optimizer.init(self.extra) if self.extra else None
        self._allocate()

    def _products(self):
        return kernels.products_for(self.np, self.kern)

    def _rule(self):
        return rule_for(self.objective.kk_form, self.kern)

    # --- buffers ----------------------------------------------------------------------------

    def _allocate(self) -> None:
        xp, (r, k2, m), dt = self.np, self.W.shape, self.W.dtype
        k = k2 // 2
        self.Q = xp.empty_like(self.W)
        self.Qn = xp.empty_like(self.W) if self.op.form == "spectral" else self.Q
        self.prod1, self.prod2 = xp.empty((r, k, m), dt), xp.empty((r, k, m), dt)
        self.E = xp.empty((r, k if self.rule.rotation else 0, m), dt)
        self.L1 = xp.empty((r, k, k), dt)
        self.S, self.G = xp.empty((r, k, k), dt), xp.empty((r, k, k), dt)
        self.K1, self.K2 = xp.empty((r, k, k), dt), xp.empty((r, k, k), dt)
        self.a, self.b = xp.empty((r, k2), dt), xp.empty((r, k2), dt)
        if self.op.form == "spectral":
            xp.multiply(self.W, self.op.c, out=self.Q)
        self.rule.fill_rows(self)

    def retire(self, keep: np.ndarray) -> None:
        idx = be.to_device(self.np, keep)
        take = lambda a: self.np.ascontiguousarray(a[idx])   # noqa: E731
        self.W, self.lr = take(self.W), take(self.lr)
        self.state = tuple(map(take, self.state))
        if self.extra:
            self.extra = tuple(map(take, self.extra))
            self.extra_state = select_runs(self.op.xp, self.extra_state, idx)
        self._allocate()

    # --- views in the reference layout --------------------------------------------------------

    def params(self) -> tuple:
        """(W1 (r, k, m), W2 (r, m, k)[, v, s]) as views of the packed buffer."""
        return (self.W[:, : self.k], self.W[:, self.k:].mT) + self.extra

    def host_params(self) -> tuple[np.ndarray, ...]:
        return tuple(be.to_host(self.np.ascontiguousarray(p)) for p in self.params())

    def evaluate(self) -> tuple[np.ndarray, np.ndarray]:
        return pack_evaluation(self.op.xp, d_align(self.op, self.params()[1]),
                               finite_runs(self.op.xp, (self.W,) + self.extra))

    def metrics(self) -> dict[str, np.ndarray]:
        return {name: be.to_host(v) for name, v in
                all_metrics(self.op, self.objective, self.params(), self.hp).items()}

    # --- the epoch ---------------------------------------------------------------------------

    def run(self, steps: int, cutoffs: np.ndarray | None = None) -> None:
        for _ in range(steps):
            self._epoch()
        self._flush_state()

    def _epoch(self) -> None:
        W, products = self.W, self.products
        if self.op.form == "covariance":
            products.times_c(W, self.op.C, self.Q)
        products.grams(W, self.Q, self.S, self.G, self.floor)
        self.rule.coefficients(self)
        products.left(W, self.Q, self.K1, self.K2, self.L1, self.prod1, self.prod2, self.E,
                      self.rule.rotation)
        self._apply()
        if self.op.form == "spectral":
            self.Q, self.Qn = self.Qn, self.Q

    def _apply(self) -> None:
        """The fused pass: gradient tail, optimizer update, flush, next Q (eigenbasis)."""
        optimizer = self.optimizer
        self.count += 1                                 # the optimizer's step t
        spectral = self.op.form == "spectral"
        separate = self.extra and not self.rule.fused_extras   # else the rule's kernels did it
        extra_grads = self.rule.extra_grads(self) if separate else None  # before W moves
        self.kern.tail(optimizer.code, optimizer.scalars(self.count, self.W.dtype), self.W,
                       self.Q, self.prod1, self.prod2, self.E, self.a, self.b,
                       self.rule.scales(self), self.lr, self.state, self.floor,
                       self.op.c if spectral else None, self.Qn if spectral else None)
        if separate:
            self.extra, self.extra_state = self.optimizer.update(extra_grads, self.extra_state,
                                                                 self.extra, self.lr)
            self.extra = tuple(be.flush(self.op.xp, p, self.floor) for p in self.extra)

    def _flush_state(self) -> None:
        for name, buf in zip(self.optimizer.buffers, self.state):
            self.kern.flush(buf, self.optimizer.state_floor(name, self.floor))
        if self.extra_state is not None and self.rule.fused_extras:
            self._flush_extra_state_in_place()
        elif self.extra_state is not None:
            self.extra_state = flush_state(self.op.xp, self.optimizer, self.extra_state,
                                           self.floor)

    def _flush_extra_state_in_place(self) -> None:
        for name in self.optimizer.buffers:
            for buf in getattr(self.extra_state, name):
                self.kern.flush(buf, self.optimizer.state_floor(name, self.floor))


# --- per-model coefficients ---------------------------------------------------------------------

class KkRule:
    """The L2 models, RAG and nested dropout in expectation: K1, K2 (L1) from S and G by
    ``ArrayProducts.coefficients`` (``cpu_block.KK_FORM_CODES``), constant rows a, b:
    L2 a = -2, b = 2 lam; RAG a = -2, b = 0; nested dropout a = -2p, b = 0."""

    fused_extras = False

    def __init__(self, kk_form: str):
        self.code = cpu_block.KK_FORM_CODES[kk_form]
        self.rotation = self.code == cpu_block.RAG

    def scales(self, step) -> tuple | None:
        """(s, d) of the fused pass (``kernels``): only the VAE rescales its gradient."""
        return None

    def fill_rows(self, step) -> None:
        xp, hp = step.np, step.hp
        twice = lambda v: xp.concatenate((v, v)) if hasattr(v, "shape") else v  # noqa: E731
        step.a[...] = -twice(hp["keep_probs2"]) if "keep_probs2" in hp else -2
        step.b[...] = twice(hp["lam2"]) if "lam2" in hp else 0
        step.M2 = hp.get("keep_matrix2", step.np.zeros((step.k, step.k), step.W.dtype))

    def coefficients(self, step) -> None:
        step.products.coefficients(self.code, step.S, step.G, step.M2, step.K1, step.K2,
                                   step.L1, step.floor)


class VaeRule:
    """Linear VAE, in the reference's order (``objectives.vae_grads``):
    g1 = (G P - CW2^T) / sigma^2 + P, g2T = (S^T W2T - P + e^v o W2T) / sigma^2: K1 = G,
    K2 = S^T, a = -1, b = (0, e^v), s = 1 / sigma^2, d = (1, 0); v and s (the log noise) get
    the NELBO's gradients from ``extra_grads``."""

    rotation = False
    fused_extras = False

    def fill_rows(self, step) -> None:
        step.a[...] = -1
        step.d = step.np.zeros_like(step.a)
        step.d[:, : step.k] = 1
        step.s = step.np.empty_like(step.a)

    def coefficients(self, step) -> None:
        xp, k = step.np, step.k
        v, s = step.extra
        step.K1[...] = step.G
        step.K2[...] = step.S.mT
        step.b[:, :k] = 0
        xp.exp(v, out=step.b[:, k:])
        step.s[...] = (1 / xp.exp(s))[:, None]

    def scales(self, step) -> tuple:
        return step.s, step.d

    def extra_grads(self, step) -> tuple:
        """``objectives.vae_variance_grads`` from the packed buffers (T = sum_i e^(v_i) G_ii
        + L, L from S, G and P as ``objectives.reconstruction_loss`` forms it)."""
        xp, k, op = step.np, step.k, step.op
        v, s = step.extra
        ev, sig2 = xp.exp(v), xp.exp(s)
        diag_G = xp.diagonal(step.G, axis1=-2, axis2=-1)
        W2T, P = step.W[:, k:], step.Q[:, :k]
        recon = (op.trace - 2 * xp.sum(W2T * P, axis=(-2, -1))
                 + xp.sum(step.S * step.G, axis=(-2, -1)))
        T = xp.sum(ev * diag_G, axis=-1) + recon
        return vae_variance_grads(ev, sig2, diag_G, T, step.W.shape[-1])


class FusedVaeRule(VaeRule):
    """The VAE on a GPU, allocation-free: v and s stay in their buffers and move inside two
    kernels (``cuda/vae.cu``): one thread per unit forms K1 = G, K2 = S^T, the rows b and the
    scale s, its terms of the NELBO's T, and updates v; one thread per run sums T and updates
    s. Same gradients as ``VaeRule`` (sums in another order)."""

    fused_extras = True

    def fill_rows(self, step) -> None:
        super().fill_rows(step)
        r, k = step.extra[0].shape
        step.terms = step.np.empty((r, 3 * k), step.W.dtype)

    def coefficients(self, step) -> None:
        optimizer, kern = step.optimizer, step.kern
        v, s = step.extra
        slots = [tuple(getattr(step.extra_state, field)[which] for field in optimizer.buffers)
                 for which in (0, 1)]
        # this epoch's t: the fused pass counts it after
        rule, sc = optimizer.code, optimizer.scalars(step.count + 1, step.W.dtype)
        kern.vae_coefficients(rule, sc, step.W, step.Q, step.S, step.G, step.K1, step.K2,
                              step.b, step.s, v, slots[0], s, step.terms, step.lr, step.floor)
        kern.vae_noise(rule, sc, s, slots[1], step.terms, step.op.trace, step.W.shape[-1],
                       step.lr, step.floor)


RULES = {"vae": VaeRule(), **{form: KkRule(form) for form in cpu_block.KK_FORM_CODES}}


def rule_for(kk_form: str, kern: Any):
    """The rule of a k x k form; the VAE's kernels where the kernel set has them (CUDA)."""
    if isinstance(RULES[kk_form], VaeRule) and hasattr(kern, "vae_coefficients"):
        return FusedVaeRule()
    return RULES[kk_form]


class CompiledStep(PackedStep):
    """The packed step on the CPU with Numba: every epoch of a block in one compiled call
    (``cpu_block``), same buffers and arithmetic as ``PackedStep``."""

    name = "compiled"

    def __init__(self, op, objective, optimizer, hp: dict, params: tuple, lr: Any,
                 floor: float):
        self.run_block, self.flush_block, _ = cpu_block.compiled()
        super().__init__(op, objective, optimizer, hp, params, lr, floor)
        self.codes = (cpu_block.KK_FORM_CODES[objective.kk_form], cpu_block.FORM_CODES[op.form],
                      optimizer.code)
        dt, k = self.W.dtype, self.k
        self.c = cpu_block.constants(dt, floor)
        self.lam2 = np.broadcast_to(np.asarray(hp.get("lam2", 0.0), dtype=dt), (k,)).copy()
        self.keep2 = np.asarray(hp.get("keep_probs2", np.zeros(k)), dtype=dt)
        self.M2 = np.asarray(hp.get("keep_matrix2", np.zeros((k, k))), dtype=dt)
        self.cvec = op.c if op.form == "spectral" else np.zeros(1, dt)
        self.cmat = op.C if op.form == "covariance" else np.zeros((1, 1), dt)

    def _allocate(self) -> None:
        r, k2, m = self.W.shape
        k, dt = k2 // 2, self.W.dtype
        self.Qs = np.empty((2, r, k2, m), dt)
        self.cur = 0
        if self.op.form == "spectral":
            np.multiply(self.W, self.op.c, out=self.Qs[0])
        self.S, self.G, self.K1, self.K2, self.L1 = (np.empty((r, k, k), dt) for _ in range(5))
        self.E = np.empty((r, k if self.rule.rotation else 0, m), dt)
        self.prod1, self.prod2 = np.empty((r, k, m), dt), np.empty((r, k, m), dt)
        self.rows = np.empty((r, 2, k2), dt)
        # unused optimizer slots get zero buffers (the fused pass writes them back)
        self.slots = self.state + tuple(np.zeros_like(self.W) for _ in range(2 - len(self.state)))

    @property
    def Q(self):
        return self.Qs[self.cur]

    def run(self, steps: int, cutoffs: np.ndarray | None = None) -> None:
        model, form, opt = self.codes
        scalars = self.optimizer.scalars(range(self.count + 1, self.count + steps + 1),
                                         self.W.dtype)
        self.cur = self.run_block(
            model, form, opt, steps, self.cur, self.W, self.Qs, self.cmat, self.cvec, self.S,
            self.G, self.K1, self.K2, self.L1, self.E, self.prod1, self.prod2, self.rows,
            self.slots[0], self.slots[1], self.lr, self.lam2, self.keep2, self.M2, self.c,
            scalars)
        self.count += steps
        self._flush_state()

    def retire(self, keep: np.ndarray) -> None:
        Q = self.Q[keep]
        self.W, self.lr = self.W[keep], self.lr[keep]
        self.state = tuple(s[keep] for s in self.state)
        self._allocate()
        self.Qs[0] = Q


# Why GraphStep refuses an optimizer whose scalars change with the step count (Adam's bias
# corrections, ``Optimizer.per_step``): they enter the fused pass by value, so a captured block
# would replay the values of its capture (t = 1..eval_every) forever.
GRAPH_REFUSES_PER_STEP = ("its scalars change with the step count (bias corrections), and a "
                          "CUDA graph replays the values of its capture")


class CaptureAllocationError(RuntimeError):
    """Memory was asked for while a CUDA graph was being captured."""


@contextlib.contextmanager
def refuse_allocations(cuda: Any):
    """Inside: every CuPy allocation raises ``CaptureAllocationError``; yields the capture mode
    to begin capture with (thread-local: CUDA itself refuses unsafe calls such as cudaMalloc).

    Why: CuPy captures in relaxed mode by default, where a temporary served from the memory
    pool is captured silently; the graph would then write into memory the pool hands out
    again after capture. The epochs of a graph block allocate nothing, so any allocation is a
    bug to report (``graph_error``), never to capture."""
    def refuse(size: int):
        raise CaptureAllocationError(f"{size} bytes asked for inside a CUDA graph capture "
                                     "(an epoch must write into its preallocated buffers)")
    with cuda.using_allocator(refuse):
        yield cuda.runtime.streamCaptureModeThreadLocal


class GraphStep(PackedStep):
    """The packed step on a GPU at small k in the eigenbasis: an epoch is four kernels (five
    for the VAE) and no cuBLAS call (``cuda/small_k.cu``, ``cuda/vae.cu``), so a block of
    epochs and the optimizer state's flush are captured once as a CUDA graph and replayed
    with one launch. Capture runs under ``refuse_allocations``. Where capture fails the
    epochs run eagerly, ``graph_error`` says why and ``name`` is 'packed' (it is 'graph'
    once a block was replayed). Adam is refused (``GRAPH_REFUSES_PER_STEP``)."""

    def __init__(self, op, objective, optimizer, hp: dict, params: tuple, lr: Any,
                 floor: float, kern: Any = None, products: Any = None, cuda: Any = None):
        if optimizer.per_step:
            raise ValueError(f"GraphStep cannot run {optimizer.name}: {GRAPH_REFUSES_PER_STEP}")
        super().__init__(op, objective, optimizer, hp, params, lr, floor, kern)
        self.products = products or self.kern      # CupyKernels: grams, coefficients, left
        self.cuda = cuda or getattr(self.np, "cuda", None)
        self.graph_error: str | None = (None if self.cuda is not None else
                                        f"no CUDA module beside {self.np.__name__}")
        self.replayed = False

    @property
    def name(self) -> str:
        return "graph" if self.replayed and self.graph_error is None else "packed"

    def _allocate(self) -> None:
        super()._allocate()
        self.graphs: dict = {}          # (steps, which buffer holds Q) -> graph

    def run(self, steps: int, cutoffs: np.ndarray | None = None) -> None:
        graph = self._graph(steps) if self.graph_error is None else None
        if graph is None:
            for _ in range(steps):
                self._epoch()
        else:
            stream, graph, swapped = graph
            stream.wait_event(self.cuda.get_current_stream().record())
            graph.launch(stream)
            stream.synchronize()
            self.count += steps
            self.replayed = True
            if swapped:                 # the captured epochs left Q in the other buffer
                self.Q, self.Qn = self.Qn, self.Q
            return                      # the graph flushed the optimizer state
        self._flush_state()

    def _graph(self, steps: int):
        """(stream, graph, swapped) for ``steps`` epochs from the current buffers; captured on
        first use. Capture records kernels without running them, so the state is untouched."""
        key = (steps, id(self.Q))
        if key not in self.graphs:
            start, count = self.Q, self.count
            try:
                stream = self.cuda.Stream(non_blocking=True)
                with stream, refuse_allocations(self.cuda) as mode:
                    stream.begin_capture(mode)
                    try:
                        for _ in range(steps):
                            self._epoch()
                        self._flush_state()     # in the graph: one launch per block
                    except BaseException:
                        with contextlib.suppress(Exception):   # leave capture; keep the cause
                            stream.end_capture()
                        raise
                    graph = stream.end_capture()
            except Exception as exc:   # noqa: BLE001 - any refusal means: run eagerly
                self.graph_error = f"{type(exc).__name__}: {exc}"
                return None
            finally:
                self.count = count      # capture ran the Python side: undo its count
                swapped = self.Q is not start
                if swapped:             # ... and its buffer swaps
                    self.Q, self.Qn = self.Qn, self.Q
            self.graphs[key] = (stream, graph, swapped)
        return self.graphs[key]


class NdStep(PackedStep):
    """Stochastic nested dropout on the samples, packed, on a GPU (``cuda/nd.cu``): per epoch
    five cuBLAS calls on fixed buffers (Y = X W^T and T = X^T [H | Zm] over all runs at once,
    Zm G, Zm^T Zm and its product with W2^T per run, operands as they lie) and three kernels
    (the masks with G, the residual H, the gradient with the update). A block's cut-offs are
    uploaded once into a fixed device buffer; nothing is allocated per epoch."""

    name = "packed"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.cut = self.np.empty((0, 0, 0), np.int32)

    def _products(self):
        return kernels.CublasProducts(self.kern)

    def _rule(self):
        return RULES["nested_dropout"]                  # only for fused_extras (False)

    def _allocate(self) -> None:
        xp, (r, k2, m), dt = self.np, self.W.shape, self.W.dtype
        n, k = self.op.n, k2 // 2
        self.Y, self.HZ = xp.empty((n, r, k2), dt), xp.empty((n, r, k2), dt)
        self.T = xp.empty((m, r, k2), dt)
        self.G, self.A = xp.empty((r, k, k), dt), xp.empty((r, k, k), dt)
        self.prod2 = xp.empty((r, k, m), dt)

    def run(self, steps: int, cutoffs: np.ndarray | None = None) -> None:
        cut = self._upload(cutoffs)
        for e in range(steps):
            self._epoch(cut[e])
        self._flush_state()

    def _upload(self, cutoffs: np.ndarray):
        """The block's cut-offs (steps, r, n) in the fixed device buffer: one host-to-device
        copy; the buffer grows only when a block is longer or the batch changed."""
        steps = cutoffs.shape[0]
        if self.cut.shape[0] < steps or self.cut.shape[1:] != cutoffs.shape[1:]:
            self.cut = self.np.empty(cutoffs.shape, np.int32)
        view = self.cut[:steps]
        view.set(np.ascontiguousarray(cutoffs, dtype=np.int32))
        return view

    def _epoch(self, cutoffs) -> None:
        W, HZ, k, (n, r, k2) = self.W, self.HZ, self.k, self.HZ.shape
        gemm, X = self.products.gemm, self.op.X
        m = W.shape[2]
        gemm(X, False, W.reshape(r * k2, m), True, self.Y.reshape(n, r * k2))
        self.kern.nd_mask(self.Y, cutoffs, HZ, W, self.G)
        runs = HZ.transpose(1, 0, 2)                    # (r, n, 2k) views, no copy
        gemm(runs[:, :, k:], False, self.G, False, runs[:, :, :k])
        self.kern.nd_residual(self.Y, cutoffs, HZ)
        gemm(X, True, HZ.reshape(n, r * k2), False, self.T.reshape(m, r * k2))
        gemm(runs[:, :, k:], True, runs[:, :, k:], False, self.A)
        gemm(self.A, True, W[:, k:], False, self.prod2)
        self.count += 1
        optimizer = self.optimizer
        self.kern.nd_tail(optimizer.code, optimizer.scalars(self.count, W.dtype), W, self.T,
                          self.prod2, self.lr, self.state, self.floor, n)
