"""The two sides of a comparison: a command-line side (folder, Parquet file or table at a version) as a sample,
and a source folder chunked like a build and embedded through the embedding cache (a second look costs no
model time)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ragindex.build_tag import BuildTag
from ragindex.config import ChunkerConfig, SourceConfig
from ragindex.drift.samples import DEFAULT_MAX_ROWS, Sample, parquet_sample, pick_rows, table_sample
from ragindex.embedding_cache import EmbeddingCache, embed_through_cache
from ragindex.errors import ConfigError
from ragindex.paths import SAFE_NAME
from ragindex.source_registry import adhoc_source

Progress = Callable[[str], None]
OpenTable = Callable[[str, int | str | None], Any]  # (table name, version or tag or None) -> opened table


def source_chunks(source: SourceConfig, chunker_config: ChunkerConfig, embedder) -> list:
    """Every chunk of a source's readable documents, in (doc id, position) order."""
    from ragindex.chunking import make_chunker
    from ragindex.documents import Document
    from ragindex.sources import read_source

    chunker = make_chunker(chunker_config, embedder)
    chunks = [c for item in read_source(source) if isinstance(item, Document) for c in chunker.chunk(item)]
    return sorted(chunks, key=lambda c: (c.doc_id, c.position))


def chunk_sample(chunks: Sequence, embedder, cache: EmbeddingCache, label: str, max_rows: int = DEFAULT_MAX_ROWS,
                 seed: int = 0, progress: Progress | None = None, by_document: bool = True) -> Sample:
    """A seeded sample of chunks (sorted by chunk id first; whole documents when by_document), embedded
    through `cache` (the embedder's): only texts this model never embedded are."""
    ordered = sorted(chunks, key=lambda c: c.chunk_id)
    picked = [ordered[i] for i in pick_rows([(c.chunk_id, c.doc_id) for c in ordered], max_rows, seed, by_document)]
    counted = (lambda done, total: progress(f"embedded {done}/{total} new texts")) if progress else None
    vectors = embed_through_cache([c.text for c in picked], [c.text_hash for c in picked], lambda: embedder, cache,
                                  counted)
    return Sample(label, vectors, embedder.fingerprint.id, len(ordered), [c.chunk_id for c in picked],
                  [c.text for c in picked], [c.doc_id for c in picked])


def source_sample(path: str | Path, chunker_config: ChunkerConfig, embedder, cache: EmbeddingCache,
                  max_rows: int = DEFAULT_MAX_ROWS, seed: int = 0, progress: Progress | None = None,
                  by_document: bool = True) -> Sample:
    """A directory (or BEIR folder) chunked like a build and embedded through the embedder's cache."""
    source = adhoc_source(path)
    chunks = source_chunks(source, chunker_config, embedder)
    return chunk_sample(chunks, embedder, cache, str(source.resolved_path()), max_rows, seed, progress, by_document)


def parse_side(spec: str) -> tuple[str, str, int | str | None]:
    """('folder', path, None), ('parquet', path, None) or ('table', name, version) for a command-line side.

    An existing path (or one containing a path separator) is a folder or a Parquet file; otherwise `TABLE`
    or `TABLE@VERSION_OR_TAG` (a number is a version, anything else a tag).
    """
    path = Path(spec).expanduser()
    if path.exists() or os.sep in spec:
        if path.is_file() and path.suffix == ".parquet":
            return "parquet", str(path), None
        return "folder", str(path), None
    name, at, version = spec.partition("@")
    if not SAFE_NAME.match(name) or (at and not version):
        raise ConfigError(f"'{spec}' is neither an existing folder nor a table name (TABLE or TABLE@VERSION)")
    if not at:
        return "table", name, None
    return "table", name, int(version) if version.isdigit() else version


def load_side(spec: str, open_table: OpenTable, chunker_config: ChunkerConfig, embedder_factory: Callable[[], Any],
              cache_uri: str | Path, max_rows: int = DEFAULT_MAX_ROWS, seed: int = 0, with_text: bool = False,
              progress: Progress | None = None, by_document: bool = True) -> Sample:
    """The (chunk-row) sample a command-line side names (see parse_side). Tables are opened by `open_table`;
    the embedder is loaded only for folders, which are embedded through the embedding cache at `cache_uri`.
    Pass the result through as_unit for document rows."""
    kind, name, version = parse_side(spec)
    if kind == "folder":
        embedder = embedder_factory()
        cache = EmbeddingCache(str(cache_uri), embedder.fingerprint.id, embedder.dimension)
        return source_sample(name, chunker_config, embedder, cache, max_rows, seed, progress, by_document)
    if kind == "parquet":
        return parquet_sample(name, max_rows, seed, by_document=by_document)
    try:
        return table_sample(open_table(name, version), f"{name}@{version}" if version is not None else name,
                            max_rows=max_rows, seed=seed, with_text=with_text, by_document=by_document)
    except ValueError as error:  # a missing version or tag, or vectors of several models
        if isinstance(error, ConfigError):
            raise
        raise ConfigError(f"{spec}: {error}") from None


def previous_source_tag(tags: dict[str, dict], source: str, before_version: int) -> str | None:
    """The newest build tag of `source` (see BuildTag) at a table version below `before_version`, or None."""
    best: tuple[int, str] | None = None
    for name, info in tags.items():
        tag = BuildTag.parse(name)
        if tag is None or tag.source != source:
            continue
        version = int(info.get("version", tag.version)) if isinstance(info, dict) else tag.version
        if version < before_version and (best is None or (version, name) > best):
            best = (version, name)
    return best[1] if best else None
