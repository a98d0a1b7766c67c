"""Datasets: the second-moment matrix C, its eigen-decomposition, and the samples when needed.

Everything here runs on the host in float64 with seeded NumPy Generators, so every backend and
dtype starts from the same numbers (docs/theory.md, "Initial weights and randomness").
Shapes: n samples, m input dimension.
"""
from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SPECTRA = ("linear", "geometric", "power_law", "explicit")


class DataError(ValueError):
    """Input data that cannot be used (missing file, wrong shape, bad spectrum)."""


@dataclass(frozen=True, eq=False)
class Dataset:
    """Data as the objectives see it.

    C: (m, m) uncentred second moment X^T X / n of the (possibly centred) samples.
    eigvals: (m,) eigenvalues of C, descending. eigvecs: (m, m), column i belongs to eigvals[i].
    X: (n, m) samples, or None when no model needs them.
    """

    name: str
    n: int
    C: np.ndarray
    eigvals: np.ndarray
    eigvecs: np.ndarray
    X: np.ndarray | None = field(default=None, repr=False)

    @property
    def m(self) -> int:
        return self.C.shape[0]

    @property
    def fingerprint(self) -> str:
        """Hash of C's exact bytes (10 hex digits): equal only for bitwise-equal data. Another
        BLAS or thread count rounds X^T X differently, so it also tells machines apart."""
        return hashlib.sha1(np.ascontiguousarray(self.C).tobytes()).hexdigest()[:10]

    @property
    def data_id(self) -> str:
        """Name and fingerprint: two datasets with the same id hold the same C."""
        return f"{self.name}-{self.fingerprint}"


def eigh_descending(C: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (descending) and matching eigenvector columns of a symmetric matrix."""
    vals, vecs = np.linalg.eigh(C)
    return vals[::-1].copy(), np.ascontiguousarray(vecs[:, ::-1])


def from_samples(X: np.ndarray, *, name: str = "samples", center: bool = False,
                 keep_samples: bool = True) -> Dataset:
    """Dataset from an (n, m) array of samples (rows are samples, as scikit-learn)."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or min(X.shape) < 1:
        raise DataError(f"data: expected an (n, m) array of samples, got shape {X.shape}")
    if not np.all(np.isfinite(X)):
        raise DataError("data: the samples contain NaN or infinite values")
    if center:
        X = X - X.mean(axis=0, keepdims=True)
    n = X.shape[0]
    C = X.T @ X / n
    C = (C + C.T) / 2  # exact symmetry, so eigh and the dense form see the same matrix
    vals, vecs = eigh_descending(C)
    return Dataset(name, n, C, vals, vecs, X if keep_samples else None)


def spectrum(kind: str, m: int, *, high: float | None = None, low: float = 1.0,
             alpha: float = 1.0, values: list[float] | None = None) -> np.ndarray:
    """Population eigenvalues, descending: (m,).

    linear: linspace(high, low) (paper: high = 0.1 m, low = 1); geometric: logspace between
    them; power_law: high * i^-alpha for i = 1..m; explicit: ``values`` as given.
    """
    high = 0.1 * m if high is None else high
    if kind == "linear":
        eig = np.linspace(high, low, m)
    elif kind == "geometric":
        eig = np.geomspace(high, low, m)
    elif kind == "power_law":
        eig = high * np.arange(1, m + 1, dtype=np.float64) ** (-alpha)
    elif kind == "explicit":
        eig = np.asarray(values if values is not None else [], dtype=np.float64)
        if eig.shape != (m,):
            raise DataError(f"spectrum.values: expected {m} eigenvalues, got {eig.size}")
    else:
        raise DataError(f"spectrum: {kind!r} is not one of {', '.join(SPECTRA)}")
    if np.any(eig <= 0) or not np.all(np.isfinite(eig)):
        raise DataError("spectrum: eigenvalues must be finite and positive")
    return np.sort(eig)[::-1]


def random_orthogonal(m: int, rng: np.random.Generator) -> np.ndarray:
    """Haar-random orthogonal (m, m) matrix (QR of a Gaussian with the sign of R's diagonal)."""
    q, r = np.linalg.qr(rng.standard_normal((m, m)))
    return q * np.sign(np.diag(r))


def synthetic(m: int = 1000, n: int = 5000, *, seed: int = 1234, kind: str = "linear",
              keep_samples: bool = True, **spectrum_args) -> Dataset:
    """The paper's synthetic data (Figure 4 preset: m = 1000, n = 5000, eigenvalues 100 -> 1).

    x = Q diag(sqrt(eig)) z with z ~ N(0, I) and Q random orthogonal; not centred. C, its
    eigenvalues and eigenvectors are those of the sample, as in the official code.
    """
    rng = np.random.default_rng(seed)
    eig = spectrum(kind, m, **spectrum_args)
    Q = random_orthogonal(m, rng)
    X = (rng.standard_normal((n, m)) * np.sqrt(eig)) @ Q.T
    return from_samples(X, name=f"synthetic-{kind}-m{m}-n{n}-seed{seed}", keep_samples=keep_samples)


MNIST_FILES = ("train-images-idx3-ubyte", "train-images.idx3-ubyte")


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (plain or .gz) into an array of its stored shape."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"data.path: {path} is not an unsigned-byte IDX file")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    body = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise DataError(f"data.path: {path} holds {body.size} values, its header says {shape}")
    return body.reshape(shape)


def find_mnist_images(directory: str | Path) -> Path:
    """Locate the MNIST training-images IDX file (plain or .gz) in ``directory``."""
    directory = Path(directory)
    candidates = [directory / (f + ext) for f in MNIST_FILES for ext in ("", ".gz")]
    for path in candidates:
        if path.is_file():
            return path
    raise DataError(f"data.path: no MNIST training images in {directory}: expected "
                    f"{MNIST_FILES[0]} or {MNIST_FILES[0]}.gz (the standard IDX file)")


def mnist(directory: str | Path, *, keep_samples: bool = True) -> Dataset:
    """MNIST training images from the standard IDX file: (60000, 784), scaled to [0, 1], centred."""
    images = read_idx(find_mnist_images(directory))
    X = images.reshape(images.shape[0], -1).astype(np.float64) / 255.0
    return from_samples(X, name="mnist", center=True, keep_samples=keep_samples)
