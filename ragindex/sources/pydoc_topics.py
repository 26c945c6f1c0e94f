"""The embedded default corpus: CPython's language reference from `pydoc_data.topics`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from ragindex.documents import Document, sha256_hex


def read_pydoc_topics(source: str) -> Iterator[Document]:
    """One document per topic; the text is the reference rendered by Sphinx's text builder."""
    import pydoc_data.topics as module

    mtime = Path(module.__file__).stat().st_mtime
    for name, text in sorted(module.topics.items()):
        first = text.strip().splitlines()[0] if text.strip() else name
        yield Document(
            doc_id=name,
            source=source,
            text=text,
            content_hash=sha256_hex(text),
            title=first.strip(),
            path=f"pydoc_data.topics:{name}",
            size=len(text.encode("utf-8")),
            mtime=mtime,
            format="rst",
        )
