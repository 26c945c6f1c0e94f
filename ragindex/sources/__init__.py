"""Sources of documents: a directory tree, a BEIR-layout corpus, or CPython's embedded reference."""

from __future__ import annotations

from collections.abc import Iterator

from ragindex.access import AccessPolicy
from ragindex.config import SourceConfig
from ragindex.documents import Document, Skipped
from ragindex.errors import ConfigError
from ragindex.sources.beir import corpus_file, read_beir_corpus
from ragindex.sources.directory import has_files, read_directory
from ragindex.sources.pydoc_topics import read_pydoc_topics

# A previously indexed document's (content_hash, size, mtime), keyed by doc id.
Known = dict[str, tuple[str, int, float]]


def read_source(source: SourceConfig, known: Known | None = None) -> Iterator[Document | Skipped | str]:
    """Yield documents (their access groups resolved by the source's policy), skipped inputs, and the ids (plain
    str) of files whose size and mtime are unchanged."""
    policy = AccessPolicy(source.access)
    for item in _read(source, known or {}):
        yield policy.apply(item) if isinstance(item, Document) else item


def _read(source: SourceConfig, known: Known) -> Iterator[Document | Skipped | str]:
    if source.type == "pydoc_topics":
        yield from read_pydoc_topics(source.name)
        return
    path = source.resolved_path()
    if not path.exists():
        raise ConfigError(f"source '{source.name}': path {path} does not exist; fix 'path' in the config")
    if source.type == "beir":
        yield from read_beir_corpus(source.name, path)
    elif source.type == "directory":
        if not path.is_dir():
            raise ConfigError(f"source '{source.name}': {path} is not a directory")
        yield from read_directory(source, path, {} if source.always_hash else known)
    else:  # pragma: no cover - pydantic already restricts the type
        raise ConfigError(f"unknown source type '{source.type}'; use directory, beir or pydoc_topics")


def has_input(source: SourceConfig) -> bool:
    """Whether a source holds anything to index: a file its include patterns match, a non-blank corpus line."""
    if source.type == "pydoc_topics":
        return True
    path = source.resolved_path()
    if source.type == "beir":
        with corpus_file(path).open("rb") as handle:
            return any(line.strip() for line in handle)
    if not path.is_dir():
        raise ConfigError(f"source '{source.name}': {path} is not a directory")
    return has_files(source, path)
