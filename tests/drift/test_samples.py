"""Drift samples: seeded table and Parquet samples (whole documents, one model, one source) and document rows."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ragindex.drift.samples import Sample, as_unit, parquet_sample, sample_positions, source_filter, table_sample
from ragindex.storage import connect


def _rows(n: int, source: str, fingerprint: str = "fpA", start: int = 0) -> pa.Table:
    vectors = np.random.default_rng(start).standard_normal((n, 4)).astype(np.float32)
    return pa.table({"chunk_id": [f"c{start + i:03d}" for i in range(n)],
                     "doc_id": [f"d{(start + i) // 2}" for i in range(n)], "source": [source] * n,
                     "text": [f"text {start + i}" for i in range(n)], "fingerprint": [fingerprint] * n,
                     "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), 4)})


def test_document_rows_are_the_normalised_mean_of_their_chunks():
    vectors = np.array([[1, 0], [0, 1], [3, 4]], dtype=np.float32)
    sample = Sample("s", vectors, "fp", 3, ["a", "b", "c"], None, ["d1", "d1", "d2"])
    docs = as_unit(sample, "document")
    assert docs.unit == "document" and docs.ids == ["d1", "d2"] and docs.total == 2
    np.testing.assert_allclose(docs.vectors, [[2 ** -0.5, 2 ** -0.5], [0.6, 0.8]], rtol=1e-6)
    assert as_unit(docs, "document") is docs and as_unit(sample, "chunk") is sample
    with pytest.raises(ValueError, match="unit must be"):
        as_unit(sample, "sentence")


def test_sample_positions_are_seeded_and_sorted():
    picked = sample_positions(100, 10, seed=3)
    assert list(picked) == sorted(picked) and len(set(picked.tolist())) == 10
    assert list(picked) == list(sample_positions(100, 10, seed=3)) != list(sample_positions(100, 10, seed=4))
    assert list(sample_positions(5, 10, seed=0)) == [0, 1, 2, 3, 4]


def test_table_sample_keeps_one_source_whole_documents_and_is_seeded(tmp_path):
    table = connect(str(tmp_path)).create_table("chunks", _rows(40, "o'brien"))
    table.add(_rows(10, "other", start=40))
    where = source_filter("o'brien")  # a quote in the name is escaped, not pasted into the SQL
    sample = table_sample(table, "chunks", where=where, max_rows=11, seed=1, with_text=True)
    assert sample.label == "chunks where source = 'o''brien'" and sample.total == 40
    assert len(sample) == 10 and sample.vectors.shape == (10, 4) and sample.fingerprint == "fpA"
    assert all(sample.groups.count(doc) == 2 for doc in sample.groups)  # whole documents only
    assert sample.texts == [f"text {int(c[1:])}" for c in sample.ids] and sample.ids == sorted(sample.ids)
    again = table_sample(table, "chunks", where=where, max_rows=11, seed=1, with_text=True)
    assert again.ids == sample.ids and np.array_equal(again.vectors, sample.vectors)
    rest = table_sample(table, "chunks", where=where, exclude_ids=sample.ids)
    assert rest.total == 30 and not set(rest.ids) & set(sample.ids)


def test_table_sample_refuses_vectors_of_two_models(tmp_path):
    table = connect(str(tmp_path)).create_table("chunks", _rows(4, "docs"))
    table.add(_rows(4, "docs", fingerprint="fpB", start=4))
    with pytest.raises(ValueError, match="mixes vectors of several models"):
        table_sample(table, "chunks")


def test_parquet_sample_takes_document_ids_from_the_chunks_file(tmp_path):
    rows = _rows(12, "docs")
    pq.write_table(rows.select(["chunk_id", "vector", "fingerprint"]), tmp_path / "vectors.parquet")
    pq.write_table(rows.select(["chunk_id", "doc_id"]), tmp_path / "chunks.parquet")
    sample = parquet_sample(tmp_path / "vectors.parquet", max_rows=5, seed=0, fingerprint="fpA",
                            chunks_path=tmp_path / "chunks.parquet")
    assert sample.total == 12 and len(sample) == 4 and sample.fingerprint == "fpA"
    assert sorted(set(sample.groups)) == sorted({f"d{int(c[1:]) // 2}" for c in sample.ids})
    assert all(sample.groups.count(doc) == 2 for doc in sample.groups)
    with pytest.raises(ValueError, match="mixes vectors"):
        parquet_sample(tmp_path / "vectors.parquet", fingerprint="fpB")
