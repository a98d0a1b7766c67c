"""Run directories: a manifest plus one JSON record per run, each written atomically.

Layout (schema version 1)::

    RUN_DIR/manifest.json            schema_version, run_id, created_utc, config, config_hash,
                                     machine, gpu, packages, git
    RUN_DIR/records/<key>.json       one finished run (see RECORD_FIELDS)
    RUN_DIR/histories/<key>.npz      optional metric history of that run

A record is written with write-to-temporary-then-rename, after its history, so a crash or Ctrl-C
leaves either the whole record or none; a rerun skips the keys that exist.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from ..errors import UsageError

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"

# name -> type(s) a record value must have (None allowed where listed).
RECORD_FIELDS: dict[str, tuple] = {
    "schema_version": (int,),
    "key": (str,),
    "model": (str,), "optimizer": (str,), "k": (int,), "m": (int,), "n": (int,),
    "data_id": (str,), "lr": (float,), "seed": (int,), "dtype": (str,),
    "backend": (str,), "device": (str,), "formulation": (str,),
    "hyperparameters": (dict,),
    "thresholds": (list,),            # d_align levels recorded, e.g. [0.5, 0.3, 0.1]
    "epochs_to": (dict,),             # str(threshold) -> first evaluated epoch or None
    "status": (str,),                 # reached | capped | diverged | error
    "error": (str, type(None)),
    "epochs": (int,),                 # epochs run
    "max_epochs": (int,), "eval_every": (int,),
    "batch_size": (int,),             # runs trained together (seeds of the cell)
    "wall_time_s": (float,),          # the batch's wall time
    "epoch_time_median_s": (float, type(None)),   # per batch-epoch, warm-up block excluded
    "epoch_time_iqr_s": (float, type(None)),
    "epoch_times_s": (list,),         # the repeated timings behind the median
    "final": (dict,),                 # d_align, d_sub, transpose, recon, objective, loss
    "history_file": (str, type(None)),
}
STATUSES = ("reached", "capped", "diverged", "error")


def record_key(model: str, optimizer: str, k: int, lr: float, seed: int) -> str:
    return f"{model}__{optimizer}__k{k}__lr{lr:.6g}__seed{seed}"


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON so that ``path`` holds either its old content or the whole new one."""
    _write_atomic(path, json.dumps(_jsonable(obj), indent=1, sort_keys=True).encode())


def _write_atomic(path: Path, payload: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _jsonable(obj: Any) -> Any:
    """NumPy scalars and arrays to Python; non-finite floats to None (JSON has no NaN)."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return _jsonable(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def validate_record(record: dict) -> dict:
    """Raise UsageError unless ``record`` has every field of schema 1 with the right type."""
    version = record.get("schema_version")
    if version != SCHEMA_VERSION:
        raise UsageError(f"record schema_version: {version!r} is not {SCHEMA_VERSION}; "
                         "re-run the sweep with this lae-bench version")
    for name, types in RECORD_FIELDS.items():
        if name not in record:
            raise UsageError(f"record {record.get('key', '?')}: field {name!r} is missing")
        if not isinstance(record[name], types) or isinstance(record[name], bool):
            raise UsageError(f"record {record.get('key', '?')}: field {name!r} = "
                             f"{record[name]!r} is not {'/'.join(t.__name__ for t in types)}")
    if record["status"] not in STATUSES:
        raise UsageError(f"record {record['key']}: status {record['status']!r} is not one of "
                         f"{', '.join(STATUSES)}")
    return record


def write_manifest(run_dir: Path, manifest: dict) -> None:
    write_json_atomic(Path(run_dir) / MANIFEST, {"schema_version": SCHEMA_VERSION, **manifest})


def load_manifest(run_dir: str | Path) -> dict:
    path = Path(run_dir) / MANIFEST
    if not path.is_file():
        raise UsageError(f"run directory: {run_dir} has no {MANIFEST} (not a lae-bench run)")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise UsageError(f"run directory: {path} is not valid JSON ({exc.msg})") from None
    if manifest.get("schema_version") != SCHEMA_VERSION:
        raise UsageError(f"{path}: schema_version {manifest.get('schema_version')!r} is not "
                         f"{SCHEMA_VERSION}; re-run the sweep with this lae-bench version")
    return manifest


def write_record(run_dir: Path, record: dict, history: dict[str, np.ndarray] | None = None
                 ) -> None:
    """Store one finished run: its history first, then the record that points to it."""
    run_dir = Path(run_dir)
    record = dict(record, schema_version=SCHEMA_VERSION, history_file=None)
    if history is not None:
        rel = f"histories/{record['key']}.npz"
        with tempfile.SpooledTemporaryFile() as buf:
            np.savez_compressed(buf, **{name: np.asarray(v) for name, v in history.items()})
            buf.seek(0)
            _write_atomic(run_dir / rel, buf.read())
        record["history_file"] = rel
    write_json_atomic(run_dir / "records" / f"{record['key']}.json", validate_record(
        _jsonable(record)))


def finished_keys(run_dir: Path) -> set[str]:
    """Keys of the runs already stored (a resumed sweep skips them)."""
    return {p.stem for p in (Path(run_dir) / "records").glob("*.json")}


def load_records(run_dir: str | Path) -> list[dict]:
    """Every record of a run directory, validated, sorted by key."""
    load_manifest(run_dir)
    records = []
    for path in sorted((Path(run_dir) / "records").glob("*.json")):
        try:
            records.append(validate_record(json.loads(path.read_text())))
        except json.JSONDecodeError as exc:
            raise UsageError(f"record {path}: not valid JSON ({exc.msg})") from None
    return records


def load_history(run_dir: str | Path, record: dict) -> dict[str, np.ndarray] | None:
    if not record.get("history_file"):
        return None
    with np.load(Path(run_dir) / record["history_file"]) as z:
        return {name: z[name] for name in z.files}


def records_frame(run_dirs: str | Path | Iterable[str | Path]):
    """All records of one or more run directories as a pandas DataFrame, one row per run.

    Nested fields are flattened: ``epochs_to_0.3``, ``final_d_align``, ...; ``run_dir`` says
    where each row came from. This is the one call to load results into pandas.
    """
    import pandas as pd

    dirs = [run_dirs] if isinstance(run_dirs, (str, Path)) else list(run_dirs)
    rows = []
    for run_dir in dirs:
        for rec in load_records(run_dir):
            row = {k: v for k, v in rec.items() if k not in ("epochs_to", "final")}
            row.update({f"epochs_to_{t}": e for t, e in rec["epochs_to"].items()})
            row.update({f"final_{name}": v for name, v in rec["final"].items()})
            row["run_dir"] = str(run_dir)
            rows.append(row)
    return pd.DataFrame(rows)
