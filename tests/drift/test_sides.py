"""Drift sides: command-line specs, tables at a version, and folders embedded through the embedding cache once."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ragindex.build_tag import BuildTag
from ragindex.config import ChunkerConfig
from ragindex.drift.sides import load_side, parse_side, previous_source_tag, source_sample
from ragindex.embedding_cache import EmbeddingCache
from ragindex.errors import ConfigError
from ragindex.source_registry import adhoc_source
from ragindex.storage import connect

CHUNKER = ChunkerConfig(max_tokens=64, overlap_tokens=8)


def _folder(root):
    folder = root / "garden"
    folder.mkdir()
    for name, text in {"roses.md": "# Roses\n\nPrune roses in late winter before the buds swell.",
                       "soil.md": "# Soil\n\nCompost feeds the soil and keeps it loose and moist.",
                       "tools.txt": "Sharpen the secateurs and oil the hinges of the shears."}.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def _open(db):
    def open_table(name, version):
        table = db.open_table(name)
        if version is not None:
            table.checkout(version)
        return table
    return open_table


def test_parse_side():
    assert parse_side("chunks") == ("table", "chunks", None)
    assert parse_side("chunks@3") == ("table", "chunks", 3)
    assert parse_side("chunks@docs-20250101T000000-v3") == ("table", "chunks", "docs-20250101T000000-v3")
    for bad in ("bad name", "chunks@", "@3"):
        with pytest.raises(ConfigError, match="neither an existing folder nor a table name"):
            parse_side(bad)


def test_a_folder_is_embedded_once_then_read_from_the_cache(tmp_path, embedder):
    folder = _folder(tmp_path)
    cache = EmbeddingCache(str(tmp_path / "cache"), embedder.fingerprint.id, embedder.dimension)
    messages: list[str] = []
    first = source_sample(folder, CHUNKER, embedder, cache, progress=messages.append)
    assert first.label == adhoc_source(folder).path and first.fingerprint == embedder.fingerprint.id
    assert len(first) == first.total == 3 and sorted(first.groups) == ["roses.md", "soil.md", "tools.txt"]
    assert cache.rows() == 3 and messages == ["embedded 3/3 new texts"]
    np.testing.assert_allclose(np.linalg.norm(first.vectors, axis=1), 1.0, rtol=1e-4)

    factory_calls = []

    def factory():
        factory_calls.append(1)
        return embedder

    second = load_side(str(folder), None, CHUNKER, factory, tmp_path / "cache", progress=messages.append)
    assert factory_calls == [1] and messages == ["embedded 3/3 new texts"]  # nothing embedded the second time
    assert second.ids == first.ids and np.array_equal(second.vectors, first.vectors) and cache.rows() == 3


def test_tables_and_parquet_sides_never_load_the_model(tmp_path):
    def rows(start):
        return pa.table({"chunk_id": [f"c{start + i}" for i in range(4)], "doc_id": [f"d{start + i}" for i in range(4)],
                         "fingerprint": ["fpA"] * 4,
                         "vector": pa.FixedSizeListArray.from_arrays(pa.array(np.ones(16, np.float32)), 4)})

    db = connect(str(tmp_path / "lancedb"))
    table = db.create_table("chunks", rows(0))
    table.add(rows(4))
    pq.write_table(rows(0), tmp_path / "vectors.parquet")

    def no_model():
        raise AssertionError("the model was loaded")

    at_one = load_side("chunks@1", _open(db), CHUNKER, no_model, tmp_path / "cache")
    latest = load_side("chunks", _open(db), CHUNKER, no_model, tmp_path / "cache")
    assert (at_one.label, len(at_one), latest.label, len(latest)) == ("chunks@1", 4, "chunks", 8)
    parquet = load_side(str(tmp_path / "vectors.parquet"), _open(db), CHUNKER, no_model, tmp_path / "cache")
    assert len(parquet) == 4 and parquet.fingerprint == "fpA"
    with pytest.raises(ConfigError, match="^chunks@99: "):
        load_side("chunks@99", _open(db), CHUNKER, no_model, tmp_path / "cache")


def test_previous_source_tag_is_the_newest_build_of_that_source_below_the_version():
    def tag(source, day, version):
        return str(BuildTag.parse(f"{source}-202501{day:02d}T120000-v{version}"))

    tags = {tag("docs", 1, 2): {"version": 2}, tag("docs", 2, 5): {"version": 5}, tag("docs", 3, 9): {"version": 9},
            tag("docs-extra", 4, 7): {"version": 7}, "release": {"version": 8}}
    assert previous_source_tag(tags, "docs", 9) == tag("docs", 2, 5)
    assert previous_source_tag(tags, "docs", 3) == tag("docs", 1, 2)
    assert previous_source_tag(tags, "docs", 2) is None
    assert previous_source_tag(tags, "docs-extra", 8) == tag("docs-extra", 4, 7)
