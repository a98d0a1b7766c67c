"""Nightly history: one small JSON summary per night in a folder, loaded into one pandas frame.

A night is one run directory reduced to what a series over many nights needs (``summarise``):
where and with what it ran (commit, date, the machine's fingerprint, backend) and, per cell, the
censored median epochs to the threshold, the statuses by count, the cap, the per-epoch time and
the machine-normalised time (epoch time / the same run's reference product, both over the
blocks that had the CPU to themselves). A night of 100 cells takes about 40 kB.

Layout of a history folder (a plain folder, a CI artifact or a checkout of a branch)::

    HISTORY/<date>-<commit 8>-<machine 8>-<backend>.json     one night, ``NIGHT_KIND``

A subfolder holding a run directory (``manifest.json``) is read as a night too, summarised on
load. Files and folders whose names start with a dot (``.git``) are not looked at.

Series. A cell's values over nights form one series per machine fingerprint (CPU model, BLAS
library and version, BLAS threads, GPU), backend, data fingerprint and setup (learning rate,
cap, evaluation interval, seeds, hyperparameters): a change of any of them starts a new series,
so that it is never read as a change of the code (``series_key``).
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from ..errors import UsageError
from ..sweep.record import jsonable
from ..sweep.store import MANIFEST, load_manifest, records_frame, write_json_atomic
from ..sweep.censored import censored_summary
from .stats import cell_epoch_time, epochs_or_inf
from .timing import timing_samples

NIGHT_KIND = "lae-bench night"
NIGHT_SCHEMA = 2            # the record schema whose fields a night carries (recipe data_id)
CELL_FIELDS = ["data_id", "model", "optimizer", "k", "dtype"]
MACHINE_FIELDS = ("cpu_model", "blas", "blas_threads", "gpu")
STATUS_NAMES = ("reached", "capped", "diverged", "error")
# The fields of a series besides the cell (module docstring).
SERIES_FIELDS = ["machine_id", "backend", "data_fingerprint", "setup"]
# The per-epoch time that change points are found on (docs/history.md says why this one).
TIME_COLUMN = "clean_epoch_time_s"
EPOCH = pd.Timestamp("1970-01-01", tz="UTC")


# --- one night ----------------------------------------------------------------------------------

def machine_fingerprint(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """What makes two nights' timings comparable: CPU model, BLAS (name and version) and its
    threads, GPU name (None on a CPU)."""
    machine = manifest.get("machine") or {}
    blas = manifest.get("blas") or {}
    blas_name = " ".join(str(blas[k]) for k in ("name", "version") if blas.get(k)) or None
    return {"cpu_model": machine.get("cpu_model"), "blas": blas_name,
            "blas_threads": blas.get("threads"),
            "gpu": (manifest.get("gpu") or {}).get("gpu_name")}


def short_hash(value: Any, digits: int = 8) -> str:
    """The first ``digits`` hex digits of the SHA-1 of ``value`` as sorted JSON."""
    text = json.dumps(jsonable(value), sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:digits]


def summarise(run_dir: str | Path, threshold: float = 0.3) -> dict[str, Any]:
    """The night summary of one run directory (module docstring); UsageError for a directory
    that is not a run, holds no records or did not record ``threshold``."""
    manifest = load_manifest(run_dir)
    frame = records_frame(run_dir)
    if frame.empty:
        raise UsageError(f"run directory: {run_dir} holds no records")
    if f"epochs_to_{threshold}" not in frame:
        raise UsageError(f"threshold: d_align {threshold} was not recorded in {run_dir}")
    frame = frame.assign(_epochs=epochs_or_inf(frame, threshold))
    if "data_fingerprint" not in frame:
        frame["data_fingerprint"] = None
    group_by = [*CELL_FIELDS, "backend", "data_fingerprint", "device"]
    cells = [cell_entry(dict(zip(group_by, key)), runs) for key, runs in
             frame.groupby(group_by, sort=True, dropna=False)]
    machine = machine_fingerprint(manifest)
    git = manifest.get("git") or {}
    backends = sorted({c["backend"] for c in cells})
    return {"kind": NIGHT_KIND, "schema_version": NIGHT_SCHEMA,
            "run_id": manifest.get("run_id"), "date": manifest.get("created_utc"),
            "commit": git.get("commit"), "dirty": git.get("dirty"),
            "config_hash": manifest.get("config_hash"), "machine": machine,
            "machine_id": short_hash(machine), "backend": "+".join(backends),
            "threshold": threshold, "cells": cells}


def cell_entry(cell: dict[str, Any], runs: pd.DataFrame) -> dict[str, Any]:
    """One cell of a night: its identity, setup, epochs summary, statuses and times."""
    s = censored_summary(runs["_epochs"])
    statuses = runs["status"].value_counts()
    timing = timing_samples(runs)
    clean_epoch = float(np.median(timing.samples())) if timing.samples().size else math.nan
    reference = timing.reference()
    setup = {"lr": float(runs["lr"].iloc[0]), "max_epochs": int(runs["max_epochs"].max()),
             "eval_every": int(runs["eval_every"].iloc[0]),
             "batch_size": int(runs["batch_size"].max()),
             "hyperparameters": runs["hyperparameters"].iloc[0]}
    return jsonable({
        **{k: (v.item() if isinstance(v, np.generic) else v) for k, v in cell.items()},
        "setup": short_hash(setup), "lr": setup["lr"], "seeds": int(len(runs)),
        "max_epochs": setup["max_epochs"],
        "epochs_median": None if math.isinf(s.median) or math.isnan(s.median) else s.median,
        "censored": bool(s.censored), "straddles": bool(s.straddles),
        "statuses": {name: int(statuses.get(name, 0)) for name in STATUS_NAMES
                     if statuses.get(name, 0)},
        "epoch_time_s": cell_epoch_time(runs),
        "clean_epoch_time_s": clean_epoch,
        "reference_time_s": reference,
        "normalised_time": clean_epoch / reference if reference and reference > 0 else None,
    })


def night_file_name(night: Mapping[str, Any]) -> str:
    """``<date>-<commit 8>-<machine 8>-<backend>.json``: sorts by date, unique per run."""
    date = str(night.get("date") or "undated").replace(":", "").replace("-", "")
    commit = str(night.get("commit") or "nocommit")[:8]
    run = short_hash(night.get("run_id"), 4)
    return f"{date}-{commit}-{night['machine_id']}-{night['backend']}-{run}.json"


def add_night(run_dir: str | Path, history: str | Path, threshold: float = 0.3) -> Path:
    """Summarise ``run_dir`` into the history folder (created when missing); the path written.
    Adding the same run again rewrites the same file."""
    night = summarise(run_dir, threshold)
    path = Path(history) / night_file_name(night)
    write_json_atomic(path, night)
    return path


# --- loading ------------------------------------------------------------------------------------

@dataclass
class History:
    """The nights that loaded, one row per (night, cell), and what was skipped (file, why)."""

    frame: pd.DataFrame
    skipped: list[tuple[str, str]] = field(default_factory=list)
    source: str = ""

    @property
    def nights(self) -> int:
        return int(self.frame["night"].nunique()) if not self.frame.empty else 0

    def skipped_line(self, shown: int = 5) -> str:
        """One line naming the skipped entries and why ('' when none)."""
        if not self.skipped:
            return ""
        parts = [f"{name}: {why}" for name, why in self.skipped[:shown]]
        more = len(self.skipped) - shown
        tail = f"; and {more} more" if more > 0 else ""
        return (f"history {self.source}: skipped {len(self.skipped)} of "
                f"{len(self.skipped) + self.nights} entries: {'; '.join(parts)}{tail}")


def read_night(path: Path, threshold: float = 0.3) -> dict[str, Any]:
    """One history entry (a night's JSON, or a run directory summarised now); UsageError with
    the reason when it is not a readable night."""
    if path.is_dir():
        return summarise(path, threshold)
    try:
        night = json.loads(path.read_text())
    except UnicodeDecodeError:
        raise UsageError("not text") from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"not valid JSON: {exc.msg} at line {exc.lineno}") from None
    check_night(night)
    return night


def check_night(night: Any) -> None:
    """Refuse an entry that is not a night of this schema, saying why in a few words."""
    if not isinstance(night, dict) or night.get("kind") != NIGHT_KIND:
        raise UsageError(f"not a lae-bench night (\"kind\" is not \"{NIGHT_KIND}\")")
    version = night.get("schema_version")
    if version != NIGHT_SCHEMA:
        raise UsageError(f"schema_version {version!r} is not {NIGHT_SCHEMA}; re-add its run "
                         "directory with `lae-bench history add`")
    for name, kind in (("machine_id", str), ("backend", str), ("cells", list)):
        if not isinstance(night.get(name), kind):
            raise UsageError(f"field {name!r} = {night.get(name)!r} is not {kind.__name__}")
    if not _iso_date(night.get("date")):
        raise UsageError(f"field 'date' = {night.get('date')!r} is not an ISO date")
    for i, cell in enumerate(night["cells"]):
        missing = [f for f in (*CELL_FIELDS, "backend", "setup", "max_epochs")
                   if not isinstance(cell, dict) or f not in cell]
        if missing:
            raise UsageError(f"cell {i} lacks {', '.join(missing)}")


def _iso_date(value: Any) -> bool:
    try:
        datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return False
    return isinstance(value, str)


def entries(history: Path) -> list[Path]:
    """The history's entries: its .json files and run directories, dot-names left out."""
    found = [p for p in history.iterdir() if not p.name.startswith(".") and (
        (p.is_file() and p.suffix == ".json") or (p.is_dir() and (p / MANIFEST).is_file()))]
    return sorted(found)


def load_history(history: str | Path, threshold: float = 0.3) -> History:
    """Every readable night of a history folder as one frame (``night_rows``), the unreadable
    ones listed in ``skipped``. UsageError only when the folder itself is missing."""
    path = Path(history)
    if not path.is_dir():
        raise UsageError(f"history: {history} is not a directory (create it with "
                         "`lae-bench history add RUN_DIR HISTORY`)")
    rows, skipped = [], []
    for entry in entries(path):
        try:
            rows.extend(night_rows(read_night(entry, threshold), entry.name))
        except UsageError as exc:
            skipped.append((entry.name, str(exc)))
    return History(history_frame(rows), skipped, str(history))


def night_rows(night: Mapping[str, Any], name: str) -> list[dict[str, Any]]:
    """One row per cell of a night, with the night's provenance on every row."""
    machine = night.get("machine") or {}
    common = {"night": name, "date": night["date"], "commit": night.get("commit"),
              "dirty": night.get("dirty"), "run_id": night.get("run_id"),
              "machine_id": night["machine_id"],
              **{f: machine.get(f) for f in MACHINE_FIELDS}}
    rows = []
    for cell in night["cells"]:
        statuses = cell.get("statuses") or {}
        rows.append({**common, **{k: v for k, v in cell.items() if k != "statuses"},
                     **{s: int(statuses.get(s, 0)) for s in STATUS_NAMES}})
    return rows


COLUMNS = ["night", "date", "commit", "dirty", "run_id", "machine_id", *MACHINE_FIELDS,
           "backend", "device", *CELL_FIELDS, "data_fingerprint", "setup", "lr", "seeds",
           "max_epochs", "epochs_median", "censored", "straddles", *STATUS_NAMES,
           "epoch_time_s", "clean_epoch_time_s", "reference_time_s", "normalised_time"]


def history_frame(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """The rows as a frame sorted by date: ``epochs_median`` +inf where censored, times NaN
    where not measured, ``cell`` and ``series`` keys added."""
    frame = pd.DataFrame(list(rows))
    for column in COLUMNS:
        if column not in frame:
            frame[column] = pd.Series(dtype=object)
    frame = frame[COLUMNS].copy()
    frame["date"] = pd.to_datetime(frame["date"], utc=True)
    for column in ("epochs_median", "epoch_time_s", "clean_epoch_time_s", "reference_time_s",
                   "normalised_time", "lr"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
    censored = frame["censored"].fillna(False).astype(bool)
    frame["censored"] = censored
    frame.loc[censored, "epochs_median"] = np.inf
    frame["data_fingerprint"] = frame["data_fingerprint"].fillna("-").astype(str)
    frame["day"] = (frame["date"] - EPOCH) / pd.Timedelta(days=1)    # for charts
    frame["day_text"] = frame["date"].dt.strftime("%Y-%m-%d")
    frame["cell"] = cell_keys(frame)
    frame["series"] = frame["cell"]
    for name in SERIES_FIELDS:
        frame["series"] = frame["series"] + "|" + frame[name].astype(str)
    return frame.sort_values(["date", "night", "cell"], kind="stable").reset_index(drop=True)


def cell_keys(frame: pd.DataFrame) -> pd.Series:
    """A cell's name, also its page's file name: data/model/optimizer/k/dtype."""
    if frame.empty:
        return pd.Series(dtype=str)
    return (frame["data_id"].astype(str) + "/" + frame["model"].astype(str) + "/"
            + frame["optimizer"].astype(str) + "/k" + frame["k"].astype(int).astype(str)
            + "/" + frame["dtype"].astype(str))


def series_values(series: Any, metric: str) -> np.ndarray:
    """The per-night values of one series (a frame, or anything whose columns index by name)
    that change-point detection reads: ``epochs`` (censored medians at their cap: at least the
    cap) or ``time`` (per-epoch seconds)."""
    if metric == "epochs":
        epochs = np.asarray(series["epochs_median"], dtype=float)
        return np.where(np.isinf(epochs), np.asarray(series["max_epochs"], dtype=float), epochs)
    return np.asarray(series[TIME_COLUMN], dtype=float)
