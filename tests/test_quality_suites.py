"""Each expectation suite on tiny DataFrames and tables: good data passes, each bad case fails by name."""

import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from ragindex.config import AnnConfig, IndexConfig, QualityConfig
from ragindex.index_store import IndexStore, index_schema
from ragindex.quality import (
    Batch,
    ExpectationSpec,
    validate,
    validate_chunks,
    validate_documents,
    validate_embeddings,
    validate_index,
    vectors_table,
    write_artifacts,
)

ROOT = Path(__file__).resolve().parents[1]
MAX_LEN = 256


def failures(result) -> set[tuple[str, str | None]]:
    return {(o.expectation, o.column) for o in result.failed}


# ---------------------------------------------------------------------------------------------- documents

def documents(**overrides) -> pd.DataFrame:
    frame = pd.DataFrame({
        "doc_id": ["guide.md", "notes.txt", "ref.rst"],
        "text": ["# Guide\n\nIntro.\n\n## Install\n\nUse pip.", "Plain notes.\n\fNext page.",
                 "Reference\n=========\n\nTables hold rows."],
        "size": [40, 26, 38],
        "format": ["markdown", "text", "rst"],
        "title": ["Guide", "Plain notes.", "Reference"],
    })
    for column, values in overrides.items():
        frame[column] = values
    return frame


def test_documents_good_and_empty_pass():
    result = validate_documents(documents(), max_bytes=1000)
    assert result.success and result.evaluated == 6 and not result.failed, result.markdown()
    assert validate_documents(documents().iloc[0:0], max_bytes=1000).success


@pytest.mark.parametrize("column, values, expected", [
    ("doc_id", ["a", "a", "b"], ("expect_column_values_to_be_unique", "doc_id")),
    ("text", ["ok", "   \n", "ok"], ("expect_column_values_to_match_regex", "text")),
    ("text", ["ok", "caf\ufffd", "ok"], ("expect_column_values_to_not_match_regex", "text")),
    ("text", ["ok", "bin\x00ary", "ok"], ("expect_column_values_to_not_match_regex", "text")),
    ("size", [40, 5000, 38], ("expect_column_values_to_be_between", "size")),
    ("size", [40, 0, 38], ("expect_column_values_to_be_between", "size")),
])
def test_documents_bad_cases_fail_by_name(column, values, expected):
    result = validate_documents(documents(**{column: values}), max_bytes=1000)
    assert not result.success and failures(result) == {expected}, result.markdown()
    failed = result.failed[0]
    assert failed.unexpected_count >= 1 and 1 <= len(failed.examples) <= 5
    assert "doc_id" in failed.examples[0]  # examples name the row


# ------------------------------------------------------------------------------------------------- chunks

def chunks(**overrides) -> pd.DataFrame:
    frame = pd.DataFrame({
        "chunk_id": ["c1", "c2", "c3", "c4"],
        "doc_id": ["guide.md", "guide.md", "notes.txt", "ref.rst"],
        "heading_path": ["Guide", "Guide > Install", "Plain notes.", "Reference"],
        "n_tokens": [6, 8, 7, 9],
        "text": ["Guide\n\nIntro.", "Guide > Install\n\nUse pip.", "Plain notes.", "Reference\n\nTables hold rows."],
    })
    for column, values in overrides.items():
        frame[column] = values
    return frame


def words(texts: list[str]) -> list[int]:  # a stand-in tokenizer: words plus [CLS] and [SEP]
    return [len(t.split()) + 2 for t in texts]


def test_chunks_good_and_empty_pass():
    result = validate_chunks(chunks(), documents(), MAX_LEN, words)
    assert result.success and result.evaluated == 7, result.markdown()
    assert validate_chunks(chunks().iloc[0:0], documents().iloc[0:0], MAX_LEN, words).success


@pytest.mark.parametrize("overrides, expected", [
    ({"n_tokens": [6, 300, 7, 9]}, {("expect_column_values_to_be_between", "n_tokens")}),
    ({"n_tokens": [6, 0, 7, 9]}, {("expect_column_values_to_be_between", "n_tokens")}),
    ({"chunk_id": ["c1", "c1", "c3", "c4"]}, {("expect_column_values_to_be_unique", "chunk_id")}),
    ({"doc_id": ["guide.md", "guide.md", "gone.md", "ref.rst"]},
     {("expect_column_values_to_be_in_set", "document_exists")}),
    ({"heading_path": ["Guide", "", "Plain notes.", "Reference"]},
     {("expect_column_values_to_be_in_set", "heading_path_in_document")}),
    ({"text": ["Guide\n\nIntro.", " ", "Plain notes.", "Reference"]},
     {("expect_column_values_to_match_regex", "text")}),
])
def test_chunks_bad_cases_fail_by_name(overrides, expected):
    result = validate_chunks(chunks(**overrides), documents(), MAX_LEN, words)
    assert not result.success and failures(result) == expected, result.markdown()


def test_chunks_recount_with_the_model_tokenizer_catches_a_wrong_recorded_count():
    long_text = "word " * 400
    frame = chunks(text=["Guide\n\nIntro.", long_text, "Plain notes.", "Reference"])
    result = validate_chunks(frame, documents(), MAX_LEN, words)  # recorded n_tokens says 8
    assert failures(result) == {("expect_column_values_to_be_between", "model_tokens")}
    assert result.failed[0].examples[0]["model_tokens"] == 402 and result.failed[0].examples[0]["chunk_id"] == "c2"


# --------------------------------------------------------------------------------------------- embeddings

DIM = 8


def unit_vectors(n: int, dim: int = DIM, seed: int = 0) -> np.ndarray:
    matrix = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)


def embeddings(matrix=None, ids=None, chunk_ids=None, fingerprints=None, dim=DIM):
    ids = ids or ["c1", "c2", "c3"]
    matrix = unit_vectors(3) if matrix is None else matrix
    return validate_embeddings(vectors_table(ids, list(matrix)), chunk_ids or ["c1", "c2", "c3"], dim, "fp-model",
                               fingerprints or {"embedding batch": ["fp-model"], "table": ["fp-model"]})


def test_embeddings_good_and_empty_pass():
    result = embeddings()
    assert result.success and result.evaluated == 8, result.markdown()
    empty = validate_embeddings(vectors_table([], []), [], DIM, "fp-model",
                                {"embedding batch": ["fp-model"], "table": []})
    assert empty.success, empty.markdown()


def test_embeddings_nan_and_infinity_fail():
    matrix = unit_vectors(3)
    matrix[1, 2] = np.nan
    matrix[2, 0] = np.inf
    result = embeddings(matrix)
    assert failures(result) == {("expect_column_values_to_be_in_set", "vector_is_finite")}, result.markdown()
    assert result.failed[0].unexpected_count == 2
    assert [e["chunk_id"] for e in result.failed[0].examples] == ["c2", "c3"]


def test_embeddings_not_unit_norm_fails():
    matrix = unit_vectors(3)
    matrix[0] *= 1.01
    result = embeddings(matrix)
    assert failures(result) == {("expect_column_values_to_be_between", "vector_norm")}
    assert embeddings(unit_vectors(3) * 1.0005).success  # within the 1e-3 tolerance


def test_embeddings_wrong_dimension_fails():
    result = embeddings(unit_vectors(3, dim=4), dim=DIM)
    assert ("expect_column_values_to_be_between", "vector_dimension") in failures(result)
    ragged = [*unit_vectors(2), unit_vectors(1, dim=5)[0]]  # one short row among good ones: judged, not a crash
    result = validate_embeddings(vectors_table(["c1", "c2", "c3"], ragged), ["c1", "c2", "c3"], DIM, "fp-model",
                                 {"embedding batch": ["fp-model"]})
    assert failures(result) == {("expect_column_values_to_be_between", "vector_dimension")}, result.markdown()
    assert [e["chunk_id"] for e in result.failed[0].examples] == ["c3"]


def test_embeddings_missing_or_misaligned_vectors_fail():
    result = embeddings(ids=["c1", "c3", "c2"])
    assert failures(result) == {("expect_column_pair_values_to_be_equal", "chunk_id, chunk_id_in_chunks")}
    missing = embeddings(unit_vectors(2), ids=["c1", "c2"])
    assert failures(missing) == {("expect_table_row_count_to_equal", None)}
    extra = embeddings(chunk_ids=["c1", "c2"])
    assert failures(extra) == {("expect_table_row_count_to_equal", None),
                               ("expect_column_pair_values_to_be_equal", "chunk_id, chunk_id_in_chunks")}


def test_embeddings_two_model_fingerprints_fail():
    result = embeddings(fingerprints={"embedding batch": ["fp-model"], "table chunks": ["fp-old"]})
    assert failures(result) == {("expect_column_values_to_be_in_set", "fingerprint"),
                                ("expect_column_unique_value_count_to_be_between", "fingerprint")}
    assert {"fingerprint": "fp-old", "origin": "table chunks"} in result.failed[0].examples


# -------------------------------------------------------------------------------------------------- index

ROWS = 300


def index_rows(n: int, start: int = 0, source: str = "docs") -> pa.Table:
    ids = [f"c{i}" for i in range(start, start + n)]
    matrix = unit_vectors(n, 16, seed=start)
    columns = {field.name: [None] * n for field in index_schema(16)}
    columns.update({"chunk_id": ids, "doc_id": [f"d{i // 3}" for i in range(start, start + n)],
                    "source": [source] * n, "text": [f"text number {i}" for i in range(start, start + n)],
                    "title": ["t"] * n, "fingerprint": ["fp"] * n, "n_tokens": [5] * n, "position": [0] * n,
                    "vector": pa.FixedSizeListArray.from_arrays(pa.array(matrix.ravel()), 16)})
    return pa.table(columns, schema=index_schema(16))


@pytest.fixture(scope="module")
def indexed(tmp_path_factory):
    """A table of 300 rows with chunk-id, FTS and ANN (IVF_HNSW_SQ, 8 partitions) indexes."""
    config = IndexConfig(uri=str(tmp_path_factory.mktemp("lancedb")), table="chunks",
                         ann=AnnConfig(min_rows=0, num_partitions=8, nprobes=20))
    store = IndexStore.at(config)
    store.commit_source("docs", index_rows(ROWS), 16, [])
    store.ensure_indexes()
    return store


def run_index(store, quality=None, staged=None, kept=None, build_rows=ROWS, config=None):
    table = store.open()
    staged = [f"c{i}" for i in range(ROWS)] if staged is None else staged
    return validate_index(table, config or store.config, quality or QualityConfig(recall_sample_size=20), "docs",
                          build_rows, staged, kept or [])


def test_index_good_passes_with_recall(indexed):
    result = run_index(indexed)
    assert result.success, result.markdown()
    assert set(result.rows) == {"table", "indexes", "ann_recall"} and result.rows["ann_recall"] == 20
    assert result.observed["ann_recall_at_10"] >= 0.9 and result.observed["max_unindexed_share"] == 0


def test_index_low_ann_recall_fails(indexed):
    # one probe of 8 partitions and no HNSW breadth: the ANN search misses many exact neighbours
    config = indexed.config.model_copy(update={"ann": indexed.config.ann.model_copy(update={"nprobes": 1, "ef": 10})})
    result = run_index(indexed, config=config)
    assert failures(result) == {("expect_column_mean_to_be_between", "recall_at_10")}, result.markdown()
    assert result.observed["ann_recall_at_10"] < 0.9


def test_index_row_count_mismatch_fails(indexed):
    result = run_index(indexed, staged=[f"c{i}" for i in range(ROWS)] + ["lost"], build_rows=ROWS + 1)
    assert failures(result) == {("expect_column_pair_values_to_be_equal", "source_rows, manifest_chunks"),
                                ("expect_column_pair_values_to_be_equal", "table_rows, build_rows"),
                                ("expect_column_values_to_be_between", "staged_chunks_missing")}, result.markdown()


def test_index_missing_fts_and_unindexed_rows_fail(tmp_path):
    config = IndexConfig(uri=str(tmp_path), table="chunks", fts=False, ann=AnnConfig(min_rows=100_000))
    store = IndexStore.at(config)
    store.commit_source("docs", index_rows(40), 16, [])
    store.ensure_indexes()  # chunk-id index only: FTS is off
    store.commit_source("docs", index_rows(10, start=40), 16, [])  # 10 of 50 rows not in the chunk-id index
    wanted = config.model_copy(update={"fts": True})
    result = validate_index(store.open(), wanted, QualityConfig(), "docs", 50, [f"c{i}" for i in range(50)], [])
    assert failures(result) == {("expect_column_values_to_be_in_set", "present"),
                                ("expect_column_values_to_be_between", "unindexed_share")}, result.markdown()
    missing = {e["index"] for e in result.failed[0].examples}
    assert missing == {"text FTS", "title FTS"}
    assert any("not configured at this size" in note for note in result.notes)  # no ANN below min_rows


def test_artifacts_json_and_data_docs(tmp_path):
    result = validate_documents(documents(doc_id=["a", "a", "b"]), max_bytes=1000)
    paths = write_artifacts(result, tmp_path / "quality")
    assert [p.name for p in paths] == ["documents.json", "documents.documents.html"]
    assert sorted((tmp_path / "quality").iterdir()) == sorted(paths)
    saved = json.loads(paths[0].read_text())
    assert saved["summary"]["failed"][0]["expectation"] == "expect_column_values_to_be_unique"
    assert saved["great_expectations"]["validations"]["documents"]["success"] is False
    assert "expect_column_values_to_be_unique" in paths[1].read_text() or "unique" in paths[1].read_text()
    assert "| ❌ | documents | `expect_column_values_to_be_unique` | doc_id | 2 | doc_id=" in result.markdown()


def test_data_docs_render_numpy_values_without_a_logged_traceback(tmp_path, caplog):
    # GE's own metrics are numpy floats (a column mean); its renderer rejects them with a logged traceback
    recall = pd.DataFrame({"query_chunk_id": ["q1", "q2", "q3"], "recall_at_10": np.array([1.0, 0.976, 1.0])})
    rule = ExpectationSpec("ExpectColumnMeanToBeBetween",
                           {"column": "recall_at_10", "min_value": np.float64(0.9), "max_value": np.float64(1.0)})
    result = validate("index", [Batch("ann_recall", recall, [rule], ["query_chunk_id"])])
    assert result.success and result.outcomes[0].observed == pytest.approx(0.992)
    with caplog.at_level(logging.WARNING):
        paths = write_artifacts(result, tmp_path)
    assert [r.getMessage()[:200] for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert [p.name for p in paths] == ["index.json", "index.ann_recall.html"] and not result.notes
    html = paths[1].read_text(encoding="utf-8")
    assert "0.992" in html and "num_to_str" not in html


def test_loading_the_definitions_does_not_import_great_expectations():
    code = ("import sys, pipelines.definitions; "
            "assert 'great_expectations' not in sys.modules, 'GE imported at definition load'")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def test_vectors_table_keeps_the_arrays_exactly_with_64_bit_offsets():
    matrix = unit_vectors(3)
    table = vectors_table(["c1", "c2", "c3"], list(matrix))
    assert table.schema.field("vector").type == pa.large_list(pa.float32())  # 32-bit offsets overflow past 5.6M
    assert np.array_equal(np.stack(table.column("vector").to_numpy(zero_copy_only=False)), matrix.astype(np.float32))
    assert table.column("chunk_id").to_pylist() == ["c1", "c2", "c3"]
