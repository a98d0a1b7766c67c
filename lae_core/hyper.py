"""Hyperparameters of the objectives: the paper presets, validation, and device preparation.

- uniform_sum: ``lam`` (float), the L2 weight on ||W1||^2 + ||W2||^2.
- non_uniform_sum: ``lam`` (k,), lam_i weighs row i of W1 and column i of W2.
- nd_exp, nd: ``keep_probs`` (k,), p_i = P(unit i is kept) = P(b >= i); p_0 = 1, non-increasing.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .backend import to_device
from .objectives import get_objective

PRESETS = ("paper", "well_posed")
ND_DECAY = 0.9  # the paper's truncated-geometric prior: p_i = 0.9^i


class HyperparameterError(ValueError):
    pass


def _as_float32(x: np.ndarray) -> np.ndarray:
    # The official code stores these vectors as float32 tensors before casting to double.
    return x.astype(np.float32).astype(np.float64)


def paper_reg_weights(k: int, m: int, data_kind: str = "synthetic") -> np.ndarray:
    """Square roots w of the per-unit L2 weights: linspace(0.1, min(0.1 (m-k-1), 0.01 m), k)
    for synthetic data, linspace(0.1, 0.9, k) for MNIST (official code)."""
    high = 0.9 if data_kind == "mnist" else min(0.1 * (m - k - 1), 0.01 * m)
    return np.linspace(0.1, high, k)


def geometric_keep_probs(k: int, decay: float = ND_DECAY) -> np.ndarray:
    """p_i = decay^i, the keep probabilities of a truncated geometric prior on b."""
    return decay ** np.arange(k, dtype=np.float64)


def preset_hyperparameters(model: str, k: int, m: int, *, data_kind: str = "synthetic",
                           preset: str = "paper", eigvals: np.ndarray | None = None
                           ) -> dict[str, Any]:
    """Hyperparameters of ``model`` for latent size k.

    'paper' reproduces the official code (its float32 storage included). 'well_posed' keeps
    lam_k = 0.81 c_k < c_k, which Theorems 2-3 assume and the paper preset violates at m = 1000.
    """
    if preset not in PRESETS:
        raise HyperparameterError(f"hyperparameters: {preset!r} is not one of {', '.join(PRESETS)}")
    objective = get_objective(model)
    if "lam" in objective.hyperparameters:
        if preset == "paper":
            w = paper_reg_weights(k, m, data_kind)
        else:
            if eigvals is None:
                raise HyperparameterError("the well_posed preset needs the data's eigenvalues")
            w = np.linspace(0.1, 0.9, k) * np.sqrt(eigvals[k - 1])
        if not objective.lam_per_unit:
            return {"lam": float(np.mean(w) ** 2)}
        return {"lam": _as_float32(w) ** 2 if preset == "paper" else w ** 2}
    if "keep_probs" in objective.hyperparameters:
        return {"keep_probs": _as_float32(geometric_keep_probs(k))}
    return {}


def validate_hyperparameters(model: str, hp: dict[str, Any], k: int) -> dict[str, Any]:
    """Check names and shapes; return host values (floats and float64 arrays)."""
    objective = get_objective(model)
    unknown = set(hp) - set(objective.hyperparameters)
    if unknown:
        allowed = ", ".join(objective.hyperparameters) or "none"
        raise HyperparameterError(f"hyperparameters: {sorted(unknown)} not used by {model} "
                                  f"(allowed: {allowed})")
    out: dict[str, Any] = {}
    if "lam" in hp:
        lam = np.asarray(hp["lam"], dtype=np.float64)
        if not objective.lam_per_unit:
            if lam.ndim != 0:
                raise HyperparameterError(f"lam: {model} takes one number, got shape {lam.shape}")
            out["lam"] = float(lam)
        else:
            if lam.shape != (k,):
                raise HyperparameterError(f"lam: {model} takes {k} weights, got shape {lam.shape}")
            out["lam"] = lam
        if np.any(lam < 0) or not np.all(np.isfinite(lam)):
            raise HyperparameterError("lam: weights must be finite and >= 0")
    if "keep_probs" in hp:
        p = np.asarray(hp["keep_probs"], dtype=np.float64)
        if p.shape != (k,) or p[0] != 1 or np.any(np.diff(p) > 0) or np.any(p <= 0):
            raise HyperparameterError(f"keep_probs: need {k} non-increasing values in (0, 1] "
                                      "starting at 1")
        out["keep_probs"] = p
    return out


def device_hyperparameters(xp: Any, hp: dict[str, Any], dtype: Any) -> dict[str, Any]:
    """Host hyperparameters on the device, with the derived arrays the gradients use:
    M_ij = p_max(i,j) for nested dropout, and doubled copies (the gradients' factor 2 applied
    once here, on k numbers, instead of on (k, m) arrays every epoch; doubling is exact)."""
    hp = dict(hp)
    if "keep_probs" in hp:
        idx = np.arange(hp["keep_probs"].size)
        hp["keep_matrix"] = hp["keep_probs"][np.maximum.outer(idx, idx)]
    hp.update({f"{name}2": 2 * hp[name] for name in ("lam", "keep_probs", "keep_matrix")
               if name in hp})
    return {name: to_device(xp, v, dtype) if isinstance(v, np.ndarray) else v
            for name, v in hp.items()}
