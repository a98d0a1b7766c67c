"""Regression thresholds for ``lae-bench compare``: how much worse a cell may get before it fails.

A thresholds file (YAML, see results/thresholds.yaml)::

    version: 1
    d_align_threshold: 0.3          # which "epochs to d_align <= t" is compared
    default:
      epochs_factor: 1.25           # candidate median epochs > 1.25 x baseline: regression
      time_factor: 1.5              # candidate median epoch time > 1.5 x baseline ...
      alpha: 0.01                   # ... and Mann-Whitney p < 0.01: regression
    overrides:                      # applied in order; a later match wins
      - {model: nd, optimizer: adam, k: [2, 5], time_factor: 2.0}
      - {k_max: 5, time_factor: 2.0}  # every cell with k <= 5

Every factor also defines the improvement bound (better than 1 / factor). Keys left out take
the built-in defaults below, so a file may hold only its overrides.
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import yaml

from lae_core.objectives import MODELS
from lae_core.optim import OPTIMIZERS

from ..errors import UsageError

FILE_VERSION = 1
TOP_LEVEL_KEYS = ("version", "d_align_threshold", "default", "overrides")
MATCH_KEYS = ("model", "optimizer", "k", "k_max")


@dataclass(frozen=True)
class Limits:
    """Allowed change of one cell before it counts as a regression (or an improvement)."""

    epochs_factor: float = 1.25
    time_factor: float = 1.5
    alpha: float = 0.01


LIMIT_KEYS = tuple(f.name for f in fields(Limits))


@dataclass(frozen=True)
class Override:
    """Limits for the cells whose model, optimizer and k match (None matches anything).

    ks: the k listed; k_max: every k up to it."""

    model: str | None
    optimizer: str | None
    ks: tuple[int, ...] | None
    changes: dict[str, float]
    k_max: int | None = None

    def matches(self, model: str, optimizer: str, k: int) -> bool:
        return ((self.model is None or self.model == model)
                and (self.optimizer is None or self.optimizer == optimizer)
                and (self.ks is None or k in self.ks)
                and (self.k_max is None or k <= self.k_max))


@dataclass(frozen=True)
class Thresholds:
    """The default limits, the d_align level compared, and per-cell overrides."""

    d_align_threshold: float = 0.3
    default: Limits = Limits()
    overrides: tuple[Override, ...] = ()
    source: str = "built-in defaults"

    def for_cell(self, model: str, optimizer: str, k: int) -> Limits:
        """The limits of one cell: the default, updated by every matching override in order."""
        limits = self.default
        for override in self.overrides:
            if override.matches(model, optimizer, k):
                limits = replace(limits, **override.changes)
        return limits


def load_thresholds(path: str | Path | None = None) -> Thresholds:
    """Read and validate a thresholds file; None gives the built-in defaults.

    Raises UsageError with one line naming the key, the value and what is allowed.
    """
    if path is None:
        return Thresholds()
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"--thresholds: {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise UsageError(f"--thresholds: {path} is not valid YAML ({exc})".replace("\n", " ")
                         ) from None
    return parse_thresholds(raw, source=str(path))


def parse_thresholds(raw: Any, source: str = "thresholds") -> Thresholds:
    """Validate the mapping read from a thresholds file (see the module docstring)."""
    _require_mapping(raw, source, TOP_LEVEL_KEYS)
    version = raw.get("version", FILE_VERSION)
    if version != FILE_VERSION:
        raise UsageError(f"{source}: version: {version!r} is not {FILE_VERSION}")
    level = _number(raw.get("d_align_threshold", Thresholds.d_align_threshold),
                    f"{source}: d_align_threshold", low=0.0, high=1.0,
                    allowed="a number in (0, 1)")
    default = replace(Limits(), **_limit_values(raw.get("default") or {}, f"{source}: default",
                                                LIMIT_KEYS))
    overrides = raw.get("overrides") or []
    if not isinstance(overrides, list):
        raise UsageError(f"{source}: overrides: {overrides!r} is not a list of mappings")
    return Thresholds(level, default, tuple(_override(item, f"{source}: overrides[{i}]")
                                            for i, item in enumerate(overrides)), source)


def _override(item: Any, where: str) -> Override:
    _require_mapping(item, where, MATCH_KEYS + LIMIT_KEYS)
    model, optimizer, ks = item.get("model"), item.get("optimizer"), item.get("k")
    if model is not None and model not in MODELS:
        raise UsageError(f"{where}.model: {model!r} is not one of {', '.join(MODELS)}")
    if optimizer is not None and optimizer not in OPTIMIZERS:
        raise UsageError(f"{where}.optimizer: {optimizer!r} is not one of "
                         f"{', '.join(OPTIMIZERS)}")
    if ks is not None:
        ks = ks if isinstance(ks, list) else [ks]
        if not ks or not all(map(_positive_int, ks)):
            raise UsageError(f"{where}.k: {item['k']!r} is not a positive integer or a list "
                             "of them")
        ks = tuple(ks)
    k_max = item.get("k_max")
    if k_max is not None and not _positive_int(k_max):
        raise UsageError(f"{where}.k_max: {k_max!r} is not a positive integer")
    changes = _limit_values({key: v for key, v in item.items() if key in LIMIT_KEYS}, where,
                            LIMIT_KEYS)
    if not changes:
        raise UsageError(f"{where}: sets no limit (allowed: {', '.join(LIMIT_KEYS)})")
    return Override(model, optimizer, ks, changes, k_max)


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _limit_values(raw: Any, where: str, allowed: tuple[str, ...]) -> dict[str, float]:
    """Validated limit values: factors >= 1 (1 = no change allowed), alpha in (0, 1)."""
    _require_mapping(raw, where, allowed)
    out = {}
    for key, value in raw.items():
        if key == "alpha":
            out[key] = _number(value, f"{where}.alpha", low=0.0, high=1.0,
                               allowed="a number in (0, 1)")
        else:
            out[key] = _number(value, f"{where}.{key}", low=1.0, high=None,
                               allowed="a number >= 1", low_inclusive=True)
    return out


def _require_mapping(raw: Any, where: str, allowed: tuple[str, ...]) -> None:
    if not isinstance(raw, dict):
        raise UsageError(f"{where}: {raw!r} is not a mapping (allowed keys: "
                         f"{', '.join(allowed)})")
    unknown = [key for key in raw if key not in allowed]
    if unknown:
        raise UsageError(f"{where}: unknown key {unknown[0]!r} (allowed: {', '.join(allowed)})")


def _number(value: Any, where: str, *, low: float, high: float | None, allowed: str,
            low_inclusive: bool = False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok:
        above = value >= low if low_inclusive else value > low
        ok = above and (high is None or value < high)
    if not ok:
        raise UsageError(f"{where}: {value!r} is not {allowed}")
    return float(value)
