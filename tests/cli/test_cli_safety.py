"""What a CI job relies on from the command line: one run per run
directory, one-line errors for output paths, SIGTERM handled like Ctrl-C, a bare command
that prints its usage."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.cli import EPILOG, main
from bench.sweep.lock import acquire, lock_path, read_lock, release

from ..helpers import cli, write_config

ROOT = Path(__file__).resolve().parents[2]


def write_lock(run_dir: Path, pid: int) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    lock_path(run_dir).write_text(json.dumps({"pid": pid, "host": socket.gethostname(),
                                              "since_utc": "2026-11-27T00:00:00Z"}))


@pytest.fixture
def sleeper():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc
    proc.kill()
    proc.wait()


def test_a_second_run_on_a_held_directory_is_refused_with_the_holders_pid(tmp_path, sleeper):
    run_dir = tmp_path / "run"
    write_lock(run_dir, sleeper.pid)
    code, _, err = cli("run", "smoke", "--out", run_dir, "--quiet")
    assert code == 2 and f"pid {sleeper.pid}" in err and len(err.strip().splitlines()) == 1
    assert not (run_dir / "records").exists()           # nothing ran
    assert read_lock(run_dir)["pid"] == sleeper.pid      # and the holder keeps its lock


def test_a_stale_lock_of_a_dead_process_is_taken_over(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    run_dir = tmp_path / "run"
    write_lock(run_dir, dead.pid)
    code, _, _ = cli("run", write_config(tmp_path / "tiny.yaml", models=["rotation"],
                                         optimizers=["sgd_nesterov"], k=[2], max_epochs=50),
                     "--out", run_dir, "--quiet")
    assert code == 0 and any((run_dir / "records").iterdir())
    assert read_lock(run_dir) is None                    # released at the end


def test_the_lock_is_exclusive_and_released(tmp_path):
    path = acquire(tmp_path / "run")
    assert read_lock(tmp_path / "run")["pid"] == os.getpid() and path.exists()
    release(tmp_path / "run")
    assert not path.exists()


@pytest.mark.parametrize("argv", [
    ["run", "smoke", "--out", "{file}/sub"],
    ["run", "smoke", "--out", "/proc/lae-bench-test"],
    ["report", "{run}", "--out", "{file}/x.html"],
    ["plot", "{run}", "--out", "{file}/plots"],
    ["compare", "{run}", "{run}", "--export-gab", "{file}/gab.json"],
])
def test_output_paths_that_cannot_be_created_are_one_line_errors(tmp_path, smoke_run, argv):
    afile = tmp_path / "afile"
    afile.write_text("not a directory")
    code, _, err = cli(*[a.format(file=afile, run=smoke_run[0]) for a in argv])
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and err.startswith("lae-bench: error: --")
    assert "Error" not in err                            # no raw exception names


def test_a_concurrent_run_is_refused_and_sigterm_is_handled_like_ctrl_c(tmp_path):
    run_dir = tmp_path / "run"
    config = write_config(tmp_path / "long.yaml", models=["rotation"], optimizers=["sgd_nesterov"],
                          k=[2, 3, 4, 5, 6, 7, 8], max_epochs=10**8, thresholds=[0.01])
    proc = subprocess.Popen([sys.executable, "-m", "bench", "run", str(config), "--out",
                             str(run_dir), "--quiet"], cwd=ROOT, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.time() + 60
    while read_lock(run_dir) is None and time.time() < deadline:   # the sweep has started
        time.sleep(0.1)
    # a second run on the same directory, while the first one trains: refused
    code, _, err = cli("run", config, "--out", run_dir, "--quiet")
    assert code == 2 and f"pid {proc.pid}" in err
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143
    assert "terminated (SIGTERM); finished runs are saved, rerun to resume" in err
    assert read_lock(run_dir) is None                    # the lock went with it


def test_exit_codes_130_and_143_are_documented():
    assert "130  interrupted" in EPILOG and "143  terminated (SIGTERM" in EPILOG


def test_a_bare_command_prints_its_usage(capsys):
    assert main([]) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: lae-bench") and "run" in err and "exit codes" in err
    proc = subprocess.run([sys.executable, "-m", "bench"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2 and "usage: lae-bench" in proc.stderr
