"""Every copy of the optimizer update takes its numbers from ``optim``.

The update rule exists once as maths (``optim``) and again in each fused pass (NumPy, Numba,
CUDA) and in the compiled block. Each copy is stepped once from the same state against
``Optimizer.update``, bit for bit, with the paper's hyperparameters and with others: a copy
that kept a number of its own (0.9, 0.999, 1e-8, its own bias correction) fails here.
"""
from __future__ import annotations

import numpy as np
import pytest

from lae_core import Schedule, run_batch
from lae_core.optim import AdamState, MomentumState, adam, gd, sgd_nesterov
from lae_core.steps import ReferenceStep, cpu_block, kernels
from lae_core.steps.packed import CompiledStep, GraphStep, PackedStep

from .cuda_shim import run_host_tail
from .helpers import build

OPTIMIZERS = {
    "gd": gd(),
    "nesterov": sgd_nesterov(),
    "nesterov-momentum-0.5": sgd_nesterov(momentum=0.5),
    "adam": adam(),
    "adam-0.8-0.99-1e-6": adam(b1=0.8, b2=0.99, eps=1e-6),
}
STEP_COUNT = 3          # the step taken is t = 3: Adam's bias corrections are not trivial


def pass_inputs(dtype, rng):
    """A fused pass whose gradient is exactly ``prod``: a = b = 0, no E, no VAE scaling."""
    r, k, m = 3, 4, 17
    W = rng.standard_normal((r, 2 * k, m)).astype(dtype)
    g = rng.standard_normal((r, 2 * k, m)).astype(dtype)
    return dict(W=W, g=g, Q=rng.standard_normal((r, 2 * k, m)).astype(dtype),
                prod1=np.ascontiguousarray(g[:, :k]), prod2=np.ascontiguousarray(g[:, k:]),
                E=np.zeros((r, 0, m), dtype), a=np.zeros((r, 2 * k), dtype),
                b=np.zeros((r, 2 * k), dtype),
                lr=np.array([0.01, 0.003, 0.02], dtype=dtype))


def optimizer_state(optimizer, W, rng):
    """A mid-run state of ``optimizer`` for a parameter shaped like W (t = STEP_COUNT - 1)."""
    def buffer():
        return np.abs(rng.standard_normal(W.shape)).astype(W.dtype) * 1e-2
    if optimizer.buffers == ():
        return optimizer.init((W,))
    if isinstance(optimizer.init((W,)), MomentumState):
        return MomentumState((buffer(),))
    return AdamState(STEP_COUNT - 1, (buffer(),), (buffer() ** 2,))


def numpy_pass(rule, sc, x, state, floor):
    kernels.NumpyKernels().tail(rule, sc, x["W"], x["Q"], x["prod1"], x["prod2"], x["E"],
                                x["a"], x["b"], None, x["lr"], state, floor, None, None)


def numba_pass(rule, sc, x, state, floor):
    numba_kernels = kernels.for_module(np)
    if not isinstance(numba_kernels, kernels.NumbaKernels):
        pytest.skip("Numba is not installed")
    numba_kernels.tail(rule, sc, x["W"], x["Q"], x["prod1"], x["prod2"], x["E"], x["a"],
                       x["b"], None, x["lr"], state, floor, None, None)


PASSES = {"numpy": numpy_pass, "numba": numba_pass, "cuda-on-host": None}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("fused_pass", PASSES)
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_each_fused_pass_steps_exactly_as_the_optimizer_does(request, name, fused_pass, dtype):
    optimizer = OPTIMIZERS[name]
    rng = np.random.default_rng(3)
    x = pass_inputs(dtype, rng)
    state = optimizer_state(optimizer, x["W"], rng)
    (want,), want_state = optimizer.update((x["g"],), state, (x["W"],), x["lr"])

    buffers = tuple(np.ascontiguousarray(getattr(state, f)[0]).copy()
                    for f in optimizer.buffers)
    sc = optimizer.scalars(STEP_COUNT, dtype)
    floor = dtype(1e-30)         # below every value here: the pass's flush changes nothing
    run = PASSES[fused_pass]
    if run is None:
        host_kernels = request.getfixturevalue("host_kernels")
        run_host_tail(host_kernels, optimizer.code, sc, x["W"], x["Q"], x["prod1"],
                      x["prod2"], x["E"], x["a"], x["b"], None, x["lr"], buffers, floor,
                      None, None)
    else:
        run(optimizer.code, sc, x, buffers, floor)
    np.testing.assert_array_equal(x["W"], want)
    for field, got in zip(optimizer.buffers, buffers):
        np.testing.assert_array_equal(got, getattr(want_state, field)[0], err_msg=field)


def test_the_scalars_are_the_hyperparameters_and_the_bias_corrections_of_step_t():
    """Adam: (1 - b1, 1 - b2, b2, 1 - b1^t, sqrt(1 - b2^t), eps); Nesterov: (mu); a range of
    counts gives one row per step, each equal to the single-count answer."""
    got = adam(b1=0.8, b2=0.99, eps=1e-6).scalars(4, np.float64)
    np.testing.assert_array_equal(got, [1 - 0.8, 1 - 0.99, 0.99, 1 - 0.8 ** 4,
                                        np.sqrt(1 - 0.99 ** 4), 1e-6])
    np.testing.assert_array_equal(sgd_nesterov(momentum=0.5).scalars(1, np.float32),
                                  np.float32([0.5, 0, 0, 0, 0, 0]))
    table = adam().scalars(range(5, 9), np.float32)
    for row, t in zip(table, range(5, 9)):
        np.testing.assert_array_equal(row, adam().scalars(t, np.float32))
    assert dict(adam(b1=0.8).hyperparameters) == {"b1": 0.8, "b2": 0.999, "eps": 1e-8}


STEP_KINDS = {
    "packed-numpy": lambda *a: build(PackedStep, *a, kern=kernels.NumpyKernels()),
    "packed-numba": lambda *a: build(PackedStep, *a),
    "compiled": lambda *a: build(CompiledStep, *a),
    "graph-numpy": lambda *a: build(GraphStep, *a, kern=kernels.NumpyKernels(),
                                    products=kernels.ArrayProducts(np)),
}
NON_DEFAULT = {"sgd_nesterov": sgd_nesterov(momentum=0.5),
               "adam": adam(b1=0.8, b2=0.99, eps=1e-6)}


@pytest.mark.parametrize("kind", STEP_KINDS)
@pytest.mark.parametrize("name", NON_DEFAULT)
def test_non_default_hyperparameters_reach_every_step(data, name, kind):
    """20 epochs of each fast step with non-default hyperparameters follow the reference step
    (1e-9 relative), and stay far from the run with the paper's settings (a step that fell
    back to 0.9 / 0.999 / 1e-8 would land there)."""
    if kind in ("compiled", "packed-numba") and cpu_block.compiled() is None:
        pytest.skip("Numba is not installed")
    form = "spectral"           # every fast step runs here (the graph step only runs here)
    model = "non_uniform_sum"
    if kind == "graph-numpy" and NON_DEFAULT[name].per_step:
        with pytest.raises(ValueError, match=f"GraphStep cannot run {name}: its scalars"):
            STEP_KINDS[kind](data, model, NON_DEFAULT[name], form)   # never captured
        return
    reference = build(ReferenceStep, data, model, NON_DEFAULT[name], form)
    paper = build(ReferenceStep, data, model, name, form)
    step = STEP_KINDS[kind](data, model, NON_DEFAULT[name], form)
    for s in (reference, paper, step):
        s.run(20)
    for got, want, default in zip(step.host_params(), reference.host_params(),
                                  paper.host_params()):
        scale = np.abs(want).max()
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12 * scale)
        assert np.abs(want - default).max() > 1e-6 * scale


@pytest.mark.parametrize("name", NON_DEFAULT)
def test_run_batch_takes_an_optimizer_with_its_own_hyperparameters(data, name):
    """The packed step that ``run_batch`` chooses and the reference step end at the same
    weights; the paper's settings end elsewhere."""
    def final(optimizer, step):
        batch = run_batch(data, "non_uniform_sum", optimizer, 3, [1e-3], [0], step=step,
                          backend="numpy",
                          schedule=Schedule(thresholds=(), max_epochs=30))
        assert batch.optimizer == name
        return batch.step, batch.runs[0].params[1]
    ran, fast = final(NON_DEFAULT[name], "auto")
    assert ran in ("packed", "compiled")        # the packed step, or its Numba-compiled form
    _, oracle = final(NON_DEFAULT[name], "reference")
    _, paper = final(name, "auto")
    np.testing.assert_allclose(fast, oracle, rtol=1e-9, atol=1e-12 * np.abs(oracle).max())
    assert np.abs(fast - paper).max() > 1e-6 * np.abs(oracle).max()
