"""In-memory dense search: the same top k as LanceDB's exact search, with and without filters."""

import json

import numpy as np
import pyarrow as pa
import pytest

from ragindex.access import combine
from ragindex.config import AnnConfig, IndexConfig, SearchConfig
from ragindex.dense_search import DenseIndex, parse_where
from ragindex.index_store import IndexStore, index_schema, where_clause
from ragindex.search import Retriever
from tests.conftest import SHARED

MSMARCO = SHARED / "datasets" / "msmarco-5k"
FINANCE = {f"c{i:04d}" for i in range(600) if i % 7 == 0}  # rows only the finance group may see


def _store(tmp_path, ids, vectors, sources, titles) -> IndexStore:
    n, dim = vectors.shape
    columns = {name: [""] * n for name in index_schema(dim).names}
    columns.update({"chunk_id": ids, "doc_id": ids, "source": sources, "text": [f"text of {i}" for i in ids],
                    "title": titles, "position": [0] * n, "n_tokens": [3] * n, "doc_size": [1] * n,
                    "doc_mtime": [0.0] * n, "page": [None] * n, "kind": ["text"] * n, "image_path": [None] * n,
                    "groups": [["public"] if i % 7 else ["finance"] for i in range(n)],
                    "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel(), pa.float32()), dim)})
    store = IndexStore.at(IndexConfig(uri=str(tmp_path / "lancedb"), ann=AnnConfig(min_rows=100_000)))
    store.commit_source("s", pa.Table.from_pydict(columns, schema=index_schema(dim)), dim, [])
    store.ensure_indexes()
    return store


def _both(retriever: Retriever, **kwargs) -> tuple[list, list]:
    """(in-memory hits, LanceDB exact hits) for the same search."""
    mine = retriever.search(mode="dense_exact", **kwargs)
    index, retriever.dense_index = retriever.dense_index, None
    try:
        return mine, retriever.search(mode="dense_exact", **kwargs)
    finally:
        retriever.dense_index = index


def test_parse_where_inverts_where_clause():
    filters = {"title": "it's AND source = 'x'", "source": "a", "doc_id": ""}
    assert parse_where(where_clause(filters)) == filters
    assert parse_where(None) == {} and parse_where("source = 'a' OR 1 = 1") is None


def test_same_top_k_as_lancedb_with_prefilters(tmp_path, embedder):
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(600, 384)).astype(np.float32)
    ids = [f"c{i:04d}" for i in range(600)]
    store = _store(tmp_path, ids, vectors, ["a", "b", "c"] * 200, ["it's"] * 300 + ["plain"] * 300)
    retriever = Retriever(store, embedder, SearchConfig())
    assert retriever.dense_index is not None and len(retriever.dense_index.rows) == 600
    for query in rng.normal(size=(5, 384)).astype(np.float32):
        for filters in ({}, {"source": "b"}, {"source": "a", "title": "it's"}, {"source": "nowhere"}):
            where = combine(retriever.visible(), where_clause(filters))
            assert retriever.dense_index.search(query, 10, where) is not None  # answered in memory, access included
            mine, lancedb = _both(retriever, query="unused", k=10, vector=query, filters=filters)
            assert [h.chunk_id for h in mine] == [h.chunk_id for h in lancedb]
            assert not {h.chunk_id for h in mine} & FINANCE  # the public caller never sees finance rows
            assert all(h.source == filters.get("source", h.source) for h in mine)
            np.testing.assert_allclose([h.score for h in mine], [h.score for h in lancedb], atol=1e-5)
            assert [h.text for h in mine] == [h.text for h in lancedb]
    assert _both(retriever, query="x", k=10, vector=vectors[3])[0][0].chunk_id == "c0003"
    finance = Retriever(store, embedder, SearchConfig(), groups=["finance"])
    assert _both(finance, query="x", k=10, vector=vectors[7])[0][0].chunk_id == "c0007"  # a finance row


def test_index_is_skipped_when_the_table_has_ann_or_is_too_big(tmp_path):
    store = _store(tmp_path, ["a", "b"], np.eye(2, 8, dtype=np.float32), ["s", "s"], ["", ""])
    assert DenseIndex.load(store.open(), ["chunk_id"], max_rows=1) is None
    index = DenseIndex.load(store.open(), ["chunk_id"])
    assert [row["chunk_id"] for row, _ in index.search(np.eye(1, 8)[0], 5)] == ["a", "b"]


@pytest.mark.skipif(not MSMARCO.is_dir(), reason="needs shared/datasets/msmarco-5k")
def test_msmarco_queries_same_top10(tmp_path, embedder):
    passages = [json.loads(line) for line in (MSMARCO / "corpus.jsonl").read_text().splitlines()[:150]]
    queries = [json.loads(line)["text"] for line in (MSMARCO / "queries.jsonl").read_text().splitlines()[:10]]
    vectors = embedder.embed([p["text"] for p in passages])
    store = _store(tmp_path, [p["_id"] for p in passages], vectors, ["msmarco"] * 150, [""] * 150)
    retriever = Retriever(store, embedder, SearchConfig())
    for query in queries:
        mine, lancedb = _both(retriever, query=query, k=10)
        assert [h.chunk_id for h in mine] == [h.chunk_id for h in lancedb]


@pytest.mark.skipif(not MSMARCO.is_dir(), reason="needs shared/datasets/msmarco-5k")
def test_keyword_rows_come_from_memory_once_loaded(tmp_path, embedder):
    """After a dense query loaded the rows, the chunk-text FTS reads ids and scores only and takes its rows from
    memory: the same hits, scores and fields as reading them through LanceDB; a chunk id the memory does not
    hold (another version) reads them through LanceDB."""
    passages = [json.loads(line) for line in (MSMARCO / "corpus.jsonl").read_text().splitlines()[:150]]
    ids = [p["_id"] for p in passages]
    store = _store(tmp_path, ids, embedder.embed([p["text"] for p in passages]), ["msmarco"] * 150, [""] * 150)
    store.open().update(values_sql={"text": "text || ' ' || chunk_id"})  # each row its own keyword
    queries = ["text of " + i for i in ids[:5]] + ["text"]
    retriever = Retriever(store, embedder, SearchConfig())
    before = [retriever.search(q, "fts", k=10) for q in queries]
    assert "dense_index" not in retriever.__dict__  # keyword search loaded no vectors
    retriever.search("anything", "dense", k=1)
    index = retriever.dense_index
    after = [retriever.search(q, "fts", k=10) for q in queries]
    assert index._positions is not None  # the in-memory path answered
    assert after == before and all(len(hits) == 10 for hits in after)
    assert index.rows_of([ids[0], "not-in-this-version"]) is None
    index._positions = {}  # as if loaded from another version: every id missing
    assert [retriever.search(q, "fts", k=10) for q in queries] == before
