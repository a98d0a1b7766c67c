"""One run from given data and given initial weights: how anyone checks us against another
implementation (and how we check ourselves against the official code)."""
from __future__ import annotations

from typing import Any

import numpy as np

from .data import from_samples
from .objectives import get_objective
from .train import Schedule, run_batch


def replay(X: np.ndarray, W1: np.ndarray, W2: np.ndarray, *, model: str, optimizer: str,
           lr: float, epochs: int, dtype: str = "float64", backend: Any = "numpy",
           formulation: str = "auto", **hyperparameters: Any) -> dict[str, Any]:
    """Train one LAE from X (n, m), W1 (k, m), W2 (m, k) for ``epochs`` full-batch epochs.

    X is used as given (not centred); C = X^T X / n and U_k come from its eigen-decomposition.
    Hyperparameters (``lam``, ``keep_probs``) default to the paper's synthetic preset.

    Returns per-epoch arrays of length epochs + 1 (index t = after t epochs; NaN after a
    divergence): ``d_align``, ``d_sub``, ``loss`` (the NELBO for the VAE, the reconstruction
    loss otherwise, as the official code logs), ``recon``, ``objective``; the final ``W1``,
    ``W2`` (and for the VAE ``logvar`` (k,) and ``log_sigma_sq``); ``status`` and ``formulation``.
    """
    W1, W2 = np.asarray(W1, dtype=np.float64), np.asarray(W2, dtype=np.float64)
    dataset = from_samples(X, name="replay")
    k = W1.shape[0]
    if W1.shape != (k, dataset.m) or W2.shape != (dataset.m, k):
        raise ValueError(f"W1 must be (k, m) and W2 (m, k) for m = {dataset.m}; "
                         f"got {W1.shape} and {W2.shape}")
    batch = run_batch(dataset, model, optimizer, k, [lr], [0],
                      schedule=Schedule(thresholds=(), max_epochs=epochs, eval_every=1,
                                        history=True),
                      hyperparameters=hyperparameters or None, dtype=dtype, backend=backend,
                      formulation=formulation, initial=(W1[None], W2[None]))
    run = batch.runs[0]
    out: dict[str, Any] = {}
    for name in ("d_align", "d_sub", "loss", "recon", "objective"):
        series = np.full(epochs + 1, np.nan)
        values = np.asarray(run.history[name])
        series[: values.size] = values
        if run.status == "diverged":
            series[values.size - 1:] = np.nan  # the evaluation that saw non-finite weights
        out[name] = series
    out.update(W1=run.params[0], W2=run.params[1], status=run.status,
               formulation=batch.formulation)
    for name, value in zip(get_objective(model).extra_param_names, run.params[2:]):
        out[name] = float(value) if np.ndim(value) == 0 else value
    return out
