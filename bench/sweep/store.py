"""Run directories: a manifest plus one JSON record per run, each written atomically.

Layout (schema version 2; schema 1 still loads, see ``record``)::

    RUN_DIR/manifest.json            schema_version, run_id, created_utc, config, config_hash,
                                     machine, gpu, packages, git
    RUN_DIR/records/<key>.json       one finished run (``record.Record``)
    RUN_DIR/histories/<key>.npz      optional metric history of that run

A record is written with write-to-temporary-then-rename, after its history, so a crash or Ctrl-C
leaves either the whole record or none; a rerun skips the keys that exist.
"""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from ..errors import UsageError
from ..schema import (SchemaError, check_history, check_manifest, read_json, record_key,  # noqa: F401 (re-exported)
                      skip)
from .record import SCHEMA_VERSION, Record, check_readable, jsonable

MANIFEST = "manifest.json"
DAMAGED = "damaged"           # where resume moves records that fail the schema (kept)
ROUND_PREFIX = "round-"      # the rounds of one side of `lae-bench interleave`: round-00, ...


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON so that ``path`` holds either its old content or the whole new one."""
    write_bytes_atomic(path, json.dumps(jsonable(obj), indent=1, sort_keys=True).encode())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Result files get the permissions of any new file (0644 under the usual umask), not the 0600
# of the temporary file they are written to: other users can read them.
FILE_MODE = 0o666 & ~_umask()


def write_bytes_atomic(path: Path, payload: bytes) -> None:
    """Write ``payload`` to a temporary file beside ``path``, then rename it over ``path``:
    ``path`` holds its old content or the whole new one. A write that fails (a full disk)
    leaves no temporary file and is a UsageError naming ``path``."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise _write_failed(path, exc) from None
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), FILE_MODE)
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise _write_failed(path, exc) from None
        raise


def _write_failed(path: Path, exc: OSError) -> UsageError:
    return UsageError(f"cannot write {path} ({exc.strerror or 'I/O error'}); the results "
                      "already written are kept: make room and rerun to resume")


def write_manifest(run_dir: Path, manifest: dict) -> None:
    write_json_atomic(Path(run_dir) / MANIFEST, {"schema_version": SCHEMA_VERSION, **manifest})


def load_manifest(run_dir: str | Path) -> dict:
    """The manifest of ``run_dir``, checked against the schema (SchemaError names the file
    and field)."""
    path = Path(run_dir) / MANIFEST
    if not path.exists():
        raise UsageError(f"run directory: {run_dir} has no {MANIFEST} (not a lae-bench run)")
    manifest = read_json(path, "a run's manifest")
    if isinstance(manifest, dict) and "schema_version" in manifest:
        check_readable(manifest["schema_version"], str(path))
    return check_manifest(manifest, path)


def write_record(run_dir: Path, record: Record | Mapping[str, Any],
                 history: Mapping[str, np.ndarray] | None = None) -> None:
    """Store one finished run: its history first, then the record that points to it.
    ``record``: a Record, or its JSON form (as the tests' factory makes it)."""
    run_dir = Path(run_dir)
    if not isinstance(record, Record):
        record = Record.from_json({**record, "schema_version": SCHEMA_VERSION})
    history_file = None
    if history is not None:
        history_file = f"histories/{record.key}.npz"
        with tempfile.SpooledTemporaryFile() as buf:
            np.savez_compressed(buf, **{name: np.asarray(v) for name, v in history.items()})
            buf.seek(0)
            write_bytes_atomic(run_dir / history_file, buf.read())
    record = replace(record, history_file=history_file, schema_version=SCHEMA_VERSION)
    write_json_atomic(run_dir / "records" / f"{record.key}.json", record.to_json())


def load_records(run_dir: str | Path, *, set_aside: bool = False) -> list[Record]:
    """Every valid record of a run directory (schema-1 ones upgraded), sorted by key. A record
    that fails the schema is skipped and noted (``bench.schema.take_skipped``); with
    ``set_aside`` (a resumed sweep) it is also moved to ``RUN_DIR/damaged/``, so that its cell
    runs again and the file is kept."""
    manifest = load_manifest(run_dir)
    records = []
    for path in sorted((Path(run_dir) / "records").glob("*.json")):
        try:
            records.append(Record.from_json(read_json(path, "a record"), manifest, file=path))
        except UsageError as exc:
            moved = _set_aside(Path(run_dir), path) if set_aside else None
            skip(path, exc, f"moved to {moved}, its cell runs again" if moved else "")
    return records


def _set_aside(run_dir: Path, path: Path) -> Path:
    """Move a damaged record into ``RUN_DIR/damaged/`` under a name not taken yet."""
    target_dir = run_dir / DAMAGED
    target_dir.mkdir(exist_ok=True)
    target = target_dir / path.name
    count = 1
    while target.exists():
        target, count = target_dir / f"{path.stem}.{count}{path.suffix}", count + 1
    os.replace(path, target)
    return target


def load_history(run_dir: str | Path, history_file: str | None
                 ) -> dict[str, np.ndarray] | None:
    """The arrays of a record's history file (``Record.history_file``); None without one, or
    when the file is missing or damaged (then it is noted as skipped)."""
    if not history_file:
        return None
    path = Path(run_dir) / history_file
    try:
        with np.load(path) as z:
            return dict(check_history({name: z[name] for name in z.files}, path))
    except SchemaError as exc:
        skip(path, exc)
    except Exception as exc:     # noqa: BLE001 - zip, pickle and OS errors of a bad file
        skip(path, SchemaError(str(path), "", "missing or not a readable .npz history"))
    return None


def with_rounds(run_dir: str | Path) -> list[str | Path]:
    """A run directory, or for one side of ``lae-bench interleave`` (a folder of round-NN run
    directories and no manifest of its own) its rounds, in order."""
    path = Path(run_dir)
    rounds = sorted(p for p in path.glob(f"{ROUND_PREFIX}*") if (p / MANIFEST).is_file())
    return [run_dir] if (path / MANIFEST).exists() or not rounds else rounds


def records_frame(run_dirs: str | Path | Iterable[str | Path]):
    """All records of one or more run directories as a pandas DataFrame, one row per run.

    Nested fields are flattened: ``epochs_to_0.3``, ``final_d_align``, ...; ``run_dir`` says
    where each row came from (a side of ``lae-bench interleave`` counts as its rounds). This is
    the one call to load results into pandas.
    """
    import pandas as pd

    dirs = [run_dirs] if isinstance(run_dirs, (str, Path)) else list(run_dirs)
    dirs = [round_dir for run_dir in dirs for round_dir in with_rounds(run_dir)]
    rows = []
    for run_dir in dirs:
        for rec in (r.to_json() for r in load_records(run_dir)):
            row = {k: v for k, v in rec.items() if k not in ("epochs_to", "final")}
            row.update({f"epochs_to_{t}": e for t, e in rec["epochs_to"].items()})
            row.update({f"final_{name}": v for name, v in rec["final"].items()})
            row["run_dir"] = str(run_dir)
            rows.append(row)
    return pd.DataFrame(rows)
