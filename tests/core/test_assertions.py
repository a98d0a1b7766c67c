"""The tests' own assertion helper can fail: on a result in the wrong namespace, and on values."""
from __future__ import annotations

import array_api_compat.numpy as xnp
import numpy as np
import pytest

from ..conftest import xp_assert_close


def test_a_result_that_fell_back_to_numpy_fails():
    array_api_strict = pytest.importorskip("array_api_strict")
    with pytest.raises(AssertionError, match="result in array_api_compat.numpy, expected "
                       "array_api_strict"):
        xp_assert_close(np.ones(3), np.ones(3), xp=array_api_strict)


def test_values_are_compared_with_a_dtype_aware_tolerance():
    xp_assert_close(xnp.asarray([1.0, 2.0]), np.array([1.0, 2.0 + 1e-12]), xp=xnp)
    with pytest.raises(AssertionError):
        xp_assert_close(np.array([1.0, 2.0]), np.array([1.0, 2.0 + 1e-8]), xp=xnp)
    xp_assert_close(np.array([1.0, 2.0], np.float32), np.array([1.0, 2.0 + 1e-6]), xp=xnp)
