"""Expectation suites for each stage of the build, validated with Great Expectations 1.x on pandas DataFrames.

Each suite is a list of `ExpectationSpec`s (a GE expectation class name and its arguments) over one or more
DataFrames ("batches"). Where GE has no fitting expectation, a helper column is computed with numpy or pandas
first (a vector's norm, whether a chunk's document exists, an index's unindexed share, a query's ANN recall)
and that column is validated by a plain GE expectation, so every rule is reported the same way.

Great Expectations is imported inside `validate` and the renderer only: importing it takes seconds, and the
Dagster definitions that import this module must load fast.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ragindex.chunking import HEADING_SEPARATOR, document_sections
from ragindex.config import IndexConfig, QualityConfig

MAX_EXAMPLES = 5
EXAMPLE_WIDTH = 80
RECALL_K = 10
ANN_FLOOR_ROWS = 256  # IndexStore.ensure_indexes never builds an ANN index below this many rows
# Text that did not decode cleanly: NUL and other C0 control characters (tab, newlines and form feed are
# fine) or U+FFFD, the replacement character a lossy decode leaves behind.
UNDECODABLE = "[\x00-\x08\x0b\x0e-\x1f\ufffd]"
NON_BLANK = r"\S"


@dataclass(frozen=True)
class ExpectationSpec:
    """One expectation in code: a GE 1.x expectation class name (gx.expectations.<type>) and its arguments."""

    type: str
    kwargs: dict[str, Any]
    note: str = ""  # what the rule means for the index, shown in the summary

    def build(self):
        import great_expectations as gx

        return getattr(gx.expectations, self.type)(**self.kwargs, meta={"note": self.note} if self.note else None)


@dataclass
class Batch:
    """A DataFrame and the expectations validated on it; id columns name the rows in failure examples."""

    name: str
    frame: pd.DataFrame
    expectations: list[ExpectationSpec]
    id_columns: list[str] = field(default_factory=list)


@dataclass
class ExpectationOutcome:
    """One evaluated expectation: its GE type, column, how many values failed and a few examples."""

    batch: str
    expectation: str  # GE's snake-case type, e.g. expect_column_values_to_be_unique
    column: str | None
    success: bool
    unexpected_count: int
    examples: list[Any]
    observed: Any = None
    note: str = ""
    error: str | None = None  # the exception GE raised while evaluating, if any

    def as_dict(self) -> dict:
        return {"batch": self.batch, "expectation": self.expectation, "column": self.column,
                "success": self.success, "unexpected_count": self.unexpected_count, "examples": self.examples,
                "observed": self.observed, "note": self.note, "error": self.error}


FailedExpectation = ExpectationOutcome


@dataclass
class SuiteResult:
    """The outcome of one suite over its batches, plus GE's own JSON (`raw`)."""

    suite: str
    success: bool
    outcomes: list[ExpectationOutcome]
    rows: dict[str, int]
    raw: dict
    notes: list[str] = field(default_factory=list)
    observed: dict[str, Any] = field(default_factory=dict)
    validations: dict[str, Any] = field(default_factory=dict, repr=False)  # GE result objects, for HTML

    @property
    def failed(self) -> list[ExpectationOutcome]:
        return [o for o in self.outcomes if not o.success]

    @property
    def evaluated(self) -> int:
        return len(self.outcomes)

    def as_dict(self) -> dict:
        return {"suite": self.suite, "success": self.success, "evaluated": self.evaluated,
                "failed": [o.as_dict() for o in self.failed], "rows": self.rows, "notes": self.notes,
                "observed": self.observed}

    def headline(self) -> str:
        if self.success:
            return f"{self.suite}: all {self.evaluated} expectations passed on {sum(self.rows.values())} rows"
        names = ", ".join(f"{o.expectation}({o.column})" if o.column else o.expectation for o in self.failed)
        return f"{self.suite}: {len(self.failed)} of {self.evaluated} expectations failed: {names}"

    def markdown(self) -> str:
        """A summary table for the Dagster UI: failures first, with counts and examples."""
        status = "**passed**" if self.success else f"**failed** ({len(self.failed)} of {self.evaluated})"
        lines = [f"Suite `{self.suite}`: {status}; rows: "
                 + ", ".join(f"{name} {count}" for name, count in self.rows.items()), "",
                 "| | batch | expectation | column | unexpected | observed / examples | rule |",
                 "|---|---|---|---|---|---|---|"]
        for o in sorted(self.outcomes, key=lambda o: o.success):
            detail = o.error or (", ".join(_cell(e) for e in o.examples) if o.examples else _cell(o.observed))
            lines.append(f"| {'✅' if o.success else '❌'} | {o.batch} | `{o.expectation}` | {o.column or ''} | "
                         f"{o.unexpected_count} | {detail} | {_cell(o.note)} |")
        if self.notes:
            lines += ["", *[f"- {note}" for note in self.notes]]
        return "\n".join(lines)


def _cell(value: Any, width: int = 100) -> str:
    if value is None:
        return ""
    if isinstance(value, dict):
        value = " ".join(f"{k}={v!r}" for k, v in value.items())
    text = " ".join(str(value).split()).replace("|", "\\|")
    return text if len(text) <= width else text[: width - 1] + "…"


def _plain(value: Any) -> Any:
    """JSON-safe, short values for examples."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, str) and len(value) > EXAMPLE_WIDTH:
        return value[: EXAMPLE_WIDTH - 1] + "…"
    return value


def _gx_context():
    """An ephemeral GE context: in memory, no analytics, no progress bars, no Data Docs site of its own."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(analytics_enabled=False, progress_bars=ProgressBarsConfig(globally=False),
                               store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False))
    return gx.get_context(mode="ephemeral", project_config=config)


def _outcome(batch: str, result, id_columns: Sequence[str]) -> ExpectationOutcome:
    config = result.expectation_config
    kwargs = config.kwargs
    column = kwargs.get("column") or (f"{kwargs['column_A']}, {kwargs['column_B']}" if "column_A" in kwargs
                                      else None)
    details = result.result or {}
    error = None
    info = result.exception_info or {}
    if info.get("raised_exception"):
        error = _cell(info.get("exception_message"), 200)
    count = details.get("unexpected_count")
    if count is None:
        count = 0 if result.success else 1
    examples: list[Any] = []
    if not result.success:
        indexed = details.get("partial_unexpected_index_list") or []
        if indexed and isinstance(indexed[0], dict) and id_columns:
            examples = [_plain(e) for e in indexed[:MAX_EXAMPLES]]
        else:
            examples = [_plain(e) for e in (details.get("partial_unexpected_list") or [])[:MAX_EXAMPLES]]
    note = (config.meta or {}).get("note", "")
    return ExpectationOutcome(batch, config.type, column, bool(result.success), int(count), examples,
                              _plain(details.get("observed_value")), note, error)


def validate(suite: str, batches: Sequence[Batch], notes: Iterable[str] = (),
             observed: Mapping[str, Any] | None = None) -> SuiteResult:
    """Validate every batch against its expectations in one ephemeral GE context."""
    import great_expectations as gx

    context = _gx_context()
    source = context.data_sources.add_pandas(f"{suite}_frames")
    outcomes: list[ExpectationOutcome] = []
    raw: dict[str, Any] = {}
    validations: dict[str, Any] = {}
    for batch in batches:
        ge_suite = context.suites.add(gx.ExpectationSuite(name=f"{suite}.{batch.name}"))
        for spec in batch.expectations:
            ge_suite.add_expectation(spec.build())
        definition = source.add_dataframe_asset(batch.name).add_batch_definition_whole_dataframe("whole")
        ge_batch = definition.get_batch(batch_parameters={"dataframe": batch.frame})
        result_format: dict[str, Any] = {"result_format": "SUMMARY", "partial_unexpected_count": MAX_EXAMPLES}
        if batch.id_columns:
            result_format["unexpected_index_column_names"] = list(batch.id_columns)
        result = ge_batch.validate(ge_suite, result_format=result_format)
        validations[batch.name] = result
        raw[batch.name] = result.to_json_dict()
        outcomes += [_outcome(batch.name, r, batch.id_columns) for r in result.results]
    success = all(o.success for o in outcomes)
    rows = {b.name: len(b.frame) for b in batches}
    return SuiteResult(suite, success, outcomes, rows,
                       {"suite": suite, "success": success, "validations": raw},
                       list(notes), dict(observed or {}), validations)


# ---------------------------------------------------------------------------------------------- documents

def documents_expectations(max_bytes: int) -> list[ExpectationSpec]:
    return [
        ExpectationSpec("ExpectColumnValuesToNotBeNull", {"column": "doc_id"}, "every document has an id"),
        ExpectationSpec("ExpectColumnValuesToBeUnique", {"column": "doc_id"}, "document ids are unique"),
        ExpectationSpec("ExpectColumnValuesToNotBeNull", {"column": "text"}, "every document has text"),
        ExpectationSpec("ExpectColumnValuesToMatchRegex", {"column": "text", "regex": NON_BLANK},
                        "text is not empty or blank"),
        ExpectationSpec("ExpectColumnValuesToNotMatchRegex", {"column": "text", "regex": UNDECODABLE},
                        "text decoded cleanly: no NUL/control characters, no U+FFFD replacement characters"),
        ExpectationSpec("ExpectColumnValuesToBeBetween", {"column": "size", "min_value": 1, "max_value": max_bytes},
                        f"size in bytes within [1, {max_bytes}]"),
    ]


def validate_documents(documents: pd.DataFrame, max_bytes: int) -> SuiteResult:
    """Documents staged by this run (documents.parquet): id, text, size."""
    frame = documents[[c for c in ("doc_id", "text", "size", "format") if c in documents.columns]]
    return validate("documents", [Batch("documents", frame, documents_expectations(max_bytes), ["doc_id"])])


# ------------------------------------------------------------------------------------------------- chunks

def _section_paths(document: Mapping[str, Any]) -> set[str]:
    doc = SimpleNamespace(format=document.get("format") or "text", text=document.get("text") or "",
                          title=document.get("title") or "")
    return {HEADING_SEPARATOR.join(s.heading_path) for s in document_sections(doc)}


def chunks_frame(chunks: pd.DataFrame, documents: pd.DataFrame,
                 count_tokens: Callable[[list[str]], list[int]] | None = None) -> pd.DataFrame:
    """Chunk rows plus helper columns: token count by the model's tokenizer, whether the chunk's document
    exists, and whether its heading path is one of its document's section paths."""
    frame = chunks[["chunk_id", "doc_id", "heading_path", "n_tokens", "text"]].copy()
    texts = frame["text"].fillna("").astype(str).tolist()
    frame["model_tokens"] = count_tokens(texts) if count_tokens and texts else frame["n_tokens"]
    known = set(documents["doc_id"]) if "doc_id" in documents else set()
    frame["document_exists"] = frame["doc_id"].isin(known).astype(bool)
    paths = {row["doc_id"]: _section_paths(row) for row in documents.to_dict("records")}
    frame["heading_path_in_document"] = [
        (doc not in paths) or ((heading or "") in paths[doc])
        for doc, heading in zip(frame["doc_id"], frame["heading_path"], strict=True)]
    frame["heading_path_in_document"] = frame["heading_path_in_document"].astype(bool)
    return frame


def chunks_expectations(max_length: int) -> list[ExpectationSpec]:
    return [
        ExpectationSpec("ExpectColumnValuesToNotBeNull", {"column": "chunk_id"}, "every chunk has an id"),
        ExpectationSpec("ExpectColumnValuesToBeUnique", {"column": "chunk_id"}, "chunk ids are unique"),
        ExpectationSpec("ExpectColumnValuesToBeBetween",
                        {"column": "n_tokens", "min_value": 1, "max_value": max_length},
                        f"recorded token count within [1, model max length {max_length}]"),
        ExpectationSpec("ExpectColumnValuesToBeBetween",
                        {"column": "model_tokens", "min_value": 1, "max_value": max_length},
                        f"token count by the model's tokenizer within [1, {max_length}]: nothing is truncated"),
        ExpectationSpec("ExpectColumnValuesToMatchRegex", {"column": "text", "regex": NON_BLANK},
                        "chunk text is not blank"),
        ExpectationSpec("ExpectColumnValuesToBeInSet", {"column": "document_exists", "value_set": [True]},
                        "every chunk's document exists"),
        ExpectationSpec("ExpectColumnValuesToBeInSet", {"column": "heading_path_in_document", "value_set": [True]},
                        "the heading path is present where the document has headings (one of its sections')"),
    ]


def validate_chunks(chunks: pd.DataFrame, documents: pd.DataFrame, max_length: int,
                    count_tokens: Callable[[list[str]], list[int]] | None = None) -> SuiteResult:
    """Chunks staged by this run (chunks.parquet) against the documents they were cut from."""
    frame = chunks_frame(chunks, documents, count_tokens)
    return validate("chunks", [Batch("chunks", frame, chunks_expectations(max_length), ["chunk_id", "doc_id"])])


# --------------------------------------------------------------------------------------------- embeddings

def vector_matrix(column: pa.ChunkedArray | pa.Array, dimension: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-row dimension and an (n, d) float matrix (rows of another length are NaN) of a list column."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    lengths = np.asarray(pc.fill_null(pc.list_value_length(array), 0), dtype=np.int64)
    width = int(lengths.max()) if len(lengths) else dimension
    matrix = np.full((len(array), width), np.nan, dtype=np.float64)
    if len(array) and (lengths == width).all() and array.null_count == 0:
        matrix = np.asarray(pc.list_flatten(array), dtype=np.float64).reshape(len(array), width)
    else:
        for row, values in enumerate(array.to_pylist()):
            if values:
                matrix[row, : len(values)] = np.asarray([np.nan if v is None else v for v in values], dtype=float)
    return lengths, matrix


def embeddings_frame(vectors: pa.Table, chunk_ids: Sequence[str], dimension: int) -> pd.DataFrame:
    """One row per vector: its chunk id, the chunk id at the same position of chunks.parquet (the index zips
    the two files row by row), dimension, norm, and whether every component is finite."""
    lengths, matrix = vector_matrix(vectors.column("vector"), dimension)
    finite = np.isfinite(matrix).all(axis=1) & (lengths > 0)
    norms = np.linalg.norm(np.where(np.isfinite(matrix), matrix, 0.0), axis=1)
    norms[~finite] = np.nan  # judged by the finiteness expectation, not by the norm one
    ids = vectors.column("chunk_id").to_pylist()
    expected = list(chunk_ids)[: len(ids)]
    return pd.DataFrame({
        "chunk_id": pd.Series(ids, dtype=object),
        "chunk_id_in_chunks": pd.Series(expected + [None] * (len(ids) - len(expected)), dtype=object),
        "vector_dimension": pd.Series(lengths, dtype="int64"),
        "vector_norm": pd.Series(norms, dtype="float64"),
        "vector_is_finite": pd.Series(finite, dtype=bool),
    })


def embeddings_expectations(rows: int, dimension: int, tolerance: float) -> list[ExpectationSpec]:
    return [
        ExpectationSpec("ExpectTableRowCountToEqual", {"value": rows}, "one vector per chunk"),
        ExpectationSpec("ExpectColumnValuesToBeUnique", {"column": "chunk_id"}, "one vector per chunk id"),
        ExpectationSpec("ExpectColumnPairValuesToBeEqual",
                        {"column_A": "chunk_id", "column_B": "chunk_id_in_chunks"},
                        "vector rows line up with chunk rows (the index joins them by position)"),
        ExpectationSpec("ExpectColumnValuesToBeBetween",
                        {"column": "vector_dimension", "min_value": dimension, "max_value": dimension},
                        f"dimension equals the model's ({dimension})"),
        ExpectationSpec("ExpectColumnValuesToBeInSet", {"column": "vector_is_finite", "value_set": [True]},
                        "no NaN or infinity"),
        ExpectationSpec("ExpectColumnValuesToBeBetween",
                        {"column": "vector_norm", "min_value": 1 - tolerance, "max_value": 1 + tolerance},
                        f"unit norm within {tolerance:g}"),
    ]


def fingerprint_expectations(model_fingerprint: str) -> list[ExpectationSpec]:
    return [
        ExpectationSpec("ExpectColumnValuesToBeInSet", {"column": "fingerprint", "value_set": [model_fingerprint]},
                        "every vector was made by the configured model"),
        ExpectationSpec("ExpectColumnUniqueValueCountToBeBetween",
                        {"column": "fingerprint", "min_value": 1, "max_value": 1},
                        "one model fingerprint per table"),
    ]


def validate_embeddings(vectors: pa.Table, chunk_ids: Sequence[str], dimension: int, model_fingerprint: str,
                        fingerprints: Mapping[str, Iterable[str]], tolerance: float = 1e-3) -> SuiteResult:
    """Vectors staged by this run (vectors.parquet), and the fingerprints the table would hold after it.

    `fingerprints` maps where a fingerprint was seen (the embedding batch, the chunk rows, the existing
    table) to the fingerprint ids seen there."""
    frame = embeddings_frame(vectors, chunk_ids, dimension)
    found = pd.DataFrame([{"origin": origin, "fingerprint": fp} for origin, fps in fingerprints.items()
                          for fp in sorted(set(fps))], columns=["origin", "fingerprint"])
    return validate("embeddings", [
        Batch("vectors", frame, embeddings_expectations(len(chunk_ids), dimension, tolerance), ["chunk_id"]),
        Batch("fingerprints", found, fingerprint_expectations(model_fingerprint), ["origin"]),
    ])


# -------------------------------------------------------------------------------------------------- index

def expected_indexes(config: IndexConfig, rows: int) -> dict[str, str]:
    """The indexes IndexStore.ensure_indexes builds for a table of this size: column -> kind."""
    from ragindex.index_store import FTS_COLUMNS

    expected: dict[str, str] = {}
    if rows:
        expected["chunk_id"] = "BTREE"
        if config.fts:
            expected.update({column: "FTS" for column in FTS_COLUMNS})
    if rows >= max(config.ann.min_rows, ANN_FLOOR_ROWS):
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
    q = table.search(query, vector_column_name="vector").distance_type("cosine")
    if exact:
        q = q.bypass_vector_index()
    else:
        q = q.nprobes(nprobes).ef(ef)
        if refine_factor:
            q = q.refine_factor(refine_factor)
    return q.select(["chunk_id", "vector", "_distance"]).limit(k).to_list()


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
    data = (table.search().select(columns).limit(max(rows, 1)).to_arrow() if rows
            else pa.table({c: pa.array([], pa.string()) for c in columns}))
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
                     f"{max(config.ann.min_rows, ANN_FLOOR_ROWS)}); the table is searched exactly")
    return validate("index", batches, notes, observed)


# ---------------------------------------------------------------------------------------------- artifacts

def quality_dir(staging: str | Path) -> Path:
    """Where a run's validation results go: the run's staging folder."""
    return Path(staging) / "quality"


def _render_html(validation) -> str:
    from great_expectations.render.renderer import ValidationResultsPageRenderer
    from great_expectations.render.view import DefaultJinjaPageView

    return DefaultJinjaPageView().render(ValidationResultsPageRenderer().render(validation))


def write_artifacts(result: SuiteResult, folder: str | Path, data_docs: bool = True) -> list[Path]:
    """The suite's results as JSON (summary + GE's raw validation results) and, where GE can render them, its
    HTML Data Docs pages, one per batch. Returns the paths written."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", result.suite)
    json_path = folder / f"{safe}.json"
    json_path.write_text(json.dumps({"summary": result.as_dict(), "great_expectations": result.raw}, indent=2,
                                    default=str))
    paths = [json_path]
    if data_docs:
        for name, validation in result.validations.items():
            try:
                html = _render_html(validation)
            except Exception as error:  # rendering is a convenience: never fail a check over it
                result.notes.append(f"Data Docs for {name} not rendered: {type(error).__name__}: {error}")
                continue
            path = folder / f"{safe}.{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}.html"
            path.write_text(html, encoding="utf-8")
            paths.append(path)
    return paths


def artifact_paths(staging: str | Path) -> list[Path]:
    """Every validation artifact of a run (JSON results and HTML Data Docs), e.g. for logging to MLflow."""
    folder = quality_dir(staging)
    return sorted(p for p in folder.glob("*") if p.suffix in (".json", ".html")) if folder.is_dir() else []
