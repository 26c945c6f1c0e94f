"""The index suite: the committed table's counts, its indexes, and the ANN index's recall against exact search.

Where GE has no fitting expectation, a helper frame is computed first (table-level counts, each index's
unindexed share, each sampled query's recall@10) and validated by plain GE expectations.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from ragindex.config import ANN_MIN_ROWS_FLOOR, IndexConfig, QualityConfig
from ragindex.index_store import vector_query
from ragindex.lance_tables import scan_columns
from ragindex.quality.expectations import Batch, ExpectationSpec, SuiteResult, validate

RECALL_K = 10


def ann_min_rows(config: IndexConfig) -> int:
    """The row count from which the table carries an ANN index."""
    return max(config.ann.min_rows, ANN_MIN_ROWS_FLOOR)


def expected_indexes(config: IndexConfig, rows: int) -> dict[str, str]:
    """The indexes the index store builds for a table of this size: column -> kind."""
    from ragindex.index_store import FTS_COLUMNS

    expected: dict[str, str] = {}
    if rows:
        expected["chunk_id"] = "BTREE"
        if config.fts:
            expected.update({column: "FTS" for column in FTS_COLUMNS})
    if rows >= ann_min_rows(config):
        expected["vector"] = config.ann.index_type
    return expected


def index_presence(table, config: IndexConfig) -> pd.DataFrame:
    """One row per expected or existing index: present?, and the share of rows it does not cover yet."""
    rows = table.count_rows()
    existing = {tuple(i.columns)[0]: i for i in table.list_indices() if len(i.columns) == 1}
    expected = expected_indexes(config, rows)
    records = []
    for column in sorted(set(expected) | set(existing)):
        index = existing.get(column)
        share = None
        if index is not None:
            stats = table.index_stats(index.name)
            unindexed = stats.num_unindexed_rows if stats else 0
            share = unindexed / rows if rows else 0.0
        records.append({"index": f"{column} {expected.get(column) or str(index.index_type)}", "column": column,
                        "configured": column in expected, "present": index is not None,
                        "unindexed_share": share})
    return pd.DataFrame(records, columns=["index", "column", "configured", "present", "unindexed_share"]).astype(
        {"configured": bool, "present": bool, "unindexed_share": "float64"})


def _dense(table, query: np.ndarray, k: int, exact: bool, nprobes: int, ef: int,
           refine_factor: int | None) -> list[dict]:
    return vector_query(table, query, k, exact, nprobes, ef, refine_factor).select(
        ["chunk_id", "vector", "_distance"]).to_list()


def _cosine_distances(query: np.ndarray, rows: list[dict]) -> np.ndarray:
    if not rows:
        return np.zeros(0)
    matrix = np.asarray([r["vector"] for r in rows], dtype=np.float64)
    norms = np.linalg.norm(matrix, axis=1) * (np.linalg.norm(query) or 1.0)
    return 1.0 - (matrix @ query.astype(np.float64)) / np.where(norms == 0, 1.0, norms)


def ann_recall(table, k: int = RECALL_K, sample_size: int = 50, seed: int = 0, nprobes: int = 20, ef: int = 64,
               refine_factor: int | None = None) -> pd.DataFrame:
    """Recall@k of the ANN index against exact search, for a seeded sample of the table's own vectors used as
    queries. An ANN result counts when it is one of the exact top k, or as close to the query as the exact
    k-th (ties among equal vectors count either way)."""
    rows = table.count_rows()
    records = []
    if rows:
        rng = np.random.default_rng(seed)
        offsets = sorted(rng.choice(rows, size=min(sample_size, rows), replace=False).tolist())
        sample = table.take_offsets(offsets).select(["chunk_id", "vector"]).to_arrow()
        for chunk_id, vector in zip(sample.column("chunk_id").to_pylist(), sample.column("vector").to_pylist(),
                                    strict=True):
            query = np.asarray(vector, dtype=np.float32)
            exact = _dense(table, query, k, True, nprobes, ef, refine_factor)
            approx = _dense(table, query, k, False, nprobes, ef, refine_factor)
            if not exact:
                records.append({"query_chunk_id": chunk_id, "recall_at_10": 1.0})
                continue
            kth = float(_cosine_distances(query, exact).max())
            exact_ids = {r["chunk_id"] for r in exact}
            distances = _cosine_distances(query, approx)
            hits = sum(1 for r, d in zip(approx, distances, strict=True)
                       if r["chunk_id"] in exact_ids or d <= kth + 1e-5)
            records.append({"query_chunk_id": chunk_id, "recall_at_10": min(1.0, hits / len(exact))})
    return pd.DataFrame(records, columns=["query_chunk_id", "recall_at_10"]).astype({"recall_at_10": "float64"})


def index_facts(table, source: str, build_rows: int, staged_chunk_ids: Iterable[str],
                kept_doc_ids: Iterable[str]) -> pd.DataFrame:
    """One row of table-level counts. `manifest_chunks` is what the run's manifest says the source holds
    after the commit: this run's chunks (added and modified documents) plus the indexed chunks of the
    documents it kept (unchanged, or unreadable now and kept as they were)."""
    rows = table.count_rows()
    columns = ["chunk_id", "doc_id", "source", "fingerprint"]
    data = scan_columns(table, columns) if rows else pa.table({c: pa.array([], pa.string()) for c in columns})
    frame = data.to_pandas()
    ours = frame[frame["source"] == source]
    staged = set(staged_chunk_ids)
    kept = set(kept_doc_ids)
    return pd.DataFrame([{
        "table": getattr(table, "name", "table"),
        "table_rows": rows,
        "build_rows": int(build_rows),
        "source_rows": len(ours),
        "manifest_chunks": len(staged) + int(ours["doc_id"].isin(kept).sum()),
        "staged_chunks_missing": len(staged - set(ours["chunk_id"])),
        "duplicate_chunk_ids": int(frame["chunk_id"].duplicated().sum()),
        "table_fingerprints": int(frame["fingerprint"].nunique()),
    }])


def index_expectations() -> list[ExpectationSpec]:
    return [
        ExpectationSpec("ExpectColumnPairValuesToBeEqual", {"column_A": "source_rows", "column_B": "manifest_chunks"},
                        "the source's row count equals the manifest's chunk count"),
        ExpectationSpec("ExpectColumnPairValuesToBeEqual", {"column_A": "table_rows", "column_B": "build_rows"},
                        "the table holds the rows the build reported"),
        ExpectationSpec("ExpectColumnValuesToBeBetween",
                        {"column": "staged_chunks_missing", "min_value": 0, "max_value": 0},
                        "every chunk of this run was committed"),
        ExpectationSpec("ExpectColumnValuesToBeBetween",
                        {"column": "duplicate_chunk_ids", "min_value": 0, "max_value": 0}, "no duplicate chunk ids"),
        ExpectationSpec("ExpectColumnValuesToBeBetween",
                        {"column": "table_fingerprints", "min_value": 0, "max_value": 1},
                        "one model fingerprint per table"),
    ]


def indexes_expectations(max_unindexed_share: float) -> list[ExpectationSpec]:
    return [
        ExpectationSpec("ExpectColumnValuesToBeInSet", {"column": "present", "value_set": [True]},
                        "FTS, ANN and chunk-id indexes present where configured"),
        ExpectationSpec("ExpectColumnValuesToBeBetween",
                        {"column": "unindexed_share", "min_value": 0, "max_value": max_unindexed_share},
                        f"unindexed rows at most {max_unindexed_share:.0%} per index"),
    ]


def recall_expectations(min_recall: float) -> list[ExpectationSpec]:
    return [ExpectationSpec("ExpectColumnMeanToBeBetween",
                            {"column": "recall_at_10", "min_value": min_recall, "max_value": 1.0},
                            f"mean ANN recall@10 against exact search at least {min_recall}")]


def validate_index(table, config: IndexConfig, quality: QualityConfig, source: str, build_rows: int,
                   staged_chunk_ids: Iterable[str], kept_doc_ids: Iterable[str]) -> SuiteResult:
    """The committed table (open it at the build's version): counts, indexes, and ANN recall@10."""
    facts = index_facts(table, source, build_rows, staged_chunk_ids, kept_doc_ids)
    presence = index_presence(table, config)
    batches = [Batch("table", facts, index_expectations(), ["table"]),
               Batch("indexes", presence, indexes_expectations(quality.max_unindexed_share), ["index"])]
    rows = int(facts["table_rows"].iloc[0])
    shares = presence["unindexed_share"].dropna()
    observed: dict[str, Any] = {"table_rows": rows, "ann_recall_at_10": None,
                                "max_unindexed_share": float(shares.max()) if len(shares) else 0.0}
    notes = []
    if bool((presence["column"] == "vector").any() and presence.loc[presence["column"] == "vector", "present"].all()):
        ann = config.ann
        recall = ann_recall(table, RECALL_K, quality.recall_sample_size, quality.recall_seed, ann.nprobes, ann.ef,
                            ann.refine_factor)
        observed["ann_recall_at_10"] = float(recall["recall_at_10"].mean()) if len(recall) else None
        batches.append(Batch("ann_recall", recall, recall_expectations(quality.min_ann_recall_at_10),
                             ["query_chunk_id"]))
    elif "vector" in expected_indexes(config, rows):
        notes.append("ANN recall@10: no ANN index to measure (its absence fails the presence expectation)")
    else:
        notes.append(f"ANN index and recall@10: not configured at this size ({rows} rows < "
                     f"{ann_min_rows(config)}); the table is searched exactly")
    return validate("index", batches, notes, observed)
