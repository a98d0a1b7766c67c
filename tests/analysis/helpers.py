"""The analysis tests' fixtures: the published Figure 4 numbers (SPEC.md) as a realistic result
set, histories and decoders; records and run directories come from ``tests.records``."""
from __future__ import annotations

from typing import Any

import numpy as np

from lae_core import get_objective

from ..records import CPU, DATA_ID, GPU, cell_records, make_record, write_run

__all__ = ["CPU", "DATA_ID", "GPU", "cell_records", "make_record", "write_run"]

FIG4_KS = (2, 5, 10, 20, 50, 100, 200, 300, 400, 500)
# SPEC.md, "Figure 4 as published": epochs to d_align 0.3 per k; None = fails (the curve stops).
FIG4_PUBLISHED: dict[tuple[str, str], tuple[int | None, ...]] = {
    ("rotation", "sgd_nesterov"): (850, 3100, 3400, 3700, 4000, 7000, 12000, 16000, 18000, 16500),
    ("non_uniform_sum", "sgd_nesterov"): (120, 800, 3100, 11000, None),
    ("nd_exp", "sgd_nesterov"): (100, 560, 3400, 3100, None),
    ("nd", "sgd_nesterov"): (90, 1250, 6400, None),
    ("non_uniform_sum", "adam"): (280, 900, 2400, 3700, 6000, None),
    ("nd_exp", "adam"): (310, 900, 1300, 1700, 1900, 1150, 1900, None),
    ("nd", "adam"): (210, 2600, 4500, None),
    ("rotation", "adam"): (2300, None),
    ("vae", "adam"): (None,),
}


def epoch_time(model: str, optimizer: str, k: int, backend: str) -> float:
    """Plausible seconds per batched epoch: overhead plus O(k^2 m) (spectral form), O(k m^2)
    (covariance form, Adam) or O(n m k) (samples, nd); a GPU flattens all of them."""
    if backend == "cupy":
        return 6e-5 + 2e-9 * k * 1000
    if get_objective(model).needs_samples:
        return 1e-3 + 4e-5 * k
    if optimizer == "adam":
        return 3e-4 + 6e-8 * k * 1000
    return 4e-5 + 2.4e-8 * k * k


def figure4_records(seeds: int = 5, spread: float = 0.25, backend: str = "numpy",
                    device: str = CPU, rng_seed: int = 0, **fields: Any) -> list[dict]:
    """Records resembling the published Figure 4: each seed scatters log-normally (sigma
    ``spread``) around the published value, rounded to the evaluation grid of 10 epochs.
    ``fields`` go to every record (e.g. a data_id that says it is fixture data)."""
    rng = np.random.default_rng(rng_seed)
    records = []
    for (model, optimizer), published in FIG4_PUBLISHED.items():
        lr = 1e-4 if model == "rotation" else 1e-3
        for k, value in zip(FIG4_KS, published + (None,) * (len(FIG4_KS) - len(published))):
            median_time = epoch_time(model, optimizer, k, backend)
            for seed in range(seeds):
                epochs = (None if value is None
                          else int(10 * max(1, round(value * rng.lognormal(0, spread) / 10))))
                times = median_time * rng.lognormal(0, 0.03, size=8)
                records.append(make_record(model=model, optimizer=optimizer, k=k, lr=lr,
                                           seed=seed, epochs=epochs, epoch_times=times,
                                           backend=backend, device=device, batch_size=seeds,
                                           **fields))
    return records


def metric_history(epochs: int, time_constant: float, eval_every: int = 10
                   ) -> dict[str, np.ndarray]:
    """A history file's metric arrays: d_align and d_sub decaying with ``time_constant``."""
    epoch = np.arange(0, epochs + 1, eval_every)
    return {"epoch": epoch, "d_align": 0.95 * np.exp(-epoch / time_constant) + 1e-3,
            "d_sub": 0.9 * np.exp(-2 * epoch / time_constant) + 1e-4}


def cosine_basis(side: int, k: int) -> np.ndarray:
    """k orthonormal image-like directions (2-D cosine patterns), (side^2, k)."""
    grid = (np.arange(side) + 0.5) * np.pi / side
    freqs = sorted(((a, b) for a in range(side) for b in range(side)), key=sum)[:k]
    basis = np.stack([np.outer(np.cos(a * grid), np.cos(b * grid)).ravel() for a, b in freqs],
                     axis=1)
    return basis / np.linalg.norm(basis, axis=0)


def decoder_arrays(Uk: np.ndarray, mixing: np.ndarray) -> dict[str, np.ndarray]:
    """The optional weight arrays of a history file for a decoder W2 = U_k mixing."""
    W2 = Uk @ mixing
    return {"W2_final": W2, "Uk_T_W2": Uk.T @ W2}
