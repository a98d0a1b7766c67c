"""One run's stored result: the record type shared by the sweep, the store and the tests.

Schema 2 (written now) names the data by its recipe and keeps the hash of the exact numbers
apart: ``data_id`` says how the data was made (kind, sizes, seed, spectrum or file name and
size, see ``bench.sweep.recipe``) and is what joins use; ``data_fingerprint`` is
the hash of the covariance's bytes, which another BLAS or thread count changes. Schema 1 ended
``data_id`` in that hash; its records load upgraded (``upgrade_schema_1``).
"""
from __future__ import annotations

import math
import re
import types
import typing
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..errors import UsageError
from ..schema import RECORD_SCHEMAS, STATUSES, check_record
from .recipe import config_recipe

SCHEMA_VERSION = 2
READABLE_SCHEMAS = RECORD_SCHEMAS
# Schema 1's data_id: "<recipe>-<10 hex digits of sha1(C)>".
_V1_DATA_ID = re.compile(r"^(?P<recipe>.+)-(?P<fingerprint>[0-9a-f]{10})$")


@dataclass(frozen=True)
class Record:
    """One finished (or failed) run of one cell, as written to ``records/<key>.json``."""

    key: str
    model: str
    optimizer: str
    k: int
    m: int
    n: int
    data_id: str                      # the recipe: how the data was made; joins use it
    data_fingerprint: str             # sha1 of C's bytes (10 hex): same machine, same numbers
    lr: float
    seed: int
    dtype: str
    backend: str
    device: str
    formulation: str
    hyperparameters: dict[str, Any]
    thresholds: list[float]           # d_align levels recorded, e.g. [0.5, 0.3, 0.1]
    epochs_to: dict[str, Any]         # str(threshold) -> first evaluated epoch or None
    status: str                       # reached | capped | diverged | error
    error: str | None
    epochs: int                       # epochs run
    max_epochs: int
    eval_every: int
    batch_size: int                   # runs trained together (seeds of the cell)
    wall_time_s: float                # the batch's wall time
    epoch_time_median_s: float | None     # per batch-epoch, warm-up block excluded
    epoch_time_iqr_s: float | None
    epoch_times_s: list[float]        # the repeated timings behind the median
    final: dict[str, Any]             # d_align, d_sub, transpose, recon, objective, loss
    history_file: str | None = None
    # Per-block seconds of a same-run reference matrix product, timed beside the epochs (the
    # timing gate divides by them to cancel machine load); None where not measured.
    reference_times_s: list[float] | None = None
    # Per-block CPU share of the training thread (CPU time / wall time; below 1: other
    # processes took the CPU), which the timing gate uses to leave pre-empted blocks out.
    block_cpu_shares: list[float] | None = None
    # The training step that ran (reference, packed, compiled or graph); None in older records.
    step: str | None = None
    # Why CUDA-graph capture failed where it was tried (the step then ran 'packed'), else None.
    graph_error: str | None = None
    # BLAS threads the cell trained with (bench.sweep.threads); None: not limited (older
    # records, a GPU, a Dask worker with its own limit).
    blas_threads: int | None = None
    schema_version: int = SCHEMA_VERSION

    def to_json(self) -> dict[str, Any]:
        """The record as JSON-ready Python values, checked against the schema."""
        return validate(jsonable(asdict(self)))

    @classmethod
    def from_json(cls, obj: Mapping[str, Any], manifest: Mapping[str, Any] | None = None,
                  file: str | Path | None = None) -> "Record":
        """A stored record (any readable schema; ``manifest``: its run directory's, which
        tells how a schema-1 record's data was made; ``file``: where it was read, which the
        schema checks its key against)."""
        where = str(file) if file is not None else f"record {_key_of(obj)}"
        if isinstance(obj, Mapping) and "schema_version" in obj:
            check_readable(obj["schema_version"], where)
        obj = dict(check_record(obj, where))
        if obj["schema_version"] == 1:
            obj = upgrade_schema_1(obj, manifest)
        return cls(**{name: obj[name] for name in FIELD_TYPES if name in obj})


def _runtime_types(hint: Any) -> tuple[type, ...]:
    """The isinstance() types of an annotation: ``float | None`` -> (float, NoneType)."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return tuple(t for arg in typing.get_args(hint) for t in _runtime_types(arg))
    if hint is None or hint is type(None):
        return (type(None),)
    return (typing.get_origin(hint) or hint,)


FIELD_TYPES: dict[str, tuple[type, ...]] = {
    f.name: _runtime_types(hint) for f, hint in
    zip(fields(Record), typing.get_type_hints(Record).values())}


def validate(record: Mapping[str, Any]) -> Mapping[str, Any]:
    """Raise SchemaError unless ``record`` follows this schema (``bench.schema``), written
    at the current version."""
    version = record.get("schema_version")
    if version != SCHEMA_VERSION:
        raise UsageError(f"record schema_version: {version!r} is not {SCHEMA_VERSION}; "
                         "re-run the sweep with this lae-bench version")
    return check_record(record, f"record {_key_of(record)}")


def _key_of(obj: Any) -> str:
    return str(obj.get("key", "?"))[:80] if isinstance(obj, Mapping) else "?"


def upgrade_schema_1(record: dict[str, Any], manifest: Mapping[str, Any] | None) -> dict:
    """A schema-1 record as schema 2: the hash that ended ``data_id`` becomes the fingerprint,
    and ``data_id`` the recipe (rebuilt from the manifest's data config where it can be, so
    that old and new records of the same data join)."""
    match = _V1_DATA_ID.match(record.get("data_id", ""))
    if match is None:
        raise UsageError(f"record {record.get('key', '?')}: schema-1 data_id "
                         f"{record.get('data_id')!r} does not end in a 10-digit hash")
    data = ((manifest or {}).get("config") or {}).get("data") or {}
    recipe = config_recipe(data, record["m"], record["n"]) or match["recipe"]
    return {**record, "schema_version": SCHEMA_VERSION, "data_id": recipe,
            "data_fingerprint": match["fingerprint"]}


def check_readable(version: Any, where: str) -> None:
    """Refuse a manifest or record of a schema this version cannot read, saying what to do."""
    if version not in READABLE_SCHEMAS:
        raise UsageError(f"{where}: schema_version {version!r} is not one of "
                         f"{', '.join(map(str, READABLE_SCHEMAS))}; re-run the sweep with this "
                         "lae-bench version, or read it with the version that wrote it")


def jsonable(obj: Any) -> Any:
    """NumPy scalars and arrays to Python; non-finite floats to None (JSON has no NaN)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return jsonable(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
