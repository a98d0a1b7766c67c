"""Training steps: every fast step against the reference step, model by model, optimizer by
optimizer; the kernel sets against each other; which step runs."""
from __future__ import annotations

import numpy as np
import pytest

from lae_core import backend as be
from lae_core.backend import cupy_available
from lae_core.objectives import get_objective
from lae_core.optim import get_optimizer
from lae_core.steps import ReferenceStep, cpu_block, kernels
from lae_core.steps.packed import PACKED_MODELS, CompiledStep, GraphStep, PackedStep
from lae_core.train import ConfigurationError, make_step, run_batch

from .helpers import SEEDS, build

OPTIMIZERS = ("gd", "sgd_nesterov", "adam")
FORMS = {"gd": ("spectral", "covariance"), "sgd_nesterov": ("spectral", "covariance"),
         "adam": ("covariance",)}
BLOCKS, EVERY = 300, 10          # 3,000 epochs


def fast_steps(data, model, optimizer, form):
    """The array-call epoch with the NumPy kernels (the CuPy step's structure, checked here on
    the CPU; the Numba and CUDA kernels equal them bit for bit: below, and
    test_cuda_source.py), the compiled blocks, and on a GPU the CuPy step itself."""
    steps = {"packed-numpy": build(PackedStep, data, model, optimizer, form,
                                   kern=kernels.NumpyKernels())}
    if get_objective(model).kk_form in cpu_block.KK_FORM_CODES:
        steps["compiled"] = build(CompiledStep, data, model, optimizer, form)
        if form == "spectral":   # the GPU's small-k epoch, eagerly (no CUDA graph on a CPU)
            steps["graph-numpy"] = build(GraphStep, data, model, optimizer, form,
                                         kern=kernels.NumpyKernels(),
                                         products=kernels.ArrayProducts(np))
    if cupy_available():
        steps["packed-cupy"] = build(PackedStep, data, model, optimizer, form, backend="cupy")
    return steps


@pytest.mark.slow
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("model", PACKED_MODELS)
def test_fast_steps_follow_the_reference_step_for_3000_epochs(data, model, optimizer):
    """d_align of every run within 1e-9 relative at every evaluation (or 1e-12 absolute once a
    run has converged: d_align is a distance built from O(1) entries, so its rounding floor is
    ~1e-15 whatever its size, and another BLAS moves a 7.5e-7 distance by 8e-16), through a
    retirement; then every metric and parameter."""
    for form in FORMS[optimizer]:
        reference = build(ReferenceStep, data, model, optimizer, form)
        steps = fast_steps(data, model, optimizer, form)
        for block in range(BLOCKS):
            expected = reference.evaluate()
            for name, step in steps.items():
                align, finite = step.evaluate()
                assert np.array_equal(finite, expected[1]), (name, form, block)
                np.testing.assert_allclose(align, expected[0], atol=1e-12, rtol=1e-9,
                                           err_msg=f"{name} {form} block {block}")
            if block == BLOCKS // 2:      # the middle run finishes: the batch shrinks
                for step in (reference, *steps.values()):
                    step.retire(np.array([0, 2]))
            for step in (reference, *steps.values()):
                step.run(EVERY)
        final = reference.metrics()
        for name, step in steps.items():
            for metric, values in step.metrics().items():
                np.testing.assert_allclose(values, final[metric], rtol=1e-8, atol=1e-12,
                                           err_msg=f"{name} {form} {metric}")
            for got, want in zip(step.host_params(), reference.host_params()):
                np.testing.assert_allclose(got, want, rtol=1e-8, atol=1e-12 * np.abs(want).max())


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("rotation, scaled, spectral", [(False, False, True),
                                                          (True, False, False),
                                                          (False, True, True)])
def test_the_numba_pass_equals_the_numpy_pass_bit_for_bit(optimizer, rotation, scaled,
                                                          spectral):
    """Same arithmetic in the same order: identical bits, in float32 and float64."""
    numba_kernels = kernels.for_module(np)
    if not isinstance(numba_kernels, kernels.NumbaKernels):
        pytest.skip("Numba is not installed")
    rng = np.random.default_rng(7)
    r, k, m = 3, 5, 37
    for dtype in (np.float32, np.float64):
        def arr(*shape, scale=1.0):
            return (scale * rng.standard_normal(shape)).astype(dtype)
        W, Q = arr(r, 2 * k, m), arr(r, 2 * k, m)
        W[0, 0, :3] = be.flush_floor(np, dtype) / 4   # below the floor; run 0 does not move:
        inputs = dict(prod1=arr(r, k, m), prod2=arr(r, k, m),
                      E=arr(r, k if rotation else 0, m), a=arr(r, 2 * k), b=arr(r, 2 * k),
                      sd=(arr(r, 2 * k), arr(r, 2 * k)) if scaled else None,
                      lr=np.abs(arr(r, scale=0.01)) * (np.arange(r) > 0), c=np.abs(arr(m)) if spectral else None)
        n_state = {"gd": 0, "sgd_nesterov": 1, "adam": 2}[optimizer]
        state = tuple(np.abs(arr(r, 2 * k, m)) for _ in range(n_state))
        outputs = []
        for kern in (kernels.NumpyKernels(), numba_kernels):
            W_, state_, Qn = W.copy(), tuple(s.copy() for s in state), np.zeros_like(W)
            opt = get_optimizer(optimizer)
            kern.tail(opt.code, opt.scalars(7, dtype), W_, Q, inputs["prod1"],
                      inputs["prod2"], inputs["E"], inputs["a"], inputs["b"], inputs["sd"],
                      inputs["lr"], state_, be.flush_floor(np, dtype), inputs["c"],
                      Qn if spectral else None)
            outputs.append((W_, Qn) + state_)
        for got, want in zip(*outputs):
            np.testing.assert_array_equal(got, want)
        assert np.all(outputs[0][0][0, 0, :3] == 0)


def test_auto_takes_the_packed_step_where_it_can_and_says_which_ran(data):
    packed = run_batch(data, "rotation", "sgd_nesterov", 3, [1e-3], [0], backend="numpy")
    assert packed.step == ("compiled" if cpu_block.compiled() else "packed")
    assert packed.graph_error is None
    large = run_batch(data, "rotation", "sgd_nesterov", 3, [1e-3], [0], backend="numpy",
                      formulation="covariance")
    assert large.step == "packed"
    sampled = run_batch(data, "nd", "sgd_nesterov", 3, [1e-3], [0], backend="numpy")
    assert sampled.step == "reference"
    array_api_strict = pytest.importorskip("array_api_strict")
    strict = run_batch(data, "rotation", "sgd_nesterov", 3, [1e-3], [0],
                       backend=array_api_strict)
    assert strict.step == "reference"


def test_asking_for_the_packed_step_where_it_cannot_run_is_a_configuration_error(data):
    with pytest.raises(ConfigurationError, match="packed.*nd"):
        run_batch(data, "nd", "adam", 3, [1e-3], [0], backend="numpy", step="packed")
    with pytest.raises(ConfigurationError, match="step: 'fastest' is not one of"):
        make_step("fastest", None, None, None, {}, (), None, 0.0)


def test_a_compiled_batch_gives_exactly_its_single_runs(data):
    """Runs are the outer loop of a compiled block: batching changes no bit."""
    batch = build(CompiledStep, data, "nd_exp", "adam", "covariance")
    batch.run(50)
    for j, seed in enumerate(SEEDS):
        single = build(CompiledStep, data, "nd_exp", "adam", "covariance")
        single.retire(np.array([j]))
        single.run(50)
        for a, b in zip(single.host_params(), batch.host_params()):
            np.testing.assert_array_equal(a[0], b[j])
