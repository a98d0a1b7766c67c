"""Rows: a history frame as plain NumPy columns, cut into groups without pandas' per-group cost.

Publishing 365 nights of 100 cells draws thousands of small groups (a page per cell and per
night, a line per model); pandas' groupby costs milliseconds per group, which alone would
exceed the site's time budget. These are the same rows as NumPy arrays and index lists.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Rows:
    """Columns of equal length, by name."""

    columns: dict[str, np.ndarray]

    @classmethod
    def of(cls, frame: pd.DataFrame) -> "Rows":
        return cls({name: frame[name].to_numpy() for name in frame.columns})

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def __getitem__(self, name: str) -> np.ndarray:
        return self.columns[name]

    def take(self, index: Any) -> "Rows":
        return Rows({name: values[index] for name, values in self.columns.items()})

    def last(self, name: str) -> Any:
        return self.columns[name][-1]

    def first(self, name: str) -> Any:
        return self.columns[name][0]

    def group(self, *names: str) -> Iterator[tuple[Any, "Rows"]]:
        """(key, rows) per distinct value of ``names`` (a tuple key for several), sorted by
        key, rows in their order."""
        keys = list(zip(*(self.columns[n] for n in names)))
        index: dict[tuple, list[int]] = {}
        for i, key in enumerate(keys):
            index.setdefault(key, []).append(i)
        for key in sorted(index, key=_order):
            yield (key if len(names) > 1 else key[0]), self.take(np.array(index[key]))


def _order(key: tuple) -> tuple:
    """Numbers before text, numbers by value (k = 2 before k = 10)."""
    return tuple((0, float(v), "") if isinstance(v, (int, float, np.integer, np.floating))
                 else (1, 0.0, str(v)) for v in key)
