"""LanceDB on an S3-compatible server on 127.0.0.1 (moto): index, search, build tags and time travel work
through an `s3://` index.uri, with storage options from the AWS_* environment (ragindex/storage.py)."""

from __future__ import annotations

import pytest
from conftest import WITH_SENTENCE, write_small_corpus
from services import s3_server

from ragindex.build import build_source
from ragindex.chunking import make_chunker
from ragindex.config import ChunkerConfig, IndexConfig, SourceConfig
from ragindex.embedding_cache import EmbeddingCache
from ragindex.index_store import IndexStore
from ragindex.search import Retriever
from ragindex.staging import StageStore

pytestmark = pytest.mark.slow


def test_index_search_tags_and_time_travel_on_s3(tmp_path, embedder, monkeypatch):
    corpus = write_small_corpus(tmp_path)
    source = SourceConfig(name="docs", type="directory", path=str(corpus), max_file_bytes=1_000_000)
    chunker = make_chunker(ChunkerConfig(max_tokens=64, overlap_tokens=8), embedder)
    with s3_server() as s3:
        for name, value in s3.env.items():
            monkeypatch.setenv(name, value)
        store = IndexStore.at(IndexConfig(uri=f"s3://{s3.bucket}/lancedb", table="chunks"))
        stages = StageStore(f"s3://{s3.bucket}/staging")
        cache = EmbeddingCache(str(tmp_path / "cache"), embedder.fingerprint.id, embedder.dimension)

        def build(run_id: str):
            return build_source(source, stages, store, chunker, cache, lambda: embedder,
                                embedder.fingerprint.as_dict(), run_id)

        first = build("run-1")
        assert first.rows == store.count() > 0 and first.indexes.get("text") == "created FTS"
        assert any(k.startswith("lancedb/chunks.lance/_versions/") for k in s3.keys("lancedb/"))
        assert not (tmp_path / "lancedb").exists()
        for mode in ("dense", "fts", "hybrid"):
            hits = Retriever(store, embedder).search("lighthouse keeper winds brass clockwork", mode=mode, k=3)
            assert WITH_SENTENCE in hits[0].text, mode

        page = corpus / "guide" / "lighthouse.md"
        page.write_text(page.read_text().replace("brass clockwork", "copper clockwork"), encoding="utf-8")
        second = build("run-2")
        assert second.inserted >= 1 and second.deleted >= 1 and second.version > first.version
        assert {first.tag, second.tag} <= set(store.tags())
        assert store.latest_tag("docs").version == second.version

        query = "keeper winds the clockwork every evening"
        now = Retriever(store, embedder).search(query, mode="fts", k=1)[0].text
        then = Retriever(store, embedder, version=first.tag).search(query, mode="fts", k=1)[0].text
        assert "copper clockwork" in now and "brass clockwork" in then  # time travel by build tag
        assert store.open(first.version).count_rows() == first.rows
