"""tune treats divergence as failure, reports the runner-up and warns at a grid edge; it
requires its target."""
from __future__ import annotations

from json import loads
from types import SimpleNamespace

import numpy as np
import pytest

from lae_core import Schedule, synthetic
from bench.perf.tune import best_rate, describe, grid_edge, score_rate, tune_cell
from bench.cli import main
from bench.sweep.lr_table import load_table

from ..helpers import write_config

INF = np.inf


def runs(*outcomes):
    """Fake runs: an int = reached after that many epochs, None = capped, "x" = diverged."""
    return [SimpleNamespace(status="diverged" if o == "x" else "reached" if o else "capped",
                            epochs_to={0.3: None if o in (None, "x") else o},
                            final={"d_align": 0.2 if o else 0.9}) for o in outcomes]


def test_a_rate_where_any_seed_diverges_is_not_chosen():
    # the old rule dropped the diverged seed and chose 0.1 ("median 20 epochs")
    scores = [score_rate(0.01, runs(100, 120, 110), 0.3), score_rate(0.1, runs("x", 20, 20), 0.3)]
    assert scores[1].diverged == 1
    assert best_rate(scores) == (0.01, True)
    assert best_rate(scores, allow_divergence=True) == (0.1, True)


def test_diverged_seeds_count_as_not_reached_in_the_median():
    assert score_rate(0.1, runs("x", "x", 20), 0.3).median_epochs == INF
    assert score_rate(0.1, runs(10, 30), 0.3).median_epochs == 20      # midpoint rule


@pytest.fixture(scope="module")
def data():
    return synthetic(m=12, n=200, seed=5, high=4.0, low=0.5)


def test_runner_up_and_grid_edge_warning(data):
    grid = [3e-3, 1e-2, 3e-2]     # gradient descent: faster the larger the rate, up to 0.1
    result = tune_cell(data, "uniform_sum", "gd", 2, grid, [1, 2], backend="numpy",
                       schedule=Schedule(thresholds=(0.3,), max_epochs=4000, eval_every=10),
                       hyperparameters={"lam": 0.01})
    assert (result.best_lr, result.runner_up, result.edge) == (3e-2, 1e-2, "highest")
    line = describe(result, 0.3)
    assert "runner-up lr=0.01" in line and "WARNING: the highest rate of the grid" in line


def test_grid_edges():
    assert [grid_edge(lr, [1, 2, 3]) for lr in (1, 2, 3)] == ["lowest", None, "highest"]


def test_no_usable_rate_is_said():
    scores = [score_rate(lr, runs("x", 10), 0.3) for lr in (0.1, 1.0)]
    assert best_rate(scores) == (0.1, False)


def test_tune_requires_its_target(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["tune"])
    assert exit_.value.code == 2
    assert "required: PRESET|CONFIG.yaml" in capsys.readouterr().err


def test_tune_tunes_the_cells_a_run_would_train(tmp_path):
    """k_max holds in tune as in a run: nd stops at its k_max, the other models go on."""
    config = write_config(tmp_path / "c.yaml", models=["nd", "rotation"],
                          optimizers=["sgd_nesterov"], k=[2, 4], k_max={"nd": 2}, seeds=[0],
                          max_epochs=20)
    code = main(["tune", str(config), "--grid", "1e-4:1e-3:2", "--out",
                 str(tmp_path / "rates.yaml")])
    assert code == 0
    tuned = load_table(tmp_path / "rates.yaml")
    assert sorted((row["model"], row["k"]) for row in tuned.rows()) == [
        ("nd", 2), ("rotation", 2), ("rotation", 4)]
    ran = {(r["model"], r["k"]) for r in loads((tmp_path / "rates.scores.json").read_text())}
    assert ran == {("nd", 2), ("rotation", 2), ("rotation", 4)}
