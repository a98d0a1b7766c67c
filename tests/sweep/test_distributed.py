"""Sweeps as Dask tasks (``--scheduler``): the same records as the serial run, resume across
schedulers, a killed worker, stop_on_failure per curve, Ctrl-C, and one-line refusals."""
from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from bench.sweep.config import load_config, parse_config
from bench.sweep.cells import curves
from bench.sweep.store import load_manifest
from bench.errors import UsageError

from ..helpers import cli, records, smoke_config, write_config

distributed = pytest.importorskip("distributed")   # the `distributed` extra (in `test` too)

import bench.sweep.distributed as dist  # noqa: E402  (after the skip: it needs no Dask itself)

ROOT = Path(__file__).resolve().parents[2]


def outcome(run_dir: Path) -> dict[str, tuple]:
    """What must not depend on the scheduler: each run's status, epochs and epochs-to."""
    return {r["key"]: (r["status"], r["epochs"], r["epochs_to"]) for r in records(run_dir)}


def curve_rates(path: Path, **rates: float) -> str:
    """A learning-rate table file: model -> its Nesterov rate."""
    path.write_text("".join(f"{model}: {{sgd_nesterov: {lr}}}\n" for model, lr in rates.items()))
    return str(path)


@pytest.fixture(scope="module")
def cluster():
    """A running 2-process cluster (what tcp://HOST:PORT connects to) and a client of it."""
    with dist.spawned_worker_threads(1):    # restores this process's environment afterwards
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                      dashboard_address=":0",
                                      silence_logs=logging.ERROR) as local:
            with distributed.Client(local, set_as_default=False) as client:
                yield local.scheduler_address, client


# --- refusals: one line, exit code 2 ------------------------------------------------------------

@pytest.mark.parametrize("spec", ["local:0", "local:two", "local", "gpu", "tcp://host",
                                  "tcp://host:99999", "http://host:8786", ""])
def test_bad_scheduler_specs_exit_2(tmp_path, spec):
    code, _, err = cli("run", "smoke", "--out", tmp_path / "run", "--scheduler", spec)
    assert code == 2 and err.count("\n") == 1 and "scheduler" in err and "local:N" in err
    assert not (tmp_path / "run").exists()


def test_scheduler_in_yaml_is_checked_and_not_part_of_the_sweep(tmp_path):
    with pytest.raises(UsageError, match="scheduler: 2 is not allowed"):
        parse_config({**smoke_config(), "scheduler": 2}, name="x")
    plain = load_config(str(write_config(tmp_path / "a.yaml")))
    local = load_config(str(write_config(tmp_path / "b.yaml", scheduler="local:2")))
    remote = load_config(str(write_config(tmp_path / "c.yaml")),
                         {"scheduler": "tcp://[::1]:8786"})
    assert local.scheduler == "local:2" and remote.scheduler == "tcp://[::1]:8786"
    assert plain.hash == local.hash == remote.hash and "scheduler" not in local.to_dict()


def test_missing_extra_is_one_line_exit_2(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)   # import distributed fails
    code, _, err = cli("run", "smoke", "--out", tmp_path / "run", "--scheduler", "local:2")
    assert code == 2 and err.count("\n") == 1 and "lae-bench[distributed]" in err


def test_cuda_without_dask_cuda_or_gpu_is_one_line_exit_2(tmp_path):
    code, _, err = cli("run", "smoke", "--out", tmp_path / "run", "--scheduler", "cuda")
    assert code == 2 and err.count("\n") == 1 and "cuda" in err


def test_unreachable_address_is_one_line_exit_2(tmp_path, monkeypatch):
    monkeypatch.setattr(dist, "CONNECT_TIMEOUT_S", 1.0)
    with socket.socket() as s:       # a port nobody listens on once the socket is closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, _, err = cli("run", "smoke", "--out", tmp_path / "run", "--scheduler",
                       f"tcp://127.0.0.1:{port}")
    assert code == 2 and err.count("\n") == 1 and "cannot reach" in err


def test_worker_threads_never_oversubscribe():
    assert [dist.worker_threads(n, 2) for n in (1, 2, 3)] == [2, 1, 1]
    assert dist.worker_threads(4, 16) == 4 and dist.worker_threads(3, 16) == 5


def test_the_serial_path_never_imports_dask():
    script = ("import sys; from bench.cli import build_parser; build_parser(); "
              "import bench.sweep.distributed; "
              "print(sorted({m.split('.')[0] for m in sys.modules} & {'dask', 'distributed'}))")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.stdout.strip() == "[]", done.stderr


# --- on a cluster -------------------------------------------------------------------------------

@pytest.mark.slow
def test_a_cluster_gives_the_serial_records_and_resumes_either_way(cluster, smoke_run,
                                                                  tmp_path):
    serial_dir = smoke_run[0]
    run_dir = tmp_path / "run"
    shutil.copytree(serial_dir, run_dir)
    dropped = [p for p in run_dir.glob("records/*.json")
               if "__k4__" in p.name or "rotation__adam__k2" in p.name and "seed1" in p.name]
    kept = {p.name: p.stat().st_mtime_ns for p in run_dir.glob("records/*.json")
            if p not in dropped}
    for path in dropped:       # the serial run stopped part-way, one cell half done
        path.unlink()
    code, _, err = cli("run", "smoke", "--out", run_dir, "--scheduler", cluster[0])
    assert code == 0, err
    assert outcome(run_dir) == outcome(serial_dir)
    assert {p.name: p.stat().st_mtime_ns for p in run_dir.glob("records/*.json")
            if p.name in kept} == kept
    assert f"{len(dropped)} runs" in err and not list(run_dir.glob("records/.*.tmp"))
    session = load_manifest(run_dir)["sessions"][-1]
    assert session["scheduler"] == cluster[0] and len(session["workers"]) == 2
    assert {w["host"] for w in session["workers"].values()} == {socket.gethostname()}
    for path in dropped[:3]:   # and a serial run resumes what the cluster wrote
        path.unlink()
    code, _, err = cli("run", "smoke", "--out", run_dir, "--quiet")
    assert code == 0 and outcome(run_dir) == outcome(serial_dir)
    assert load_manifest(run_dir)["sessions"][-1]["scheduler"] == "in-process"


def test_the_environment_of_this_process_is_restored():
    before = dict(os.environ)
    with dist.spawned_worker_threads(1):
        os.environ["MALLOC_TRIM_THRESHOLD_"] = "1"     # as a Nanny does at each spawn
        assert os.environ["NUMBA_NUM_THREADS"] == "1"
    assert dict(os.environ) == before


@pytest.mark.slow
def test_a_failing_curve_skips_its_larger_k_and_others_go_on(cluster, tmp_path):
    address, _ = cluster
    config = write_config(tmp_path / "stop.yaml", models=["rotation", "non_uniform_sum"],
                          optimizers=["sgd_nesterov"], k=[2, 3, 4], max_epochs=300,
                          stop_on_failure=True,
                          lr=curve_rates(tmp_path / "rates.yaml", rotation=1e-9,
                                         non_uniform_sum=1e-3))
    code, out, err = cli("run", config, "--out", tmp_path / "run", "--scheduler", address)
    assert code == 0, err
    # rotation never reaches at lr 1e-9: fails at k=2; non_uniform_sum reaches at 2, not at 3
    assert sorted({(r["model"], r["k"]) for r in records(tmp_path / "run")}) == \
        [("non_uniform_sum", 2), ("non_uniform_sum", 3), ("rotation", 2)]
    assert "rotation/sgd_nesterov k=3: skipped" in err and "3 cells skipped" in err
    assert next(line for line in out.splitlines() if line.startswith("rotation")).split()[3:] \
        == ["fails", "fails"]


@pytest.mark.slow
def test_a_killed_worker_loses_and_duplicates_nothing(cluster, tmp_path):
    address, client = cluster
    # nd at lr 1e-9 runs to its cap, seconds per cell: long enough to be killed mid-task
    config = write_config(tmp_path / "kill.yaml", models=["nd", "non_uniform_sum"],
                          optimizers=["sgd_nesterov"], k=[2, 4], max_epochs=4000,
                          lr=curve_rates(tmp_path / "rates.yaml", nd=1e-9,
                                         non_uniform_sum=1e-3))
    run_dir = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "bench", "run", str(config), "--out",
                             str(run_dir), "--scheduler", address], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        worker, key = _wait_for_task(client, "cell-nd-", proc)
        pid = client.run(os.getpid, workers=[worker])[worker]
        assert not list(run_dir.glob("records/nd__*.json"))
        os.kill(pid, signal.SIGKILL)
    finally:
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert len(records(run_dir)) == 8 and "8 runs" in err and "error" not in err
    assert {r["status"] for r in records(run_dir) if r["model"] == "nd"} == {"capped"}
    for label in ("nd/sgd_nesterov k=2:", "nd/sgd_nesterov k=4:",
                  "non_uniform_sum/sgd_nesterov k=2:", "non_uniform_sum/sgd_nesterov k=4:"):
        assert err.count(label) == 1       # each cell stored once


def _wait_for_task(client, prefix: str, proc, timeout: float = 90.0) -> tuple[str, str]:
    """(worker, key) of the first task whose key starts with ``prefix`` while it runs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the sweep ended before a worker could be killed"
        for worker, keys in client.processing().items():
            running = [k for k in keys if str(k).startswith(prefix)]
            if running:
                return worker, running[0]
        time.sleep(0.05)
    raise AssertionError(f"no task {prefix}* ran within {timeout} s")


def test_a_task_whose_workers_keep_dying_becomes_error_records(tmp_path):
    from bench.sweep.progress import Progress
    from bench.sweep.runner import Outcome, Sweep

    class Lost:                      # a future after the last allowed worker death
        status = "error"

        def result(self):
            last = SimpleNamespace(address="tcp://127.0.0.1:1")
            raise distributed.KilledWorker("cell-x", last, 2)

    config = load_config(str(write_config(tmp_path / "c.yaml")))
    sweep, outcome = Sweep(config, tmp_path / "run"), Outcome()
    cell = curves(config)[0][0]
    task = dist.Task(dist.CurveQueue(sweep, []), cell, [0, 1], [])
    new = dist.store_results(sweep, task, Lost(), outcome, Progress(1, 10, quiet=True))
    assert [r.status for r in new] == ["error", "error"] and outcome.errors == 2
    stored = [json.loads(f.read_text()) for f in (tmp_path / "run").glob("records/*.json")]
    assert len(stored) == 2 and {r["error"].split(":")[0] for r in stored} == {"KilledWorker"}


def test_tasks_cancelled_under_the_sweep_stop_it_without_records(tmp_path):
    from bench.sweep.progress import Progress
    from bench.sweep.runner import Outcome, Sweep

    class Cancelled:                 # what the futures become when the scheduler goes away
        status = "cancelled"

        def result(self):
            raise distributed.client.FutureCancelledError("cell-x", "scheduler-connection-lost")

    config = load_config(str(write_config(tmp_path / "c.yaml")), {"scheduler": "tcp://h:1"})
    sweep = Sweep(config, tmp_path / "run")
    task = dist.Task(dist.CurveQueue(sweep, []), curves(config)[0][0], [0, 1], [])
    with pytest.raises(dist.ClusterLost, match="scheduler-connection-lost.*rerun to resume"):
        dist.store_results(sweep, task, Cancelled(), Outcome(), Progress(1, 10, quiet=True))
    assert not list(tmp_path.glob("run/records/*"))


@pytest.mark.slow
def test_local_n_starts_a_cluster_and_ctrl_c_closes_it_keeping_whole_records(tmp_path):
    psutil = pytest.importorskip("psutil")     # a dependency of distributed
    # the nd curve (lr 1e-9: never reaches) would run to a 10^8 cap: only the signal ends it
    config = write_config(tmp_path / "int.yaml", models=["nd", "non_uniform_sum"],
                          optimizers=["sgd_nesterov"], k=[2], max_epochs=10**8,
                          lr=curve_rates(tmp_path / "rates.yaml", nd=1e-9,
                                         non_uniform_sum=1e-3))
    run_dir = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "bench", "run", str(config), "--out",
                             str(run_dir), "--quiet", "--scheduler", "local:2"], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        while len(list(run_dir.glob("records/*.json"))) < 2:   # the fast curve is done
            assert proc.poll() is None and time.monotonic() < deadline, "no record appeared"
            time.sleep(0.05)
        workers = psutil.Process(proc.pid).children(recursive=True)
        os.kill(proc.pid, signal.SIGINT)
    finally:
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "rerun to resume" in err and err.count("\n") == 1, err
    assert {r["model"] for r in records(run_dir)} == {"non_uniform_sum"}
    assert not list(run_dir.glob("records/.*.tmp"))
    assert workers and not psutil.wait_procs(workers, timeout=10)[1]   # none left alive
    session = load_manifest(run_dir)["sessions"][-1]
    assert session["scheduler"] == "local:2" and len(session["workers"]) == 2
    threads = str(dist.worker_threads(2, dist.usable_cores()))   # 2 x threads <= cores
    assert [w["blas"]["thread_variables"]["OPENBLAS_NUM_THREADS"]
            for w in session["workers"].values()] == [threads, threads]


def test_the_longest_curves_go_first(tmp_path):
    # Adam trains on the covariance (a 2k x m by m x m product an epoch), Nesterov on the
    # spectrum (k x m by m x k): with the curve stopped cell by cell, a curve's next cell
    # carries the work of the whole rest of its curve
    config = parse_config(smoke_config(models=["rotation"], optimizers=["sgd_nesterov", "adam"],
                                       k=[2, 4], stop_on_failure=True), name="t")
    sweep = dist.Sweep(config, tmp_path / "run")
    queues = {curve[0].optimizer: dist.CurveQueue(sweep, list(curve))
              for curve in curves(config) if curve}
    first = {name: q.cells.pop(0) for name, q in queues.items()}
    adam, nesterov = (queues[o].priority(first[o]) for o in ("adam", "sgd_nesterov"))
    assert adam > nesterov
    later = queues["adam"].cells.pop(0)
    assert adam > queues["adam"].priority(later)      # less work left once k = 2 is done
