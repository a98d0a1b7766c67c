"""Regression thresholds for ``lae-bench compare``: how much worse a cell may get before it fails.

A thresholds file (YAML, see results/thresholds.yaml)::

    version: 1
    d_align_threshold: 0.3          # which "epochs to d_align <= t" is compared
    default:
      epochs_factor: 1.25           # candidate median epochs > 1.25 x baseline: regression
      time_factor: 1.5              # candidate median epoch time > 1.5 x baseline ...
      alpha: 0.01                   # ... and Mann-Whitney p < 0.01: regression
      reference_factor: 1.25        # same-run reference products further apart: not judged
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

from lae_core.objectives import ALL_MODELS
from lae_core.optim import OPTIMIZERS

from ..errors import UsageError
from ..validate import bad, choice, integer, items, mapping, number, read_yaml_file

FILE_VERSION = 1
TOP_LEVEL_KEYS = ("version", "d_align_threshold", "default", "overrides")
MATCH_KEYS = ("model", "optimizer", "k", "k_max")


@dataclass(frozen=True)
class Limits:
    """Allowed change of one cell before it counts as a regression (or an improvement)."""

    epochs_factor: float = 1.25
    time_factor: float = 1.5
    alpha: float = 0.01
    reference_factor: float = 1.25   # timing conditions: see bench.analysis.timing


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
    raw = read_yaml_file(Path(path), "--thresholds") or {}
    return parse_thresholds(raw, source=str(path))


def parse_thresholds(raw: Any, source: str = "thresholds") -> Thresholds:
    """Validate the mapping read from a thresholds file (see the module docstring); errors
    start with ``source``."""
    try:
        return _thresholds(raw, source)
    except UsageError as exc:
        raise UsageError(f"{source}: {exc}") from None


def _thresholds(raw: Any, source: str) -> Thresholds:
    mapping(raw, "", TOP_LEVEL_KEYS)
    version = raw.get("version", FILE_VERSION)
    if version != FILE_VERSION:
        raise bad("version", version, str(FILE_VERSION))
    level = number(raw.get("d_align_threshold", Thresholds.d_align_threshold),
                   "d_align_threshold", lambda x: 0 < x < 1, "a number in (0, 1)")
    default = replace(Limits(), **_limit_values(raw.get("default") or {}, "default"))
    overrides = raw.get("overrides") or []
    if not isinstance(overrides, list):
        raise bad("overrides", overrides, "a list of mappings")
    return Thresholds(level, default, tuple(_override(item, f"overrides[{i}]")
                                            for i, item in enumerate(overrides)), source)


def _override(item: Any, where: str) -> Override:
    mapping(item, where, MATCH_KEYS + LIMIT_KEYS)
    model, optimizer = item.get("model"), item.get("optimizer")
    if model is not None:
        choice(model, f"{where}.model", ALL_MODELS)
    if optimizer is not None:
        choice(optimizer, f"{where}.optimizer", OPTIMIZERS)
    ks = item.get("k")   # one k or a list of them
    if isinstance(ks, list):
        ks = items(ks, f"{where}.k", lambda v, p: integer(v, p, 1))
    elif ks is not None:
        ks = (integer(ks, f"{where}.k", 1),)
    k_max = item.get("k_max")
    if k_max is not None:
        k_max = integer(k_max, f"{where}.k_max", 1)
    changes = _limit_values({key: v for key, v in item.items() if key in LIMIT_KEYS}, where)
    if not changes:
        raise UsageError(f"{where}: sets no limit (allowed: {', '.join(LIMIT_KEYS)})")
    return Override(model, optimizer, ks, changes, k_max)


def _limit_values(raw: Any, where: str) -> dict[str, float]:
    """Validated limit values: factors >= 1 (1 = no change allowed), alpha in (0, 1)."""
    mapping(raw, where, LIMIT_KEYS)
    return {key: (number(value, f"{where}.{key}", lambda x: 0 < x < 1, "a number in (0, 1)")
                  if key == "alpha" else
                  number(value, f"{where}.{key}", lambda x: x >= 1, "a number >= 1"))
            for key, value in raw.items()}
