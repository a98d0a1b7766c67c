"""Helpers of the harness tests: the smoke preset as a dict, config files, the CLI in-process."""
from __future__ import annotations

import contextlib
import io
from pathlib import Path

import yaml

from bench.cli import main
from bench.sweep.config import preset_text
from bench.sweep.store import load_records


def smoke_config(**changes) -> dict:
    """The smoke preset as a dict, with top-level keys replaced."""
    return {**yaml.safe_load(preset_text("smoke")), **changes}


def write_config(path: Path, **changes) -> Path:
    path.write_text(yaml.safe_dump(smoke_config(**changes)))
    return path


def cli(*argv) -> tuple[int, str, str]:
    """Run ``lae-bench ARGV`` in-process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def records(run_dir: Path) -> list[dict]:
    """The records of a run directory through the store (validated), in their JSON form."""
    return [r.to_json() for r in load_records(run_dir)]
