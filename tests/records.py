"""The one record factory of the tests: records built as ``bench.sweep.record.Record`` (so a
field the schema gains or loses breaks here, not silently in a test's hand-made dict), and run
directories written through the real store."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import numpy as np

from bench.sweep.record import Record
from bench.sweep.store import record_key, write_manifest, write_record

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
