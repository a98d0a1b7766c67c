"""The schema of everything lae-bench writes, and the one checker every reader uses.

Files (see docs/reliability.md for the field tables)::

    RUN_DIR/manifest.json          check_manifest
    RUN_DIR/records/<key>.json     check_record
    RUN_DIR/histories/<key>.npz    check_history
    lr tables (.yaml / .csv)       check_lr_row, one row at a time

Each check takes the parsed value and the file it came from and returns the value, or raises
``SchemaError`` with one line naming the file, the field, the value (cut before it is
rendered) and what is allowed. Beyond types it checks ranges (no negative epochs, k <= m),
finiteness (Infinity and 1e400 parse as floats in Python's JSON) and consistency (a record's
key is its file name and says its model, optimizer, k, lr and seed; its status agrees with its
epochs-to-threshold).

Why a checker of our own rather than jsonschema or pydantic: JSON Schema has no word for
"finite" (Python's JSON reader turns 1e400 into inf, which passes ``type: number``) nor for the
cross-field rules above, and both libraries' messages quote whole values, which is how a YAML
alias bomb became a 3 GB error message. The few checkers needed already exist in
``bench.validate``; this module only composes them into one table per file type.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from .errors import UsageError
from .validate import show

RECORD_SCHEMAS = (1, 2)          # what readers accept; records are written at the last one
STATUSES = ("reached", "capped", "diverged", "error")
BIG = 2 ** 53                     # past it, integers stop being exact as JSON numbers


class SchemaError(UsageError):
    """A stored file that does not follow the schema. ``file`` and ``field`` say where."""

    def __init__(self, file: str, field: str, message: str):
        self.file, self.field, self.reason = file, field, message
        super().__init__(f"{file}: {field}: {message}" if field else f"{file}: {message}")


Check = Callable[[Any], str | None]      # None when the value is allowed, else what is allowed


# --- value checks: each returns None or the words for what is allowed ----------------------

def _integer(low: int, high: int = BIG) -> Check:
    def check(v: Any) -> str | None:
        ok = isinstance(v, int) and not isinstance(v, bool) and low <= v <= high
        return None if ok else f"an integer from {low} to {high}"
    return check


def _number(low: float = 0.0, *, above: bool = False) -> Check:
    """A finite number >= low (> low when ``above``)."""
    def check(v: Any) -> str | None:
        ok = (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
              and (v > low if above else v >= low))
        return None if ok else f"a finite number {'>' if above else '>='} {low:g}"
    return check


def _text(v: Any) -> str | None:
    return None if isinstance(v, str) and v else "non-empty text"


def _mapping(v: Any) -> str | None:
    return None if isinstance(v, dict) else "a mapping"


def _optional(check: Check) -> Check:
    def optional(v: Any) -> str | None:
        return None if v is None else (None if check(v) is None else f"null or {check(v)}")
    return optional


def _list_of(item: Check, non_empty: bool = False) -> Check:
    def check(v: Any) -> str | None:
        if not isinstance(v, list) or (non_empty and not v) or any(item(x) for x in v):
            return f"a {'non-empty ' if non_empty else ''}list, each {item(None)}"
        return None
    return check


def _one_of(*allowed: Any) -> Check:
    return lambda v: None if v in allowed and not isinstance(v, bool) else (
        "one of " + ", ".join(map(str, allowed)))


_seconds = _number(0.0)
_positive = _number(0.0, above=True)

RECORD_FIELDS: dict[str, Check] = {
    "schema_version": _one_of(*RECORD_SCHEMAS),
    "key": _text, "model": _text, "optimizer": _text,
    "k": _integer(1), "m": _integer(1), "n": _integer(1),
    "data_id": _text, "data_fingerprint": _text,
    "lr": _positive, "seed": _integer(0),
    "dtype": _text, "backend": _text, "device": _text, "formulation": _text,
    "hyperparameters": _mapping,
    "thresholds": _list_of(_positive, non_empty=True),
    "epochs_to": _mapping,
    "status": _one_of(*STATUSES),
    "error": _optional(lambda v: None if isinstance(v, str) else "text"),
    "epochs": _integer(0), "max_epochs": _integer(1), "eval_every": _integer(1),
    "batch_size": _integer(1),
    "wall_time_s": _seconds,
    "epoch_time_median_s": _optional(_seconds), "epoch_time_iqr_s": _optional(_seconds),
    "epoch_times_s": _list_of(_seconds),
    "final": _mapping,
    "history_file": _optional(_text),
    "reference_times_s": _optional(_list_of(_seconds)),
    "block_cpu_shares": _optional(_list_of(_seconds)),
    "step": _optional(_text),
    "graph_error": _optional(lambda v: None if isinstance(v, str) else "text"),
    "blas_threads": _optional(_integer(1, 1024)),
}
# Fields a stored record may leave out: added after schema 2 was first written, or (the
# fingerprint) absent from schema 1, whose data_id ended in it.
RECORD_OPTIONAL = frozenset({"history_file", "reference_times_s", "block_cpu_shares", "step",
                             "graph_error", "blas_threads", "data_fingerprint"})

MANIFEST_FIELDS: dict[str, Check] = {
    "schema_version": _one_of(*RECORD_SCHEMAS),
    "config": _mapping,
    "run_id": _text, "created_utc": _text, "config_hash": _text,
    "machine": _optional(_mapping), "gpu": _optional(_mapping), "packages": _optional(_mapping),
    "git": _optional(_mapping), "blas": _optional(_mapping), "threads": _optional(_mapping),
    "sessions": _list_of(lambda v: None if isinstance(v, dict) else "a mapping"),
}
MANIFEST_REQUIRED = frozenset({"schema_version", "config"})
# The keys of a manifest's config that readers use (tables, plots), typed when present.
CONFIG_FIELDS: dict[str, Check] = {
    "name": _text, "dtype": _text, "data": _mapping,
    "headline": _positive, "thresholds": _list_of(_positive, non_empty=True),
    "k": _list_of(_integer(1), non_empty=True), "seeds": _list_of(_integer(0)),
    "models": _list_of(_text, non_empty=True), "optimizers": _list_of(_text, non_empty=True),
    "max_epochs": _integer(1), "eval_every": _integer(1),
    "stop_on_failure": lambda v: None if isinstance(v, bool) else "true or false",
}


def _fields(obj: Any, table: Mapping[str, Check], required: Iterable[str], file: str,
            what: str) -> dict:
    """``obj`` as a mapping whose fields in ``table`` pass their check."""
    if not isinstance(obj, dict):
        raise SchemaError(file, "", f"{show(obj)} is not allowed; expected a JSON object "
                          f"({what})")
    for name in required:
        if name not in obj:
            raise SchemaError(file, name, "missing; this field is required")
    for name, check in table.items():
        if name in obj and (allowed := check(obj[name])) is not None:
            raise SchemaError(file, name, f"{show(obj[name])} is not allowed; expected "
                              f"{allowed}")
    return obj


def check_manifest(obj: Any, file: str | Path) -> dict:
    """A manifest: an object with a readable schema_version and a config mapping whose keys
    that readers use are typed."""
    manifest = _fields(obj, MANIFEST_FIELDS, MANIFEST_REQUIRED, str(file), "a run's manifest")
    for name, check in CONFIG_FIELDS.items():
        value = manifest["config"].get(name)
        if name in manifest["config"] and (allowed := check(value)) is not None:
            raise SchemaError(str(file), f"config.{name}", f"{show(value)} is not allowed; "
                              f"expected {allowed}")
    return manifest


def record_key(model: str, optimizer: str, k: int, lr: float, seed: int) -> str:
    """The key (and file name) of a run: what it is, readable."""
    return f"{model}__{optimizer}__k{k}__lr{lr:.6g}__seed{seed}"


def check_record(obj: Any, file: str | Path) -> dict:
    """A record of a readable schema: every field typed and in range, its key its file name
    (``file``'s stem) and the cell it describes, its status agreeing with its epochs."""
    file = str(file)
    required = [n for n in RECORD_FIELDS if n not in RECORD_OPTIONAL]
    if isinstance(obj, dict) and obj.get("schema_version") == 2:
        required.append("data_fingerprint")
    record = _fields(obj, RECORD_FIELDS, required, file, "one run's record")
    _check_ranges(record, file)
    _check_key(record, file)
    _check_epochs_to(record, file)
    return record


def _check_ranges(r: dict, file: str) -> None:
    if r["k"] > r["m"]:
        raise SchemaError(file, "k", f"{r['k']} is not allowed; expected at most m = {r['m']}")
    if r["epochs"] > r["max_epochs"]:
        raise SchemaError(file, "epochs", f"{r['epochs']} is not allowed; expected at most "
                          f"max_epochs = {r['max_epochs']}")
    for name, value in r["final"].items():
        if value is not None and _number(-math.inf)(value) is not None:
            raise SchemaError(file, f"final.{name}", f"{show(value)} is not allowed; expected "
                              "a finite number or null")


def _check_key(r: dict, file: str) -> None:
    expected = record_key(r["model"], r["optimizer"], r["k"], r["lr"], r["seed"])
    if r["key"] != expected:
        raise SchemaError(file, "key", f"{show(r['key'])} does not describe the run "
                          f"({expected}); the record was edited or copied")
    history = r.get("history_file")
    if history is not None and history != f"histories/{r['key']}.npz":
        raise SchemaError(file, "history_file", f"{show(history)} is not allowed; expected "
                          f"null or histories/{r['key']}.npz")
    stem = Path(file).stem
    if Path(file).suffix == ".json" and stem != r["key"]:
        raise SchemaError(file, "key", f"{show(r['key'])} is not the file's name ({stem}); a "
                          "record copied under another name would count twice")


def _check_epochs_to(r: dict, file: str) -> None:
    levels = {str(t) for t in r["thresholds"]}
    if not set(r["epochs_to"]) <= levels:
        raise SchemaError(file, "epochs_to", f"keys {show(sorted(r['epochs_to']))} are not "
                          f"among the thresholds {sorted(levels)}")
    for level, epoch in r["epochs_to"].items():
        if epoch is not None and _integer(0, r["epochs"])(epoch) is not None:
            raise SchemaError(file, f"epochs_to.{level}", f"{show(epoch)} is not allowed; "
                              f"expected null or an integer from 0 to epochs = {r['epochs']}")
    lowest = r["epochs_to"].get(str(min(r["thresholds"])))
    if str(min(r["thresholds"])) in r["epochs_to"] and (r["status"], lowest is None) in (
            ("reached", True), ("capped", False)):
        raise SchemaError(file, "status", f"{r['status']!r} disagrees with epochs_to "
                          f"{show(r['epochs_to'])} (reached means the lowest threshold was)")


def check_history(arrays: Mapping[str, Any], file: str | Path) -> Mapping[str, Any]:
    """A history: named numeric arrays (values may be NaN: a diverged run's metrics are), the
    1-D metric series of one length (2-D ones are final matrices: the decoder, U_k^T W2)."""
    lengths = set()
    for name, a in arrays.items():
        if getattr(getattr(a, "dtype", None), "kind", "") not in ("f", "i", "u"):
            raise SchemaError(str(file), name, "expected a numeric array")
        if a.ndim == 1:
            lengths.add(len(a))
    if len(lengths) > 1:
        raise SchemaError(str(file), "", f"metric series of different lengths {sorted(lengths)}")
    return arrays


def check_lr_row(row: Mapping[str, Any], where: str, models: Iterable[str],
                 optimizers: Iterable[str]) -> tuple[str, str, float]:
    """One {model, optimizer, k, lr} row of an lr table: known names and a positive finite
    rate (a CSV cell arrives as text). Returns (model, optimizer, lr)."""
    from .validate import choice, number
    model = choice(row.get("model"), f"{where}: model", tuple(models))
    optimizer = choice(row.get("optimizer"), f"{where}: optimizer", tuple(optimizers))
    lr = number(row.get("lr"), f"{where}: lr", lambda x: x > 0, "a positive finite number")
    return model, optimizer, lr


def read_json(path: Path, what: str) -> Any:
    """A stored JSON file's value; unreadable, binary or malformed content is a SchemaError
    naming the file (never UnicodeDecodeError or RecursionError)."""
    try:
        data = Path(path).read_bytes()
    except IsADirectoryError:
        raise SchemaError(str(path), "", f"is a directory, not {what}") from None
    except OSError as exc:
        raise SchemaError(str(path), "", f"cannot be read ({exc.strerror or 'I/O error'})"
                          ) from None
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise SchemaError(str(path), "", f"is not text (binary content); expected {what} "
                          "in JSON") from None
    except json.JSONDecodeError as exc:
        raise SchemaError(str(path), "", f"is not valid JSON ({exc.msg} at line {exc.lineno}"
                          f"); expected {what}") from None
    except (ValueError, RecursionError):   # numbers past Python's digit limit, deep nesting
        raise SchemaError(str(path), "", f"is not JSON this reader accepts (a number too long "
                          f"or nesting too deep); expected {what}") from None


# --- what readers skipped -----------------------------------------------------------------------
# Readers load what is valid and note each file they left out here; the CLI says it in one line
# when the command ends (and compare exits 2), so a file read twice is named once.
_SKIPPED: dict[str, str] = {}


def skip(path: str | Path, error: Exception, action: str = "") -> None:
    """Note that ``path`` was left out because of ``error`` (and what was done with it)."""
    reason = (f"{error.field}: {error.reason}" if isinstance(error, SchemaError) and error.field
              else error.reason if isinstance(error, SchemaError) else str(error))
    _SKIPPED[str(path)] = f"{reason}; {action}" if action else reason


def take_skipped() -> dict[str, str]:
    """The files skipped since the last call, {path: why}; the record is cleared."""
    taken = dict(_SKIPPED)
    _SKIPPED.clear()
    return taken


def skipped_line(skipped: Mapping[str, str]) -> str:
    """One line naming every skipped file and why."""
    files = "; ".join(f"{path} ({why})" for path, why in skipped.items())
    return f"skipped {len(skipped)} damaged file{'s' * (len(skipped) > 1)}: {files}"
