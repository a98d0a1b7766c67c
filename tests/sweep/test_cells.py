"""A sweep's cells: one iterator over them (k_max honoured), each cell settled once from the
config and resolved once per training; the trainer trains with the data it is given and stores
nothing, so a Dask worker needs nothing else."""
from __future__ import annotations

import dataclasses
from collections import Counter

import pytest

import bench.sweep.cells
from bench.sweep.cells import curves
from bench.sweep.config import parse_config
from bench.sweep.dataset import load_dataset
from bench.sweep.runner import Sweep
from bench.sweep.trainer import CellTrainer, sweep_namespace

from ..helpers import smoke_config


def tiny_config(**changes):
    return parse_config(smoke_config(**{"models": ["rotation", "nd"],
                                        "optimizers": ["sgd_nesterov"], "k": [2, 4],
                                        "k_max": {"nd": 2}, "max_epochs": 20, **changes}),
                        name="tiny")


def test_curves_follow_the_grid_and_stop_at_k_max():
    grid = curves(tiny_config())
    assert [[(c.model, c.k) for c in curve] for curve in grid] == [
        [("rotation", 2), ("rotation", 4)], [("nd", 2)]]
    assert {c.formulation for c in grid[1]} == {"sample"}
    assert {c.schedule.max_epochs for curve in grid for c in curve} == {20}


def test_a_cell_is_a_frozen_value():
    cell = curves(tiny_config())[0][0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        cell.lr = 1.0


def test_a_run_settles_and_resolves_each_cell_once(tmp_path, monkeypatch):
    settled, resolved = Counter(), Counter()
    real_formulation, real_resolve = bench.sweep.cells.choose_formulation, CellTrainer.resolve

    def counting_formulation(model, optimizer, requested):
        settled[model, optimizer] += 1
        return real_formulation(model, optimizer, requested)

    def counting_resolve(self, cell):
        resolved[cell.label] += 1
        return real_resolve(self, cell)

    monkeypatch.setattr(bench.sweep.cells, "choose_formulation", counting_formulation)
    monkeypatch.setattr(CellTrainer, "resolve", counting_resolve)
    outcome = Sweep(tiny_config(), tmp_path / "run").run(quiet=True)
    assert len(outcome.written) == 6
    assert settled == {("rotation", "sgd_nesterov"): 2, ("nd", "sgd_nesterov"): 1}
    assert resolved == {"rotation/sgd_nesterov k=2": 1, "rotation/sgd_nesterov k=4": 1,
                        "nd/sgd_nesterov k=2": 1}


def test_the_trainer_trains_with_the_data_it_is_given_and_stores_nothing(tmp_path,
                                                                          monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = tiny_config(models=["rotation"], k=[2], k_max={})
    dataset = load_dataset(config.data, keep_samples=False)
    trainer = CellTrainer(config, dataset, *sweep_namespace(config))
    results = trainer.train(trainer.resolve(curves(config)[0][0]), [0, 1])
    assert trainer.dataset is dataset
    assert [(r.seed, r.m, r.max_epochs) for r, _ in results] == [(0, 50, 20), (1, 50, 20)]
    assert list(tmp_path.iterdir()) == []
