"""Checks of command-line input made before any work starts; each failure is one ConfigError line (exit 2)."""

from __future__ import annotations

import os
from pathlib import Path

from ragindex.access import parse_groups
from ragindex.errors import ConfigError
from ragindex.paths import SAFE_NAME
from ragindex.requests import check_k, check_query


def check_name(name: str) -> str:
    """A table name that cannot escape its folder (`--name`)."""
    if not SAFE_NAME.match(name):
        raise ConfigError(f"--name {name!r}: use letters, digits, '_', '.' and '-' (at most 128, not starting with "
                          "'.' or '-')")
    return name


def caller_groups(value: str | None) -> tuple[str, ...]:
    """`--groups a,b`: the caller's access groups; omitted: public chunks only."""
    try:
        return parse_groups(value)
    except ValueError as error:
        raise ConfigError(f"--groups {value!r}: {error}") from None


def check_request(query: str, k: int, max_k: int) -> None:
    """A non-blank query and k within 1..search.max_k."""
    try:
        check_query(query)
    except ValueError as error:
        raise ConfigError(f"{error}; pass the text to search for") from None
    try:
        check_k(k, max_k)
    except ValueError as error:
        raise ConfigError(f"--k: {error} (the most is search.max_k)") from None


def _existing_parent(path: Path) -> Path:
    return next((p for p in path.absolute().parents if p.exists()), Path("."))


def check_writable_dir(folder: Path, flag: str = "--out") -> None:
    """An output folder that exists as a writable folder, or can be created in a writable one."""
    probe = folder if folder.exists() else _existing_parent(folder)
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(f"{flag} {folder}: {probe} is not a writable folder")


def check_writable_file(file: Path, flag: str = "--out") -> None:
    """An output file that can be (over)written: not a folder, in a folder that exists or can be created."""
    if file.is_dir():
        raise ConfigError(f"{flag} {file}: is a folder, expected a file path")
    if file.exists():
        if not os.access(file, os.W_OK):
            raise ConfigError(f"{flag} {file}: not writable")
        return
    check_writable_dir(file.parent, flag)
