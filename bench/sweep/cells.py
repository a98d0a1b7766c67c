"""A sweep's cells: the one iterator over them (``curves``) and the values a cell resolves to.

A cell is one (model, optimizer, k) of a sweep with its learning rate, its formulation and its
schedule, all settled from the config alone (``Cell``), so that every loop over a sweep (the
serial runner, the Dask scheduler, ``tune``, ``--estimate``) sees the same cells, ``k_max``
honoured. What needs the data, the hyperparameters and (with ``backend: auto`` on a GPU) the
namespace that trains the cell, is settled once per training by ``CellTrainer.resolve`` into
a ``ResolvedCell``; the split keeps a finished sweep's rerun from loading its data.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from lae_core import Schedule, choose_formulation

from .config import SweepConfig
from .store import record_key


@dataclass(frozen=True)
class Cell:
    """One (model, optimizer, k) of a sweep: its rate, formulation and schedule."""

    model: str
    optimizer: str
    k: int
    lr: float
    formulation: str        # choose_formulation's answer for the config's request
    schedule: Schedule      # thresholds, max_epochs, eval_every and history of every run

    @property
    def label(self) -> str:
        return f"{self.model}/{self.optimizer} k={self.k}"

    def key(self, seed: int) -> str:
        return record_key(self.model, self.optimizer, self.k, self.lr, seed)


@dataclass(frozen=True)
class ResolvedCell:
    """A cell with what its training needs from the data: the namespace that trains it
    (``backend``: 'numpy', 'cupy', ...) and its hyperparameters."""

    cell: Cell
    backend: str
    hyperparameters: Mapping[str, Any]


def curves(config: SweepConfig) -> list[list[Cell]]:
    """The cells of each (model, optimizer) curve of ``config``, k ascending (as
    stop_on_failure needs), only the k up to a model's ``k_max``."""
    return [[cell(config, model, optimizer, k) for k in config.ks_for(model)]
            for model in config.models for optimizer in config.optimizers]


def cell(config: SweepConfig, model: str, optimizer: str, k: int) -> Cell:
    """The cell (model, optimizer, k) of ``config``."""
    return Cell(model, optimizer, k, config.lr.lookup(model, optimizer, k),
                choose_formulation(model, optimizer, config.formulation), config.schedule)
