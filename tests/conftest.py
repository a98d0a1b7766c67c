"""Shared fixtures: one ``xp`` fixture over every array namespace that can run here, a small
problem, and the smoke preset run once per session."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from lae_core.backend import cupy_available

# Optional, as CuPy is: the lent GPU machine's image does not have it (its cases skip there).
STRICT = importlib.util.find_spec("array_api_strict") is not None


def _namespaces():
    import array_api_compat.numpy as xp_numpy
    yield pytest.param(xp_numpy, id="numpy")
    # array-api-strict rejects any call outside the standard: proof that no NumPy call hides
    # in the device path, without a GPU.
    yield pytest.param("array_api_strict", id="array_api_strict", marks=pytest.mark.skipif(
        not STRICT, reason="array-api-strict is not installed"))
    marks = [pytest.mark.gpu,
             pytest.mark.skipif(not cupy_available(), reason="no usable CuPy device")]
    yield pytest.param("cupy", id="cupy", marks=marks)


@pytest.fixture(params=list(_namespaces()))
def xp(request):
    if request.param == "cupy":
        import array_api_compat.cupy as xp_cupy
        return xp_cupy
    if request.param == "array_api_strict":
        import array_api_strict
        return array_api_strict
    return request.param


@pytest.fixture(scope="session")
def small_data():
    """A small synthetic problem with a distinct spectrum: m = 12, n = 60."""
    from lae_core import synthetic
    return synthetic(m=12, n=60, seed=3, high=6.0, low=0.5)


def rel_err(a, b) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def xp_assert_close(actual, desired, *, xp, rtol: float | None = None, atol: float = 0.0,
                    err_msg: str = "") -> None:
    """assert_allclose that first checks where the result lives, as SciPy's helper does.

    ``actual`` must be an array of namespace ``xp`` on ``xp``'s default device: code that fell
    back to NumPy (or copied to the host) fails here instead of passing on values alone. Then
    its values must match ``desired`` (any array, compared on the host) within rtol (default by
    dtype: 1e-5 for float32, 1e-10 for float64) and atol.
    """
    import array_api_compat

    from lae_core.backend import to_host

    namespace = array_api_compat.array_namespace(actual)
    assert namespace is xp, f"result in {namespace.__name__}, expected {xp.__name__} {err_msg}"
    expected_device = array_api_compat.device(xp.asarray(0.0))
    assert array_api_compat.device(actual) == expected_device, (
        f"result on {array_api_compat.device(actual)}, expected {expected_device} {err_msg}")
    host = to_host(actual)
    if rtol is None:
        rtol = 1e-5 if host.dtype == np.float32 else 1e-10
    np.testing.assert_allclose(host, to_host(desired), rtol=rtol, atol=atol, err_msg=err_msg)


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory) -> tuple[Path, int, str]:
    """The smoke preset, run once for the whole session: (run dir, exit code, stdout)."""
    from .helpers import cli

    run_dir = tmp_path_factory.mktemp("smoke") / "run"
    code, out, _ = cli("run", "smoke", "--out", run_dir, "--quiet")
    return run_dir, code, out
