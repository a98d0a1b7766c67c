"""The tests' one helpers module: records and run directories built through the real record
type and store (so a field the schema gains or loses breaks here, not silently in a hand-made
dict), a realistic Figure 4 result set, the smoke preset as a config, and the CLI in-process."""
from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import yaml

from bench.cli import main
from bench.sweep.config import preset_text
from bench.sweep.record import Record
from bench.sweep.store import load_records, record_key, write_manifest, write_record
from lae_core import get_objective

# --- records and run directories ----------------------------------------------------------------

DATA_ID = "synthetic-linear-m1000-n5000-seed1234-high100-low1"   # the recipe of the fig4 data
FINGERPRINT = "0a1b2c3d4e"
CPU = "Test CPU 2-core @ 2.0GHz"
GPU = "Test GPU 80GB"


def make_record(*, model: str = "rotation", optimizer: str = "sgd_nesterov", k: int = 10,
                m: int = 1000, lr: float = 1e-4, seed: int = 0, epochs: int | None = 1000,
                status: str | None = None, epoch_times: Iterable[float] = (1e-3,) * 8,
                backend: str = "numpy", device: str = CPU, dtype: str = "float64",
                max_epochs: int = 50_000, batch_size: int = 5, data_id: str = DATA_ID,
                data_fingerprint: str = FINGERPRINT, **fields: Any) -> dict[str, Any]:
    """The JSON form of a record of one run that reached d_align 0.3 after ``epochs`` (None:
    capped). ``fields`` replace any other field of the schema."""
    times = [float(t) for t in epoch_times]
    record = Record(
        key=record_key(model, optimizer, k, lr, seed), model=model, optimizer=optimizer, k=k,
        m=m, n=5000, data_id=data_id, data_fingerprint=data_fingerprint, lr=lr, seed=seed,
        dtype=dtype, backend=backend, device=device,
        formulation="spectral" if optimizer != "adam" else "covariance",
        hyperparameters={}, thresholds=[0.3], epochs_to={"0.3": epochs},
        status=status or ("reached" if epochs is not None else "capped"), error=None,
        epochs=epochs if epochs is not None else max_epochs, max_epochs=max_epochs,
        eval_every=10, batch_size=batch_size, wall_time_s=float(sum(times)),
        epoch_time_median_s=float(np.median(times)) if times else None,
        epoch_time_iqr_s=0.0, epoch_times_s=times,
        final={"d_align": 0.29 if epochs is not None else 0.8, "d_sub": 0.01})
    return {**record.to_json(), **fields}


def cell_records(epochs_per_seed: Iterable[int | None], **fields: Any) -> list[dict]:
    """The records of one cell, one per seed (0, 1, ...)."""
    return [make_record(seed=seed, epochs=epochs, **fields)
            for seed, epochs in enumerate(epochs_per_seed)]


def machine(cpu: str = CPU) -> dict[str, Any]:
    return {"cpu_model": cpu, "cpu_cores": 2, "os": "Linux"}


def write_run(run_dir: Path, records: Iterable[dict], *, cpu: str = CPU,
              gpu: dict | None = None,
              histories: dict[str, dict[str, np.ndarray]] | None = None) -> Path:
    """A run directory: manifest plus the given records (and histories, by record key)."""
    run_dir = Path(run_dir)
    write_manifest(run_dir, {"run_id": run_dir.name, "created_utc": "2026-11-27T12:00:00",
                             "config": {"name": "test"}, "config_hash": "abc123",
                             "machine": machine(cpu), "gpu": gpu,
                             "packages": {"numpy": np.__version__},
                             "git": {"commit": "0123456789abcdef", "dirty": False}})
    histories = histories or {}
    for record in records:
        write_record(run_dir, record, histories.get(record["key"]))
    return run_dir


# --- the smoke preset and the CLI -------------------------------------------------------------

def smoke_config(**changes) -> dict:
    """The smoke preset as a dict, with top-level keys replaced."""
    return {**yaml.safe_load(preset_text("smoke")), **changes}


def write_config(path: Path, **changes) -> Path:
    path.write_text(yaml.safe_dump(smoke_config(**changes)))
    return path


def cli(*argv) -> tuple[int, str, str]:
    """Run ``lae-bench ARGV`` in-process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def records(run_dir: Path) -> list[dict]:
    """The records of a run directory through the store (validated), in their JSON form."""
    return [r.to_json() for r in load_records(run_dir)]


# --- a Figure 4 result set, histories and decoders ---------------------------------------------

FIG4_KS = (2, 5, 10, 20, 50, 100, 200, 300, 400, 500)
# Figure 4 of the paper as published: epochs to d_align 0.3 per k; None = fails (the curve
# stops there).
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
