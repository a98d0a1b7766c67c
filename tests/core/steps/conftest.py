"""Fixtures of the step tests."""
from __future__ import annotations

import shutil

import pytest

from lae_core import synthetic

from .cuda_shim import compile_host_kernels


@pytest.fixture(scope="session")
def host_kernels(tmp_path_factory):
    """The package's CUDA kernels compiled for the host (skipped without a C++ compiler)."""
    if shutil.which("g++") is None:
        pytest.skip("no host C++ compiler")
    return compile_host_kernels(tmp_path_factory.mktemp("cuda_shim"))


@pytest.fixture(scope="session")
def data():
    """A small synthetic problem: m = 30, n = 300, eigenvalues from 8 down to 0.5."""
    return synthetic(m=30, n=300, seed=5, high=8.0, low=0.5)
