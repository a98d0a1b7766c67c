"""Shared fixtures: one ``xp`` fixture over every array namespace that can run here."""
from __future__ import annotations

import numpy as np
import pytest

from lae_core.backend import cupy_available


def _namespaces():
    import array_api_compat.numpy as xp_numpy
    import array_api_strict
    yield pytest.param(xp_numpy, id="numpy")
    # array-api-strict rejects any call outside the standard: proof that no NumPy call hides
    # in the device path, without a GPU.
    yield pytest.param(array_api_strict, id="array_api_strict")
    marks = [pytest.mark.gpu,
             pytest.mark.skipif(not cupy_available(), reason="no usable CuPy device")]
    yield pytest.param("cupy", id="cupy", marks=marks)


@pytest.fixture(params=list(_namespaces()))
def xp(request):
    if request.param == "cupy":
        import array_api_compat.cupy as xp_cupy
        return xp_cupy
    return request.param


@pytest.fixture(scope="session")
def small_data():
    """A small synthetic problem with a distinct spectrum: m = 12, n = 60."""
    from lae_core import synthetic
    return synthetic(m=12, n=60, seed=3, high=6.0, low=0.5)


def rel_err(a, b) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))
