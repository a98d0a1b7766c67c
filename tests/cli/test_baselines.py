"""The PCA learners in the harness (sweep, table, plots, tune) and the ``hessian`` verb."""
from __future__ import annotations

import contextlib
import io
import json

import pytest
import yaml

from bench.cli import main
from bench.sweep.config import load_config
from bench.sweep.lr_table import PAPER_K
from lae_core.learners import LEARNERS

from ..helpers import cli, records, write_config

LEARNER_GRID = dict(models=list(LEARNERS), optimizers=["sgd_nesterov"], k=[2, 4],
                    seeds=[0, 1], thresholds=[0.3], max_epochs=1500)


def test_the_baselines_preset_sets_learners_beside_the_laes():
    config = load_config("baselines")
    assert set(LEARNERS) <= set(config.models) and "rotation" in config.models
    assert config.k == PAPER_K and len(config.seeds) == 3
    for model in config.models:
        assert config.lr.lookup(model, "sgd_nesterov", 500) > 0


@pytest.fixture(scope="module")
def learner_run(tmp_path_factory):
    """A finished sweep of every learner at k = 2, 4 on the smoke data."""
    root = tmp_path_factory.mktemp("learners")
    config = write_config(root / "learners.yaml", **LEARNER_GRID)
    code, out, err = cli("run", config, "--out", root / "run", "-q")
    assert code == 0, err
    return root / "run", out


def test_learners_run_as_models_and_eigh_reaches_at_epoch_zero(learner_run):
    run_dir, table = learner_run
    by_model = {}
    for r in records(run_dir):
        by_model.setdefault(r["model"], []).append(r)
    assert all(r["epochs_to"]["0.3"] == 0 and r["status"] == "reached"
               for r in by_model["eigh"])
    for model in ("gha", "eigengame"):
        assert all(r["status"] == "reached" for r in by_model[model])
    # Oja's rule recovers the subspace: at k = 4 d_sub converges while d_align does not
    oja = [r for r in by_model["oja"] if r["k"] == 4]
    assert all(r["status"] == "capped" and r["final"]["d_sub"] < 1e-6
               and r["final"]["d_align"] > 0.3 for r in oja)
    assert "eigh" in table and "gha" in table
    assert "final d_sub (median over seeds)" in table


def test_plots_draw_a_closed_form_curve_as_a_legend_entry(learner_run, tmp_path):
    run_dir, _ = learner_run
    code, out, err = cli("plot", run_dir, "--out", tmp_path, "--fit")
    assert code == 0, err
    assert (tmp_path / "figure4_scaling.png").is_file()


def test_tune_chooses_rates_for_a_learner(tmp_path):
    config = write_config(tmp_path / "tune.yaml", models=["gha", "eigh"],
                          optimizers=["sgd_nesterov"],
                          k=[2], seeds=[0], thresholds=[0.3], max_epochs=1500)
    code, out, err = cli("tune", config, "--grid", "1e-4:1e-2:3", "--out",
                         tmp_path / "rates.yaml")
    assert code == 0, err
    assert {"gha", "eigh"} <= set(yaml.safe_load((tmp_path / "rates.yaml").read_text()))
    scores = json.loads((tmp_path / "rates.scores.json").read_text())
    assert all(s["reached"] for s in scores)    # eigh too: it starts at the answer


def test_hessian_verb_writes_the_table_plot_and_slopes(learner_run, tmp_path):
    run_dir, _ = learner_run
    code, out, err = cli("hessian", "smoke", "--k", "2,3", "--budget", "20", "--runs",
                         run_dir, "--out", tmp_path, "--models", "non_uniform_sum,nd_exp")
    assert code == 0, err
    assert "within a 20 s budget" in out and "gha/sgd_nesterov" in out
    payload = json.loads((tmp_path / "hessian.json").read_text())
    rows = payload["rows"]
    assert len(rows) == 4 and all(r["lanczos"] == "exact" for r in rows)
    assert all(r["bound"] <= r["exact"] for r in rows)
    # the bound grows with k for non_uniform_sum; for nd_exp the smallest rotation quotient is
    # the pair (0, 1) at k = 2 and 3 alike, so the bound is flat there (slope 0 up to rounding)
    assert payload["slopes"]["non_uniform_sum bound"] > 1
    assert abs(payload["slopes"]["nd_exp bound"]) < 1e-9
    assert (tmp_path / "hessian_conditioning.png").is_file()


@pytest.mark.parametrize("argv, says", [
    (["--k", "1,2"], "every k must be an integer >= 2"),
    (["--k", "two"], "not a comma-separated list"),
    (["--models", "vae"], "--models: 'vae' is not allowed"),
    (["--budget", "-3"], "not a positive number of seconds"),
    (["--k", "2,999"], "--k: [2, 999] must lie in 2..m = 50"),
])
def test_hessian_bad_input_is_one_line_and_exit_2(argv, says, tmp_path):
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        try:                    # argparse's own errors leave through SystemExit(2)
            code = main(["hessian", "smoke", "--out", str(tmp_path), *argv])
        except SystemExit as exc:
            code = exc.code
    err = stderr.getvalue()
    assert code == 2 and says in err and err.count("\n") == 1
