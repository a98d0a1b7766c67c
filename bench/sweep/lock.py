"""One ``lae-bench run`` per run directory at a time: a lock file holding the owner's pid.

Two sweeps writing the same directory would both run every cell and time each other's load.
The lock of ``PARENT/NAME`` is ``PARENT/.NAME.lock`` (beside the run directory, so that the
directory itself holds only results), created with O_EXCL (atomic on local file systems) and
holding the owner's pid, host and start time. A second run is refused with the holder's pid;
a lock whose process is gone (same host, pid not alive: kill -9, a crash) is stale and taken
over. The lock is removed when the run ends, however it ends short of a kill -9.
"""
from __future__ import annotations

import json
import os
import socket
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from ..errors import UsageError
from ..paths import output_dir


class RunDirectoryBusy(UsageError):
    """Another live lae-bench process holds the run directory."""


def lock_path(run_dir: Path) -> Path:
    """Where the lock of ``run_dir`` lives: beside it, ``.NAME.lock``."""
    run_dir = Path(run_dir).absolute()
    return run_dir.parent / f".{run_dir.name}.lock"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:      # someone else's live process
        return True
    return True


def read_lock(run_dir: Path) -> dict | None:
    """The holder recorded in the lock file, None when there is none ({} when unreadable)."""
    try:
        return json.loads(lock_path(run_dir).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}


def _is_stale(holder: dict) -> bool:
    """The holder's process is gone (only decidable on the same host)."""
    pid = holder.get("pid")
    return (holder.get("host") == socket.gethostname() and isinstance(pid, int)
            and pid != os.getpid() and not _alive(pid))


def acquire(run_dir: Path) -> Path:
    """Take the lock of ``run_dir`` (created if needed); RunDirectoryBusy when a live process
    holds it. Returns the lock file."""
    run_dir = output_dir(run_dir, "--out")
    path = lock_path(run_dir)
    me = {"pid": os.getpid(), "host": socket.gethostname(),
          "since_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
    for _ in range(3):   # a stale lock removed by a racing process: try again
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = read_lock(run_dir)
            if holder is None:
                continue
            if holder and _is_stale(holder):
                path.unlink(missing_ok=True)
                continue
            raise RunDirectoryBusy(
                f"--out: {run_dir} is in use by another lae-bench run (pid "
                f"{holder.get('pid', '?')} on {holder.get('host', '?')}, since "
                f"{holder.get('since_utc', '?')}); wait for it to finish or stop it (the lock "
                f"{path} of a process that died is taken over by the next run)"
            ) from None
        except OSError as exc:
            raise UsageError(f"--out: cannot write in {run_dir} "
                             f"({exc.strerror or type(exc).__name__})") from None
        with os.fdopen(fd, "w") as f:
            json.dump(me, f)
        return path
    raise RunDirectoryBusy(f"--out: {run_dir}: could not take the lock {path}")


def release(run_dir: Path) -> None:
    """Remove the lock if this process holds it."""
    holder = read_lock(run_dir)
    if holder and holder.get("pid") == os.getpid() and holder.get("host") == socket.gethostname():
        lock_path(run_dir).unlink(missing_ok=True)


@contextmanager
def run_lock(run_dir: Path) -> Iterator[Path]:
    """Hold the lock of ``run_dir`` for the duration of the block."""
    path = acquire(run_dir)
    try:
        yield path
    finally:
        release(run_dir)
