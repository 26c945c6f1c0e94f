"""The document record every source yields, and the record of a skipped input."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

HEADING_SEPARATOR = " > "  # between the headings of a chunk's heading path
PUBLIC = "public"  # the access group every caller holds
GROUP_NAME = re.compile(r"^[^,\x00-\x1f\x7f\s](?:[^,\x00-\x1f\x7f]{0,126}[^,\x00-\x1f\x7f\s])?$")  # no comma


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
    # access groups: None until the source's access policy resolves them (ragindex/access.py); () = no caller
    groups: tuple[str, ...] | None = None

    @property
    def visible_to(self) -> tuple[str, ...]:
        """The groups that may retrieve the document's chunks (unresolved: public)."""
        return (PUBLIC,) if self.groups is None else self.groups


@dataclass(frozen=True)
class Skipped:
    """An input that was not indexed, with the path and the reason shown to the user."""

    path: str
    reason: str
    doc_id: str | None = None  # set when the input was a document the index may already hold
