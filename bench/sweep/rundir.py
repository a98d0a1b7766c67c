"""The run directory of one sweep: what it holds already, its manifest's sessions, and writing
records as cells finish (through ``store``). It trains nothing.

The default run directory is ``results/runs/<name>-<config hash>/`` (name: the preset, or the
config file's stem), so the same command always finds its own results again; a directory that
holds another sweep is refused. One process writes it at a time (``lock``, taken by the CLI).
"""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..errors import UsageError
from . import env, threads
from .cells import Cell
from .config import SweepConfig
from .record import Record
from .store import MANIFEST, load_manifest, load_records, write_manifest, write_record

RESULTS_ROOT = Path("results/runs")


def default_run_dir(config: SweepConfig, root: Path = RESULTS_ROOT) -> Path:
    """results/runs/<name>-<hash>: found again by the same command, so that it resumes."""
    return root / f"{config.name}-{config.hash}"


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class RunDirectory:
    """The run directory ``path`` of the sweep ``config``: its stored records (a resumed
    sweep skips them) and the one place that writes there."""

    def __init__(self, path: Path, config: SweepConfig):
        self.path, self.config = Path(path), config
        self.resuming = check_run_dir(self.path, config)
        self.stored = ({r.key: r for r in load_records(self.path, set_aside=True)}
                       if self.resuming else {})    # damaged records moved aside: rerun

    def pending_seeds(self, cell: Cell) -> list[int]:
        """Seeds of ``cell`` without a finished record (an error record is retried)."""
        return [s for s in self.config.seeds
                if cell.key(s) not in self.stored or self.stored[cell.key(s)].status == "error"]

    def finished(self, cell: Cell, pending: list[int]) -> list[Record]:
        """The stored records of ``cell``'s seeds that are not in ``pending``."""
        return [self.stored[cell.key(s)] for s in self.config.seeds if s not in pending]

    def start_session(self, facts: dict[str, Any],
                      execution: Mapping[str, Any] | None = None) -> None:
        """Write the manifest (first session) or append this session to it (resume).
        ``execution``: where this session's cells ran (default: in this process)."""
        session = {"started_utc": utc_now(), "device": env.device_name(facts),
                   "git": facts["git"],
                   "threads": {"requested": self.config.threads,
                               "cores": threads.usable_cores(),
                               "free_cores": threads.free_cores()},
                   **(execution or {"scheduler": "in-process"})}
        if (self.path / MANIFEST).is_file():
            manifest = load_manifest(self.path)
            manifest["sessions"] = manifest.get("sessions", []) + [session]
        else:
            manifest = {"run_id": self.path.name, "created_utc": session["started_utc"],
                        "config": self.config.to_dict(), "config_hash": self.config.hash,
                        **facts, "sessions": [session]}
        write_manifest(self.path, manifest)
        for orphan in self.path.glob("*/.*.tmp"):  # left by a kill during an atomic write
            orphan.unlink()

    def write(self, results: list[tuple[Record, dict[str, np.ndarray] | None]]
              ) -> list[Record]:
        """Store each (record, history) of a finished cell; return the records."""
        for record, history in results:
            write_record(self.path, record, history)
        return [record for record, _ in results]


def check_run_dir(run_dir: Path, config: SweepConfig) -> bool:
    """True when ``run_dir`` already holds this sweep; refuse one that holds something else."""
    if run_dir.exists() and not run_dir.is_dir():
        raise UsageError(f"--out: {run_dir} is a file, not a directory")
    if not run_dir.exists() or not any(run_dir.iterdir()):
        return False
    if not (run_dir / MANIFEST).is_file():
        raise UsageError(f"--out: {run_dir} is not empty and is not a lae-bench run directory; "
                         "choose another --out")
    manifest = load_manifest(run_dir)
    if manifest.get("config_hash") != config.hash:
        raise UsageError(f"--out: {run_dir} holds another sweep (config hash "
                         f"{manifest.get('config_hash')}, this one is {config.hash}); choose "
                         "another --out, or pass --force-new to discard its results")
    return True


def discard_results(run_dir: Path) -> None:
    """Delete the manifest, records and histories of a run directory (only lae-bench's files)."""
    if not (run_dir / MANIFEST).is_file():
        return
    for sub, suffix in (("records", ".json"), ("histories", ".npz")):
        for path in run_dir.glob(f"{sub}/*"):
            if path.name.endswith((suffix, ".tmp")):
                path.unlink()
        if (run_dir / sub).is_dir() and not any((run_dir / sub).iterdir()):
            (run_dir / sub).rmdir()
    (run_dir / MANIFEST).unlink()
