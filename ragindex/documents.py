"""The document record every source yields, and the record of a skipped input."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

HEADING_SEPARATOR = " > "  # between the headings of a chunk's heading path


def sha256_hex(data: bytes | str) -> str:
    if isinstance(data, str):
        data = data.encode("utf-8")
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Document:
    """One document: stable id, content hash, text and the metadata shown with its chunks."""

    doc_id: str
    source: str
    text: str
    content_hash: str
    title: str
    path: str
    size: int
    mtime: float
    format: str  # markdown | rst | text | pdf (pages joined by a form feed) | image
    # local images the text references that decoded cleanly (resolved paths): they become image chunks
    images: tuple[str, ...] = ()


@dataclass(frozen=True)
class Skipped:
    """An input that was not indexed, with the path and the reason shown to the user."""

    path: str
    reason: str
    doc_id: str | None = None  # set when the input was a document the index may already hold
