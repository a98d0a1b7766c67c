"""Data named by its recipe: how it was made, the same text on every machine.

Synthetic data: kind, m, n, seed and the spectrum's parameters; a file: its kind, name and size
(``data_id`` in records, what joins use). The exact numbers are named apart by the dataset's
fingerprint, a hash of C that another BLAS or thread count changes. Pure text functions: the
store reads them to upgrade old records without loading any data.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Mapping


def synthetic_recipe(data: Mapping[str, Any]) -> str:
    """Recipe of synthetic data from a config's ``data`` mapping (as a manifest stores it),
    e.g. 'synthetic-linear-m1000-n5000-seed1234-high100-low1' (high None = 0.1 m, as
    lae_core.data.spectrum)."""
    s, m = data["spectrum"], data["m"]
    head = f"synthetic-{s['kind']}-m{m}-n{data['n']}-seed{data['seed']}"
    high = 0.1 * m if s.get("high") is None else s["high"]
    if s["kind"] == "explicit":   # the values themselves are the recipe: hash their text
        text = json.dumps([float(v) for v in s["values"]])
        return f"{head}-values{hashlib.sha1(text.encode()).hexdigest()[:10]}"
    if s["kind"] == "power_law":
        return f"{head}-high{high:g}-alpha{s['alpha']:g}"
    return f"{head}-high{high:g}-low{s['low']:g}"


def file_recipe(kind: str, path: Path, centred: bool = False) -> str:
    """Recipe of data read from a file, e.g. 'mnist-train-images-idx3-ubyte-47040016B'."""
    return f"{kind}-{path.name}-{path.stat().st_size}B" + ("-centred" if centred else "")


def config_recipe(data: Mapping[str, Any], m: int, n: int) -> str | None:
    """The recipe a manifest's data config gives for records of shape (m, n), or None when the
    config cannot say (files: their size is not stored; an old manifest without a spectrum)."""
    if data.get("kind") != "synthetic" or not isinstance(data.get("spectrum"), Mapping):
        return None
    if (data.get("m"), data.get("n")) != (m, n):
        return None
    return synthetic_recipe(data)
