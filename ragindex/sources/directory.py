"""Directory trees of Markdown, plain text, reStructuredText and HTML files, read recursively."""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterator
from pathlib import Path

from ragindex.config import SourceConfig
from ragindex.documents import Document, Skipped, sha256_hex
from ragindex.sources.html_text import html_to_markdown

FORMATS = {".md": "markdown", ".markdown": "markdown", ".rst": "rst", ".txt": "text",
           ".html": "html", ".htm": "html"}


def _walk(root: Path, skipped: list[Skipped]) -> Iterator[Path]:
    """Files under root in sorted order, following symlinks but never entering a directory twice."""
    seen: set[str] = set()

    def visit(directory: Path) -> Iterator[Path]:
        real = os.path.realpath(directory)
        if real in seen:
            skipped.append(Skipped(str(directory), "symlink loop (directory already visited)"))
            return
        seen.add(real)
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError as error:
            skipped.append(Skipped(str(directory), f"unreadable directory ({error.strerror})"))
            return
        for entry in entries:
            path = Path(entry.path)
            try:
                is_dir = entry.is_dir(follow_symlinks=True)
            except OSError as error:
                skipped.append(Skipped(str(path), f"broken link ({error.strerror})"))
                continue
            if is_dir:
                if not entry.name.startswith("."):
                    yield from visit(path)
            elif entry.is_file(follow_symlinks=True):
                yield path
            elif entry.is_symlink():
                skipped.append(Skipped(str(path), "broken or looping symlink"))

    yield from visit(root)


def _decode(data: bytes) -> str:
    if b"\x00" in data[:8192]:
        raise ValueError("binary file (NUL bytes)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ValueError(f"not valid UTF-8 (byte {error.start})") from None


def _title(text: str, fallback: str) -> str:
    for line in text.splitlines():
        stripped = line.strip().lstrip("#").strip()
        if stripped:
            return stripped[:200]
    return fallback


def read_directory(
    source: SourceConfig, root: Path, known: dict[str, tuple[str, int, float]]
) -> Iterator[Document | Skipped | str]:
    """Yield documents; ids whose size and mtime match `known` are yielded as plain str (not re-read)."""
    skipped: list[Skipped] = []
    for path in _walk(root, skipped):
        yield from skipped
        skipped.clear()
        if not any(fnmatch.fnmatch(path.name.lower(), pattern) for pattern in source.include):
            continue
        doc_id = path.relative_to(root).as_posix()
        fmt = FORMATS.get(path.suffix.lower(), "text")
        try:
            stat = path.stat()
            previous = known.get(doc_id)
            if previous and previous[1] == stat.st_size and previous[2] == stat.st_mtime:
                yield doc_id
                continue
            if stat.st_size == 0:
                raise ValueError("empty file")
            if stat.st_size > source.max_file_bytes:
                raise ValueError(f"over-size file ({stat.st_size} bytes > max_file_bytes {source.max_file_bytes})")
            data = path.read_bytes()
            text = _decode(data)
            if fmt == "html":
                text = html_to_markdown(text)
                fmt = "markdown"
            if not text.strip():
                raise ValueError("no text content")
        except PermissionError:
            yield Skipped(str(path), "unreadable (permission denied)", doc_id)
            continue
        except OSError as error:
            yield Skipped(str(path), f"unreadable ({error.strerror or error})", doc_id)
            continue
        except ValueError as error:
            yield Skipped(str(path), str(error), doc_id)
            continue
        yield Document(
            doc_id=doc_id,
            source=source.name,
            text=text,
            content_hash=sha256_hex(data),
            title=_title(text, path.stem),
            path=str(path),
            size=stat.st_size,
            mtime=stat.st_mtime,
            format=fmt,
        )
    yield from skipped
