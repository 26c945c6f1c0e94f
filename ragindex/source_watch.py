"""A cheap signature of a source's files (names, sizes, mtimes) to notice change without reading them."""

from __future__ import annotations

import hashlib
import os

from ragindex.config import SourceConfig


def source_signature(source: SourceConfig) -> str:
    """Changes when a file is added, deleted, resized or touched; the embedded corpus never changes."""
    digest = hashlib.sha256()
    if source.type == "pydoc_topics":
        import pydoc_data.topics as module

        digest.update(str(os.stat(module.__file__).st_mtime_ns).encode())
        return digest.hexdigest()[:16]
    root = source.resolved_path()
    if not root.exists():
        return "missing"
    if root.is_file():
        stat = root.stat()
        digest.update(f"{stat.st_size}:{stat.st_mtime_ns}".encode())
        return digest.hexdigest()[:16]
    for directory, subdirs, files in os.walk(root, followlinks=False):
        subdirs.sort()
        for name in sorted(files):
            path = os.path.join(directory, name)
            try:
                stat = os.stat(path)
            except OSError:
                continue
            digest.update(f"{os.path.relpath(path, root)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]
