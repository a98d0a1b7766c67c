"""The commit a result records survives a non-editable install: setup.py writes it into the
built package, and env.git_state reads it where no git history is left."""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from bench.sweep import env

ROOT = Path(__file__).resolve().parents[2]


def load_setup_hook():
    spec = importlib.util.spec_from_file_location("lae_bench_setup", ROOT / "setup.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)        # setup() itself runs only as __main__
    return module


def git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True,
                          check=True).stdout.strip()


def test_a_checkout_reports_its_own_commit():
    state = env.git_state()
    assert state["commit"] == git("rev-parse", "HEAD") and state["source"] == "checkout"


def test_an_installed_copy_reports_the_commit_it_was_built_from(tmp_path):
    site = tmp_path / "site-packages"          # what `pip install .` leaves: no .git anywhere
    shutil.copytree(ROOT / "bench", site / "bench",
                    ignore=shutil.ignore_patterns("__pycache__", "built_from.py"))
    shutil.copytree(ROOT / "lae_core", site / "lae_core",
                    ignore=shutil.ignore_patterns("__pycache__"))
    script = "import json; from bench.sweep import env; print(json.dumps(env.git_state()))"
    environ = {**os.environ, "PYTHONPATH": str(site)}

    def installed_state():
        out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=environ,
                             capture_output=True, text=True, check=True).stdout
        return json.loads(out)

    assert installed_state() is None                      # what the old code always said
    load_setup_hook().write_build_info(site)              # the build step of setup.py
    state = installed_state()
    assert state["commit"] == git("rev-parse", "HEAD") and state["source"] == "build"
    assert isinstance(state["dirty"], bool) and state["built_utc"].endswith("Z")


def test_a_tree_sent_to_a_gpu_machine_reads_the_prepared_commit(tmp_path):
    """gpu_check.sh --prepare writes the commit beside the wheels; a tree without .git (how
    the device tool sends it) reports it as 'prepared'; a damaged file is no commit."""
    prepared = tmp_path / env.PREPARED_FROM
    assert env.prepared_info(tmp_path) is None
    prepared.parent.mkdir()
    prepared.write_text('{"commit": "abc123", "dirty": true, '
                        '"prepared_utc": "2026-12-03T10:00:00Z"}')
    assert env.prepared_info(tmp_path) == {"commit": "abc123", "dirty": True,
                                           "source": "prepared",
                                           "prepared_utc": "2026-12-03T10:00:00Z"}
    prepared.write_text('{"commit": "abc')
    assert env.prepared_info(tmp_path) is None


def test_the_cupy_package_for_cuda_12_or_13_is_recorded_and_installable(monkeypatch):
    import tomllib
    from importlib import metadata

    installed = {"numpy": "2.5.2", "cupy-cuda13x": "14.2.0"}

    def version(name):
        if name not in installed:
            raise metadata.PackageNotFoundError(name)
        return installed[name]
    monkeypatch.setattr(env.metadata, "version", version)
    assert env.packages() == installed
    installed = {"cupy-cuda12x": "13.6.0"}
    assert env.packages() == installed
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    assert [d.split(">")[0] for d in extras["gpu-cuda13"]] == ["cupy-cuda13x"]
    assert [d.split(">")[0] for d in extras["gpu-cuda12"]] == ["cupy-cuda12x"]
    assert extras["gpu"] == extras["gpu-cuda12"]
