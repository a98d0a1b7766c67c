"""Fixtures of the harness tests."""
from __future__ import annotations

from pathlib import Path

import pytest

from .helpers import cli


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory) -> tuple[Path, int, str]:
    """The smoke preset, run once for the whole session: (run dir, exit code, stdout)."""
    run_dir = tmp_path_factory.mktemp("smoke") / "run"
    code, out, _ = cli("run", "smoke", "--out", run_dir, "--quiet")
    return run_dir, code, out
