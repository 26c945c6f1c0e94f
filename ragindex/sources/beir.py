"""BEIR-layout corpora: `corpus.jsonl` lines with `_id`, `title` and `text`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from ragindex.documents import Document, Skipped, sha256_hex
from ragindex.errors import ConfigError


def corpus_file(path: Path) -> Path:
    """The corpus.jsonl of a BEIR folder (or the file itself)."""
    file = path / "corpus.jsonl" if path.is_dir() else path
    if not file.is_file():
        raise ConfigError(f"{file} not found; a BEIR source needs corpus.jsonl (lines of _id, title, text)")
    return file


def read_beir_corpus(source: str, path: Path) -> Iterator[Document | Skipped]:
    """Yield one document per line; malformed lines are skipped with their line number."""
    file = corpus_file(path)
    mtime = file.stat().st_mtime
    seen: set[str] = set()
    with file.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            where = f"{file}:{number}"
            if not raw.strip():
                continue
            try:
                row = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as error:
                yield Skipped(where, f"malformed JSON line ({error.__class__.__name__})")
                continue
            if not isinstance(row, dict) or not str(row.get("_id", "")).strip():
                yield Skipped(where, "line has no '_id'")
                continue
            doc_id = str(row["_id"])
            title = str(row.get("title") or "").strip()
            text = str(row.get("text") or "").strip()
            if not text:
                yield Skipped(where, f"document {doc_id} has no text")
                continue
            if doc_id in seen:
                yield Skipped(where, f"duplicate _id {doc_id} (first occurrence kept)")
                continue
            seen.add(doc_id)
            yield Document(
                doc_id=doc_id,
                source=source,
                text=text,
                content_hash=sha256_hex(f"{title}\n{text}"),
                title=title,
                path=doc_id,
                size=len(text.encode("utf-8")),
                mtime=mtime,
                format="text",
            )
