"""Advisory file locks (fcntl): one writer per (table, source), one creator of a store; released when a process dies.

A lock file records who holds it (run id, pid, since), so a process that has to wait can say for whom. A process
already holding a lock takes it again at no cost (the CLI holds a run's lock; the run's steps take it too, which
matters when Dagster runs each step in a process of its own).
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ragindex.errors import RunFailed
from ragindex.paths import DataLayout

POLL_SECONDS = 0.2
_HELD: dict[str, int] = {}  # lock path -> how many times this process holds it


class LockTimeout(RunFailed):
    """Another run kept the lock for longer than this run may wait."""


def holder(path: Path) -> str:
    """Who holds a lock, in words (from the record its holder wrote)."""
    try:
        info = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        info = {}
    if not info:
        return "another process"
    since = time.strftime("%H:%M:%S", time.localtime(info.get("since", 0)))
    return f"run {info.get('run_id') or '?'} (pid {info.get('pid')}, since {since})"


@contextmanager
def file_lock(path: Path, what: str, owner: str = "", timeout: float = 600.0) -> Iterator[None]:
    """Hold the exclusive lock at `path`; wait up to `timeout` seconds (saying once on stderr for whom), then raise
    LockTimeout naming the holder."""
    key = str(path)
    if _HELD.get(key):
        _HELD[key] += 1
        try:
            yield
        finally:
            _HELD[key] -= 1
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline, told = time.monotonic() + timeout, False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockTimeout(f"{what} is being written by {holder(path)}; waited {timeout:.0f} s, try "
                                      "again when it finishes") from None
                if not told:
                    print(f"waiting: {what} is being written by {holder(path)}", file=sys.stderr, flush=True)
                    told = True
                time.sleep(POLL_SECONDS)
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"run_id": owner, "pid": os.getpid(), "since": time.time()}).encode(), 0)
        _HELD[key] = 1
        try:
            yield
        finally:
            del _HELD[key]
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def writer_lock(table: str, source: str, owner: str = "", timeout: float = 600.0,
                layout: DataLayout | None = None):
    """The one-writer lock of a (table, source): builds, `forget` and upkeep of that pair take it."""
    path = (layout or DataLayout.current()).locks / f"{table}__{source}.lock"
    return file_lock(path, f"table '{table}', source '{source}'", owner, timeout)
