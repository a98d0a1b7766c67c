"""The run-directory lock is written whole or not at all, and a lock without a readable holder
is stale (no lae-bench writes one), so a full disk or a kill -9 between create and write can
no longer block a directory forever."""
from __future__ import annotations

import errno
import json
import os

import pytest

from bench.errors import UsageError
from bench.sweep import lock
from bench.sweep.lock import acquire, lock_path, read_lock, release


@pytest.mark.parametrize("content", [b"", b"{", b"\x00\xff", b"[]", b"null", b'"pid"'])
def test_an_empty_or_unreadable_lock_is_stale_and_taken_over(tmp_path, content):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    lock_path(run_dir).write_bytes(content)
    acquire(run_dir)
    assert read_lock(run_dir)["pid"] == os.getpid()
    release(run_dir)
    assert not lock_path(run_dir).exists()


def test_a_full_disk_while_writing_the_lock_leaves_no_lock_and_names_it(tmp_path, monkeypatch):
    def no_space(fd, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(lock.os, "fsync", no_space)
    with pytest.raises(UsageError, match=r"cannot write the lock .*No space left on device"):
        acquire(tmp_path / "run")
    assert not lock_path(tmp_path / "run").exists()
    assert list(tmp_path.iterdir()) == [tmp_path / "run"]          # no temporary file either


def test_the_lock_is_never_visible_half_written(tmp_path, monkeypatch):
    """While the holder's JSON is being written, the lock's name does not exist yet."""
    seen = []
    real_fsync = os.fsync

    def look(fd):
        seen.append(lock_path(tmp_path / "run").exists())
        real_fsync(fd)
    monkeypatch.setattr(lock.os, "fsync", look)
    acquire(tmp_path / "run")
    assert seen == [False] and json.loads(lock_path(tmp_path / "run").read_text())["pid"]
    release(tmp_path / "run")


def test_a_live_holder_put_back_when_a_stale_lock_was_replaced_meanwhile(tmp_path):
    """Removing a stale lock that a racing run has just replaced with its own gives the
    live run's lock back."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    live = {"pid": os.getppid(), "host": lock.socket.gethostname(), "since_utc": "now"}
    lock_path(run_dir).write_text(json.dumps(live))
    lock._remove_stale(lock_path(run_dir), {"pid": 1, "host": "elsewhere"})
    assert read_lock(run_dir) == live
