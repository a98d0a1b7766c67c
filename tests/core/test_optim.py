"""Optimizers: torch.optim's update rules by hand, equivalences, and one battery for all."""
from __future__ import annotations

import math

import numpy as np
import pytest

from lae_core.backend import to_device
from lae_core.optim import OPTIMIZERS, adam, gd, get_optimizer, select_runs, sgd_nesterov

from ..conftest import xp_assert_close

LR = np.array([0.1, 0.05])


def two_steps(opt, g1, g2, p0):
    state = opt.init((p0,))
    (p1,), state = opt.update((g1,), state, (p0,), LR)
    (p2,), state = opt.update((g2,), state, (p1,), LR)
    return p1, p2


@pytest.fixture
def arrays():
    rng = np.random.default_rng(0)
    return [rng.standard_normal((2, 3, 4)) for _ in range(3)]


def test_gd_by_hand(arrays):
    p0, g1, g2 = arrays
    p1, p2 = two_steps(gd(), g1, g2, p0)
    lr = LR[:, None, None]
    np.testing.assert_array_equal(p1, p0 - lr * g1)
    np.testing.assert_array_equal(p2, p1 - lr * g2)


def test_nesterov_by_hand(arrays):
    """torch: buf_1 = g_1, buf_t = 0.9 buf + g_t; p -= lr (g_t + 0.9 buf_t)."""
    p0, g1, g2 = arrays
    p1, p2 = two_steps(sgd_nesterov(), g1, g2, p0)
    lr = LR[:, None, None]
    buf1 = g1
    np.testing.assert_array_equal(p1, p0 - lr * (g1 + 0.9 * buf1))
    buf2 = 0.9 * buf1 + g2
    np.testing.assert_array_equal(p2, p1 - lr * (g2 + 0.9 * buf2))


def test_adam_by_hand(arrays):
    p0, g1, g2 = arrays
    p1, p2 = two_steps(adam(), g1, g2, p0)
    lr = LR[:, None, None]
    m = v = 0.0
    p = p0
    for t, g in ((1, g1), (2, g2)):  # torch's single-tensor Adam, operation for operation
        m = m + (1 - 0.9) * (g - m)                          # exp_avg.lerp_(g, 1 - beta1)
        v = 0.999 * v + (1 - 0.999) * g * g                  # mul_(beta2).addcmul_(g, g)
        denom = np.sqrt(v) / math.sqrt(1 - 0.999 ** t) + 1e-8
        p = p - (lr / (1 - 0.9 ** t)) * (m / denom)          # addcdiv_(m, denom, -step_size)
        np.testing.assert_array_equal(p1 if t == 1 else p2, p)


def test_nesterov_without_momentum_is_gd(arrays):
    p0, g1, g2 = arrays
    for a, b in zip(two_steps(sgd_nesterov(momentum=0.0), g1, g2, p0), two_steps(gd(), g1, g2, p0)):
        np.testing.assert_array_equal(a, b)


def test_first_adam_step_has_size_lr(arrays):
    """With bias correction the first Adam step moves every coordinate by ~lr."""
    p0, g1, _ = arrays
    p1, _ = two_steps(adam(), g1, g1, p0)
    np.testing.assert_allclose(np.abs(p1 - p0), np.broadcast_to(LR[:, None, None], p0.shape),
                               rtol=1e-6)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_every_optimizer_finds_the_minimum_of_a_quadratic(xp, name):
    """f(p) = 1/2 sum a (p - p*)^2, a in [0.5, 2]: every optimizer converges to p* (lr 0.01)."""
    rng = np.random.default_rng(1)
    a = to_device(xp, rng.uniform(0.5, 2.0, (3, 5)))
    target = to_device(xp, rng.standard_normal((3, 5)))
    params = (to_device(xp, np.zeros((3, 5))),)
    lr = to_device(xp, np.full(3, 0.01))
    opt = get_optimizer(name)
    state = opt.init(params)
    for _ in range(3000):
        params, state = opt.update((a * (params[0] - target),), state, params, lr)
    xp_assert_close(params[0], target, xp=xp, rtol=0, atol=1e-6)


def test_select_runs_keeps_the_state_of_the_chosen_runs(arrays):
    p0, g1, _ = arrays
    opt = adam()
    _, state = opt.update((g1,), opt.init((p0,)), (p0,), LR)
    sub = select_runs(np, state, np.array([1]))
    assert sub.count == 1
    np.testing.assert_array_equal(sub.mu[0], state.mu[0][1:])
    np.testing.assert_array_equal(sub.nu[0], state.nu[0][1:])
