"""Datasets (synthetic preset, spectra, MNIST IDX files, user arrays), hyperparameter presets
and the metrics' invariances."""
from __future__ import annotations

import gzip
import struct

import array_api_compat.numpy as xnp
import numpy as np
import pytest

from lae_core import DataError, from_samples, mnist, synthetic
from lae_core.data import spectrum
from lae_core.hyper import HyperparameterError, preset_hyperparameters, validate_hyperparameters
from lae_core.metrics import d_align, d_sub, transpose_distance
from lae_core.operators import make_operator


def test_synthetic_preset_is_the_paper_spectrum():
    data = synthetic(m=200, n=4000, seed=1234)
    assert (data.m, data.n, data.X.shape) == (200, 4000, (4000, 200))
    np.testing.assert_allclose(data.C, data.X.T @ data.X / data.n)
    assert np.all(np.diff(data.eigvals) <= 0)
    # sample eigenvalues track the population's linspace(0.1 m, 1, m) = 20 -> 1
    assert abs(data.eigvals[0] / 20 - 1) < 0.25 and data.eigvals[-1] < 1.5
    np.testing.assert_allclose(data.C @ data.eigvecs[:, :3], data.eigvecs[:, :3] * data.eigvals[:3],
                               atol=1e-9)
    again = synthetic(m=200, n=4000, seed=1234)
    assert again.data_id == data.data_id and synthetic(m=200, n=4000, seed=1).data_id != data.data_id


@pytest.mark.parametrize("kind", ["linear", "geometric", "power_law"])
def test_spectra_are_positive_and_descending(kind):
    eig = spectrum(kind, 50, high=10.0, low=0.1, alpha=1.5)
    assert eig.shape == (50,) and np.all(eig > 0) and np.all(np.diff(eig) <= 0)
    assert eig[0] == pytest.approx(10.0)


def test_explicit_spectrum_and_its_errors():
    np.testing.assert_array_equal(spectrum("explicit", 3, values=[1.0, 3.0, 2.0]), [3, 2, 1])
    with pytest.raises(DataError, match="expected 4 eigenvalues"):
        spectrum("explicit", 4, values=[1.0])
    with pytest.raises(DataError, match="not one of"):
        spectrum("cubic", 4)


def write_idx(path, images: np.ndarray, compress: bool) -> None:
    header = struct.pack(">BBBB", 0, 0, 8, images.ndim) + b"".join(
        struct.pack(">I", s) for s in images.shape)
    opener = gzip.open if compress else open
    with opener(path, "wb") as f:
        f.write(header + images.astype(np.uint8).tobytes())


@pytest.mark.parametrize("compress", [False, True])
def test_mnist_reads_the_idx_file_and_centres(tmp_path, compress):
    images = np.random.default_rng(0).integers(0, 256, size=(30, 4, 5))
    name = "train-images-idx3-ubyte" + (".gz" if compress else "")
    write_idx(tmp_path / name, images, compress)
    data = mnist(tmp_path)
    X = images.reshape(30, 20) / 255.0
    np.testing.assert_allclose(data.X, X - X.mean(axis=0))
    assert data.m == 20 and data.n == 30 and abs(data.X.mean(axis=0)).max() < 1e-12


def test_mnist_missing_file_is_named(tmp_path):
    with pytest.raises(DataError, match="train-images-idx3-ubyte"):
        mnist(tmp_path)


def test_bad_user_arrays_are_refused():
    with pytest.raises(DataError, match=r"\(n, m\)"):
        from_samples(np.ones(5))
    with pytest.raises(DataError, match="NaN"):
        from_samples(np.array([[1.0, np.nan]]))


def test_paper_presets_are_the_official_codes():
    hp = preset_hyperparameters("non_uniform_sum", 2, 1000)
    np.testing.assert_allclose(np.sqrt(hp["lam"]), [0.1, 10.0], rtol=1e-7)  # lam_k = 100 >= c_k
    uniform = preset_hyperparameters("uniform_sum", 6, 40, data_kind="mnist")["lam"]
    assert uniform == pytest.approx(0.25)
    p = preset_hyperparameters("nd_exp", 500, 1000)["keep_probs"]
    assert p[0] == 1 and p[-1] == pytest.approx(0.9 ** 499, rel=1e-6)
    assert preset_hyperparameters("rotation", 3, 10) == {}


def test_well_posed_preset_satisfies_the_theorems_assumption():
    eig = np.linspace(100, 1, 1000)
    lam = preset_hyperparameters("non_uniform_sum", 500, 1000, preset="well_posed",
                                 eigvals=eig)["lam"]
    assert np.all(np.diff(lam) > 0) and lam[-1] < eig[499]


def test_hyperparameters_are_validated():
    with pytest.raises(HyperparameterError, match="takes 3 weights"):
        validate_hyperparameters("non_uniform_sum", {"lam": [1.0, 2.0]}, 3)
    with pytest.raises(HyperparameterError, match="not used by rotation"):
        validate_hyperparameters("rotation", {"lam": 1.0}, 3)
    with pytest.raises(HyperparameterError, match="keep_probs"):
        validate_hyperparameters("nd_exp", {"keep_probs": [0.9, 0.5]}, 2)


@pytest.fixture(scope="module")
def data():
    return synthetic(m=10, n=200, seed=2)


@pytest.mark.parametrize("form", ["spectral", "covariance"])
def test_metrics_vanish_at_signed_permutations_of_the_eigenvectors(data, form):
    k = 4
    op = make_operator(form, xnp, data, k, np.float64)
    basis = np.eye(data.m) if form == "spectral" else data.eigvecs
    P = np.eye(k)[[2, 0, 3, 1]] * np.array([1, -1, 1, -1]) * np.array([0.5, 2, 3, 0.1])
    W2 = (basis[:, :k] @ P)[None]
    assert abs(d_align(op, W2)[0]) < 1e-6  # the official 1e-8 in the norm leaves ~1e-6
    assert abs(d_sub(op, W2)[0]) < 1e-12
    R = np.random.default_rng(0).standard_normal((k, k))  # any invertible mix: same subspace
    W2_mixed = (basis[:, :k] @ R)[None]
    assert abs(d_sub(op, W2_mixed)[0]) < 1e-12 and d_align(op, W2_mixed)[0] > 0.05


def test_metrics_of_an_unrelated_subspace(data):
    op = make_operator("spectral", xnp, data, 2, np.float64)
    W2 = np.eye(data.m)[:, 5:7][None]
    assert d_align(op, W2)[0] == pytest.approx(1.0) and d_sub(op, W2)[0] == pytest.approx(1.0)


def test_transpose_distance():
    W1 = np.arange(6.0).reshape(1, 2, 3)
    assert transpose_distance(xnp, W1, np.swapaxes(W1, 1, 2))[0] == 0
    assert transpose_distance(xnp, W1, np.zeros((1, 3, 2)))[0] == pytest.approx(55 / 2)
