"""GraphStep without a GPU: it refuses Adam, the router never sends Adam there, capture runs
under a guard that makes any allocation fail loudly, and a failed capture is recorded
(``graph_error``, step name 'packed') while the epochs run eagerly and exactly.

CUDA itself cannot run here: ``FakeCuda`` stands in for ``cupy.cuda`` with the calls GraphStep
makes (a thread-local allocator, streams that begin and end capture)."""
from __future__ import annotations

import contextlib
import itertools

import numpy as np
import pytest

from lae_core import backend as be
from lae_core import synthetic
from lae_core.hyper import device_hyperparameters, preset_hyperparameters
from lae_core.objectives import get_objective
from lae_core.operators import into_basis, make_operator
from lae_core.optim import UPDATE_CODES, get_optimizer
from lae_core.steps import kernels
from lae_core.steps.packed import (PACKED_MODELS, CaptureAllocationError, GraphStep,
                                   PackedStep, packed_kind, refuse_allocations)
from lae_core.train import initial_weights

K, SEEDS = 3, (1, 2)


class FakeCuda:
    """``cupy.cuda`` as GraphStep uses it; allocations go through the current allocator."""

    class runtime:
        streamCaptureModeThreadLocal = 1

    def __init__(self):
        self.allocator = None
        self.capture_modes: list[int] = []
        self.ended = 0

    @contextlib.contextmanager
    def using_allocator(self, allocator=None):
        previous, self.allocator = self.allocator, allocator
        try:
            yield
        finally:
            self.allocator = previous

    def alloc(self, size: int):
        return self.allocator(size) if self.allocator else bytearray(size)

    def Stream(self, non_blocking: bool = False):
        return FakeStream(self)


class FakeStream:
    def __init__(self, cuda: FakeCuda):
        self.cuda = cuda

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def begin_capture(self, mode):
        self.cuda.capture_modes.append(mode)

    def end_capture(self):
        self.cuda.ended += 1
        return object()


class AllocatingProducts(kernels.ArrayProducts):
    """The NumPy products, but S and G ask for a temporary first (as a CuPy call that is not
    written into a preallocated output would)."""

    def __init__(self, cuda: FakeCuda):
        super().__init__(np)
        self.cuda = cuda

    def grams(self, *args) -> None:
        self.cuda.alloc(64)
        super().grams(*args)


def build(kind, model: str, optimizer: str, **kwargs):
    data = synthetic(m=20, n=200, seed=5, high=8.0, low=0.5)
    xp = be.get_namespace("numpy")
    op = make_operator("spectral", xp, data, K, np.float64)
    W1, W2 = (np.stack(w) for w in zip(*[initial_weights(s, K, data.m) for s in SEEDS]))
    hp = device_hyperparameters(xp, preset_hyperparameters(model, K, data.m), np.float64)
    return kind(op, get_objective(model), get_optimizer(optimizer), hp,
                into_basis("spectral", data, W1, W2), np.array([0.004, 0.002]),
                be.flush_floor(xp, np.float64), **kwargs)


def test_graph_step_refuses_adam_with_its_reason():
    with pytest.raises(ValueError, match="GraphStep cannot run adam: its scalars change with "
                       "the step count"):
        build(GraphStep, "rotation", "adam", kern=kernels.NumpyKernels())


def test_the_router_never_sends_adam_to_the_graph_step():
    for on_cpu, small, optimizer, numba in itertools.product(
            (True, False), (True, False), UPDATE_CODES, (True, False)):
        per_step = get_optimizer(optimizer).per_step
        assert per_step == (optimizer == "adam")
        kind = packed_kind(on_cpu, small, per_step, numba)
        if per_step:
            assert kind != "graph", (on_cpu, small, numba)
    assert packed_kind(False, True, False, False) == "graph"
    assert packed_kind(False, True, True, False) == "packed"
    assert packed_kind(True, True, True, True) == "compiled"
    assert packed_kind(True, False, False, True) == "packed"


def test_inside_the_guard_an_allocation_fails_loudly_and_outside_it_works():
    cuda = FakeCuda()
    with refuse_allocations(cuda) as mode:
        assert mode == FakeCuda.runtime.streamCaptureModeThreadLocal
        with pytest.raises(CaptureAllocationError, match="64 bytes asked for inside a CUDA "
                           "graph capture"):
            cuda.alloc(64)
    assert len(cuda.alloc(64)) == 64          # the previous allocator is back


@pytest.mark.parametrize("model", ["rotation", "nd_exp", "non_uniform_sum"])
def test_a_capture_that_allocates_is_recorded_and_the_epochs_run_eagerly_bit_for_bit(model):
    assert model in PACKED_MODELS
    cuda = FakeCuda()
    graph = build(GraphStep, model, "sgd_nesterov", kern=kernels.NumpyKernels(),
                  products=AllocatingProducts(cuda), cuda=cuda)
    eager = build(PackedStep, model, "sgd_nesterov", kern=kernels.NumpyKernels())
    for _ in range(3):
        graph.run(5)
        eager.run(5)
    assert cuda.capture_modes == [FakeCuda.runtime.streamCaptureModeThreadLocal]  # tried once
    assert cuda.ended == 1                     # capture was left before the error propagated
    assert graph.graph_error.startswith("CaptureAllocationError: 64 bytes")
    assert graph.name == "packed"
    assert graph.count == eager.count == 15
    for got, want in zip(graph.host_params(), eager.host_params()):
        np.testing.assert_array_equal(got, want)


def test_without_a_cuda_module_the_step_says_so_and_runs_eagerly():
    step = build(GraphStep, "rotation", "gd", kern=kernels.NumpyKernels(),
                 products=kernels.ArrayProducts(np))
    step.run(2)
    assert step.name == "packed" and step.graph_error == "no CUDA module beside numpy"
