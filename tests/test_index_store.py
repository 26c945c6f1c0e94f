"""The LanceDB store: quoted filters, one commit per source, no duplicates, tags and indexes."""

import numpy as np
import pyarrow as pa
import pytest

from ragindex.config import AnnConfig, IndexConfig
from ragindex.errors import ConfigError
from ragindex.index_store import IndexStore, index_schema, where_clause


def test_where_clause_quotes_values():
    assert where_clause({"doc_id": "it's", "source": "a"}) == "doc_id = 'it''s' AND source = 'a'"
    with pytest.raises(ConfigError):
        where_clause({"text; DROP": "x"})


def _rows(ids: list[str], doc: str, dim: int = 8) -> pa.Table:
    rng = np.random.default_rng(len(ids))
    vectors = rng.normal(size=(len(ids), dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    columns = {name: [""] * len(ids) for name in index_schema(dim).names}
    columns.update({"chunk_id": ids, "doc_id": [doc] * len(ids), "source": ["s"] * len(ids),
                    "text": [f"text {i}" for i in ids], "title": ["t"] * len(ids),
                    "position": list(range(len(ids))), "n_tokens": [3] * len(ids), "doc_size": [1] * len(ids),
                    "doc_mtime": [0.0] * len(ids), "page": [None] * len(ids),
                    "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), dim)})
    return pa.Table.from_pydict(columns, schema=index_schema(dim))


def test_commit_source_upserts_and_deletes_in_one_version(tmp_path):
    store = IndexStore.at(IndexConfig(uri=str(tmp_path), ann=AnnConfig(min_rows=10_000)))
    store.commit_source("s", _rows(["a", "b", "c"], "d1"), 8, [])
    assert store.count() == 3
    store.commit_source("s", _rows(["a", "b", "c"], "d1"), 8, [])
    assert store.count() == 3  # the same corpus twice: no duplicates
    before = store.open().version
    result = store.commit_source("s", _rows(["a", "x"], "d1"), 8, ["d1"])
    assert store.open().version == before + 1  # upserts and deletions landed in one commit
    assert (result.inserted, result.deleted) == (1, 2)
    assert sorted(store.open().to_arrow().column("chunk_id").to_pylist()) == ["a", "x"]
    actions = store.ensure_indexes()
    assert set(actions) == {"chunk_id", "text", "title"} and not store.has_ann()
    tag = store.tag("s")
    assert store.open().tags.list()[str(tag)]["version"] == tag.version
