"""End to end through the CLI: smoke, records, resume after a kill, divergence, errors, policy."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import bench.sweep.trainer
from bench.sweep.record import Record
from bench.sweep.store import load_history, load_manifest, records_frame
from lae_core import synthetic

from ..helpers import cli, records, write_config

ROOT = Path(__file__).resolve().parents[2]


def test_smoke_through_the_cli(smoke_run):
    run_dir, code, out = smoke_run
    assert code == 0
    assert len(records(run_dir)) == 3 * 2 * 2 * 2   # models x optimizers x k x seeds
    assert "k=2" in out and "rotation" in out and "per-epoch time" in out
    manifest = load_manifest(run_dir)
    for key in ("run_id", "created_utc", "config", "config_hash", "machine", "gpu", "packages",
                "blas", "git", "sessions"):
        assert key in manifest
    assert manifest["machine"]["cpu_model"] and manifest["packages"]["numpy"]


def test_every_record_round_trips_through_the_schema(smoke_run):
    run_dir = smoke_run[0]
    fingerprint = synthetic(m=50, n=500, seed=1234, high=100.0).fingerprint
    for record in records(run_dir):
        assert Record.from_json(json.loads(json.dumps(record))).to_json() == record
        assert record["data_id"] == "synthetic-linear-m50-n500-seed1234-high100-low1"
        assert record["data_fingerprint"] == fingerprint and record["schema_version"] == 2
        assert record["status"] in ("reached", "capped")
        assert set(record["epochs_to"]) == {"0.5", "0.3"}
        assert record["formulation"] == ("sample" if record["model"] == "nd" else
                                         "spectral" if record["optimizer"] == "sgd_nesterov"
                                         else "covariance")
        assert record["batch_size"] == 2 and record["device"]
    frame = records_frame(run_dir)
    assert len(frame) == 24 and "epochs_to_0.3" in frame and "final_d_align" in frame


def test_rerun_resumes_without_redoing_anything(smoke_run):
    run_dir = smoke_run[0]
    before = {p.name: p.stat().st_mtime_ns for p in (run_dir / "records").iterdir()}
    code, out, err = cli("run", "smoke", "--out", run_dir)
    assert code == 0 and "24 of 24 cells" not in out
    assert "12 of 12 cells already done" in err and "0 runs" in err
    assert {p.name: p.stat().st_mtime_ns for p in (run_dir / "records").iterdir()} == before
    assert len(load_manifest(run_dir)["sessions"]) >= 2


@pytest.mark.slow  # end to end, several seconds; .ci/run runs it
def test_module_entry_point_in_a_subprocess(tmp_path):
    done = subprocess.run([sys.executable, "-m", "bench", "run", "smoke", "--out",
                           str(tmp_path / "run"), "--quiet"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert len(records(tmp_path / "run")) == 24 and "k=4" in done.stdout


@pytest.mark.slow  # end to end, several seconds; .ci/run runs it
@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGINT], ids=["kill", "ctrl-c"])
def test_interrupted_sweep_leaves_whole_records_and_resume_finishes(tmp_path, signum):
    # First curve reaches fast; the second (lr 1e-9: never) runs to a long cap: kill it there.
    # An evaluation every epoch keeps that curve seconds long even with the compiled step (at
    # every 10th, it could end between the test's last look and the signal).
    rates = tmp_path / "rates.yaml"
    rates.write_text("non_uniform_sum: {sgd_nesterov: 1e-3}\nrotation: {sgd_nesterov: 1e-9}\n")
    config = write_config(tmp_path / "kill.yaml", models=["non_uniform_sum", "rotation"],
                          optimizers=["sgd_nesterov"], k=[2], lr=str(rates),
                          max_epochs=40_000, eval_every=1)
    run_dir = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "bench", "run", str(config), "--out",
                             str(run_dir), "--quiet"], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: len(list(run_dir.glob("records/*.json"))) >= 2, proc)
        assert proc.poll() is None, "the sweep ended before it could be interrupted"
        os.kill(proc.pid, signum)
    finally:
        _, err = proc.communicate(timeout=30)
    if signum == signal.SIGINT:
        assert proc.returncode == 130 and "rerun to resume" in err and err.count("\n") == 1
    first = {p.name: p.stat().st_mtime_ns for p in (run_dir / "records").iterdir()}
    assert sorted(first) == sorted(p.name for p in run_dir.glob("records/*.json"))
    assert all(r["model"] == "non_uniform_sum" for r in records(run_dir))
    code, _, err = cli("run", config, "--out", run_dir, "--quiet")
    assert code == 0, err
    after = {p.name: p.stat().st_mtime_ns for p in (run_dir / "records").iterdir()}
    assert len(after) == 4 and all(after[name] == t for name, t in first.items())
    assert {r["status"] for r in records(run_dir) if r["model"] == "rotation"} == {"capped"}


def _wait_for(condition, proc, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None and time.monotonic() < deadline, "no record appeared"
        time.sleep(0.02)


def test_diverging_learning_rate_is_recorded_and_the_sweep_goes_on(tmp_path):
    rates = tmp_path / "rates.csv"
    rates.write_text("model,optimizer,k,lr\nrotation,sgd_nesterov,*,10\n"
                     "non_uniform_sum,sgd_nesterov,*,1e-3\n")
    config = write_config(tmp_path / "div.yaml", models=["rotation", "non_uniform_sum"],
                          optimizers=["sgd_nesterov"], k=[2], lr=str(rates))
    code, out, _ = cli("run", config, "--out", tmp_path / "run", "--quiet")
    assert code == 0
    statuses = {(r["model"], r["status"]) for r in records(tmp_path / "run")}
    assert statuses == {("rotation", "diverged"), ("non_uniform_sum", "reached")}
    assert "diverged" in out


def test_a_failing_cell_is_recorded_as_error_and_retried_on_resume(tmp_path, monkeypatch):
    real = bench.sweep.trainer.run_batch

    def broken_for_nd(dataset, model, *args, **kwargs):
        if model == "nd":
            raise MemoryError("out of memory\nsecond line")
        return real(dataset, model, *args, **kwargs)

    monkeypatch.setattr(bench.sweep.trainer, "run_batch", broken_for_nd)
    config = write_config(tmp_path / "err.yaml", optimizers=["adam"], k=[2])
    code, out, err = cli("run", config, "--out", tmp_path / "run", "--quiet")
    assert code == 1
    errors = [r for r in records(tmp_path / "run") if r["status"] == "error"]
    assert {r["model"] for r in errors} == {"nd"} and len(errors) == 2
    assert errors[0]["error"] == "MemoryError: out of memory second line"
    assert "error" in out and len(records(tmp_path / "run")) == 6
    monkeypatch.setattr(bench.sweep.trainer, "run_batch", real)
    code, _, _ = cli("run", config, "--out", tmp_path / "run", "--quiet")
    assert code == 0 and "error" not in {r["status"] for r in records(tmp_path / "run")}


def test_stop_on_failure_skips_the_rest_of_a_failed_curve(tmp_path):
    config = write_config(tmp_path / "stop.yaml", models=["rotation"], optimizers=["adam"],
                          k=[2, 3, 4], max_epochs=20, stop_on_failure=True)
    code, out, err = cli("run", config, "--out", tmp_path / "run")
    assert code == 0
    assert {r["k"] for r in records(tmp_path / "run")} == {2}
    assert "k=3: skipped" in err and "2 cells skipped" in err
    row = next(line for line in out.splitlines() if line.startswith("rotation"))
    assert row.split()[2:] == [">20", "fails", "fails"]
    out = cli("show", tmp_path / "run", "--threshold", "0.5")[1]  # decided at the headline
    assert next(line for line in out.splitlines() if line.startswith("rotation")).split()[3:] \
        == ["fails", "fails"]


def test_history_side_files(tmp_path):
    config = write_config(tmp_path / "hist.yaml", models=["vae"], optimizers=["adam"], k=[2],
                          max_epochs=50, history=True)
    assert cli("run", config, "--out", tmp_path / "run", "--quiet")[0] == 0
    for record in records(tmp_path / "run"):
        history = load_history(tmp_path / "run", record["history_file"])
        assert history["epoch"][-1] == record["epochs"]
        assert np.all(np.isfinite(history["d_align"]))


def test_an_out_dir_of_another_sweep_is_refused_unless_forced(smoke_run, tmp_path):
    run_dir = tmp_path / "run"
    assert cli("run", "smoke", "--out", run_dir, "--quiet", "--max-epochs", "30",
               "--seeds", "1")[0] == 0
    code, _, err = cli("run", "smoke", "--out", run_dir, "--quiet", "--max-epochs", "40",
                       "--seeds", "1")
    assert code == 2 and "holds another sweep" in err and err.count("\n") == 1
    code, _, _ = cli("run", "smoke", "--out", run_dir, "--quiet", "--max-epochs", "40",
                     "--seeds", "1", "--force-new")
    assert code == 0 and {r["max_epochs"] for r in records(run_dir)} == {40}
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    assert cli("run", "smoke", "--out", tmp_path / "other", "--quiet")[0] == 2


def test_estimate_prints_and_creates_nothing(tmp_path):
    code, out, _ = cli("run", "smoke", "--out", tmp_path / "run", "--estimate")
    assert code == 0 and "estimated cost of smoke" in out and "epoch cap" in out
    assert not (tmp_path / "run").exists()


def test_default_run_dir_is_found_again(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ("run", "smoke", "--quiet", "--max-epochs", "20", "--seeds", "1")
    assert cli(*args)[0] == 0
    (run_dir,) = (tmp_path / "results" / "runs").iterdir()
    assert run_dir.name.startswith("smoke-") and len(records(run_dir)) == 12
    code, _, err = cli(*args[:-1], "1")
    assert code == 0 and list((tmp_path / "results" / "runs").iterdir()) == [run_dir]
