"""One ``lae-bench run`` per run directory at a time: a lock file holding the owner's pid.

Two sweeps writing the same directory would both run every cell and time each other's load.
The lock of ``PARENT/NAME`` is ``PARENT/.NAME.lock`` (beside the run directory, so that the
directory itself holds only results), holding the owner's pid, host and start time. It is
written whole to a temporary file first and then hard-linked to its name (``link`` fails when
the name exists, so taking it is atomic and a lock is never seen empty, even after a kill -9 or
on a full disk). A second run is refused with the holder's pid; a lock whose process is gone
(same host, pid not alive: kill -9, a crash) is stale and taken over, and so is a lock that is
empty or unreadable, since no lae-bench writes one. The lock is removed when the run ends,
however it ends short of a kill -9.
"""
from __future__ import annotations

import json
import os
import socket
import tempfile
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
        holder = json.loads(lock_path(run_dir).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}


def _is_stale(holder: dict) -> bool:
    """The lock names no holder (empty or unreadable: never written whole, so no lae-bench
    holds it), or its holder's process is gone (only decidable on the same host)."""
    if not isinstance(holder, dict) or not holder:
        return True
    pid = holder.get("pid")
    return (holder.get("host") == socket.gethostname() and isinstance(pid, int)
            and pid != os.getpid() and not _alive(pid))


def _write_whole(path: Path, holder: dict) -> bool:
    """Create the lock ``path`` holding ``holder``, whole or not at all: written to a
    temporary file, then linked to the name. False when the name is taken."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(holder, f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    finally:
        os.unlink(tmp)


def _remove_stale(path: Path, holder: dict) -> None:
    """Remove the stale lock ``path`` that named ``holder``, unless a racing run replaced it
    meanwhile (then that run's lock is put back)."""
    grave = path.with_name(f"{path.name}.{os.getpid()}.stale")
    try:
        os.rename(path, grave)
    except FileNotFoundError:      # a racing run removed it first
        return
    try:
        taken = json.loads(grave.read_text())
    except (OSError, ValueError):
        taken = {}
    if not _is_stale(taken):
        try:
            os.link(grave, path)    # a live run's fresh lock: give it back
        except FileExistsError:
            pass
    grave.unlink(missing_ok=True)


def acquire(run_dir: Path) -> Path:
    """Take the lock of ``run_dir`` (created if needed); RunDirectoryBusy when a live process
    holds it. Returns the lock file."""
    run_dir = output_dir(run_dir, "--out")
    path = lock_path(run_dir)
    me = {"pid": os.getpid(), "host": socket.gethostname(),
          "since_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
    for _ in range(3):   # a stale lock removed by a racing process: try again
        try:
            if _write_whole(path, me):
                return path
        except OSError as exc:      # a full disk or a read-only directory: nothing was taken
            raise UsageError(f"--out: cannot write the lock {path} "
                             f"({exc.strerror or 'I/O error'})") from None
        holder = read_lock(run_dir)
        if holder is None:
            continue
        if _is_stale(holder):
            _remove_stale(path, holder)
            continue
        raise RunDirectoryBusy(
            f"--out: {run_dir} is in use by another lae-bench run (pid "
            f"{holder.get('pid', '?')} on {holder.get('host', '?')}, since "
            f"{holder.get('since_utc', '?')}); wait for it to finish or stop it (the lock "
            f"{path} of a process that died is taken over by the next run)")
    raise RunDirectoryBusy(f"--out: {run_dir}: could not take the lock {path}")


def release(run_dir: Path) -> None:
    """Remove the lock if this process holds it."""
    holder = read_lock(run_dir)
    if isinstance(holder, dict) and holder.get("pid") == os.getpid() and holder.get("host") == socket.gethostname():
        lock_path(run_dir).unlink(missing_ok=True)


@contextmanager
def run_lock(run_dir: Path) -> Iterator[Path]:
    """Hold the lock of ``run_dir`` for the duration of the block."""
    path = acquire(run_dir)
    try:
        yield path
    finally:
        release(run_dir)
