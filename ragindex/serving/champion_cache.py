"""The champion's serving config without importing MLflow (about 2 s of CPU at a search's start-up).

What a champion serves is read through MLflow once and kept in a small JSON file (`DataLayout.champion_cache`),
keyed by the tracking URI and the state (inode, size, mtime) of the local SQLite store's files. Any write to the
store (an alias moved by a build, a rollback or a re-pin; a version tagged; a run logged, also by hand in the
MLflow UI) changes that state, so the next lookup reads MLflow again and refreshes the file. A state younger
than a second is never cached: a second write within the file system's timestamp tick could leave it unchanged.
A tracking server (no local file) is always asked.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from ragindex.tracking import Tracker

SETTLE_NS = 1_000_000_000
Champion = tuple[str, dict]  # (model version, serving config)


def champion_config(tracker: Tracker, name: str, cache: Path | None = None) -> Champion | None:
    """(version, serving config) of the champion of registered model `name`, or None when it has none."""
    database = tracker.database
    if cache is None or database is None or not tracker.store_exists():
        return _ask(tracker, name)
    before = _state(database)
    held = _read(cache)
    key = [tracker.tracking_uri, before]
    if before is not None and held.get("key") == key and name in held["champions"]:
        found = held["champions"][name]
        return None if found is None else (found[0], found[1])
    found = _ask(tracker, name)
    if before is not None and _state(database) == before:  # nothing was written while MLflow was read
        champions = {**held["champions"], name: found} if held.get("key") == key else {name: found}
        _write(cache, {"key": key, "champions": champions})
    return found


def settle(tracker: Tracker, limit_s: float = 2 * SETTLE_NS / 1e9) -> None:
    """Wait (at most `limit_s`) until the store's last write is old enough to be cached: a build that has just
    written MLflow calls this before it warms the cache, so the first search after it reads the file."""
    database = tracker.database
    deadline = time.monotonic() + limit_s
    while database is not None and _files(database) and _state(database) is None and time.monotonic() < deadline:
        time.sleep(0.05)


def _ask(tracker: Tracker, name: str) -> Champion | None:
    current = tracker.champion(name)
    return None if current is None else (str(current.version), tracker.serving_config(current))


def _state(database: Path) -> list[int] | None:
    """The store's files as (inode, size, mtime) numbers; None while a write is under a second old."""
    stats = [f.stat() for f in _files(database)]
    if not stats or time.time_ns() - max(s.st_mtime_ns for s in stats) < SETTLE_NS:
        return None
    return [n for s in stats for n in (s.st_ino, s.st_size, s.st_mtime_ns)]


def _files(database: Path) -> list[Path]:
    """The SQLite store's files that exist: the database and its write-ahead log."""
    return [f for f in (database, database.with_name(database.name + "-wal")) if f.exists()]


def _read(cache: Path) -> dict:
    try:
        held = json.loads(cache.read_text())
    except (OSError, ValueError):
        return {"champions": {}}
    return held if isinstance(held, dict) and isinstance(held.get("champions"), dict) else {"champions": {}}


def _write(cache: Path, content: dict) -> None:
    """Atomically (a concurrent reader sees the old file or the new one); a read-only directory is no error."""
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        partial = cache.with_name(f"{cache.name}.{os.getpid()}.tmp")
        partial.write_text(json.dumps(content))
        os.replace(partial, cache)
    except OSError:
        pass
