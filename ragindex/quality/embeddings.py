"""The embeddings suite: one finite, unit-norm vector of the model's dimension per chunk, from one model."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ragindex.quality.expectations import Batch, ExpectationSpec, SuiteResult, validate


def vectors_table(chunk_ids: Sequence[str], vectors: Sequence[np.ndarray]) -> pa.Table:
    """Chunk ids and their vectors as Arrow, from the arrays themselves: a Python float per component held
    50k vectors as 0.5 GiB. Rows may differ in length (the dimension expectation judges them)."""
    lengths = np.fromiter((len(v) for v in vectors), dtype=np.int64, count=len(vectors))
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)  # 64-bit: past 5.6M 384-d vectors
    values = np.concatenate(vectors).astype(np.float32, copy=False) if len(vectors) else np.empty(0, np.float32)
    return pa.table({"chunk_id": pa.array(list(chunk_ids), pa.string()),
                     "vector": pa.LargeListArray.from_arrays(pa.array(offsets), pa.array(values))})


def vector_matrix(column: pa.ChunkedArray | pa.Array, dimension: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-row dimension and an (n, d) float32 matrix (rows of another length are NaN) of a list column."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    lengths = np.asarray(pc.fill_null(pc.list_value_length(array), 0), dtype=np.int64)
    width = int(lengths.max()) if len(lengths) else dimension
    if len(array) and (lengths == width).all() and array.null_count == 0:
        return lengths, np.asarray(pc.list_flatten(array), dtype=np.float32).reshape(len(array), width)
    matrix = np.full((len(array), width), np.nan, dtype=np.float32)
    for row, values in enumerate(array.to_pylist()):
        if values:
            matrix[row, : len(values)] = np.asarray([np.nan if v is None else v for v in values], dtype=np.float32)
    return lengths, matrix


def vector_stats(lengths: np.ndarray, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(whether each row is non-empty with every own component finite, its norm in float64: NaN where not
    finite, which the finiteness expectation judges, not the norm one). A short row's padding counts as 0."""
    padding = np.arange(matrix.shape[1]) >= lengths[:, None]
    finite = (np.isfinite(matrix) | padding).all(axis=1) & (lengths > 0)
    rows = matrix if finite.all() else matrix[finite]
    if padding.any():
        rows = np.where(padding[finite], np.float32(0), rows)
    norms = np.full(len(matrix), np.nan)
    norms[finite] = np.sqrt(np.einsum("ij,ij->i", rows, rows, dtype=np.float64))
    return finite, norms


def embeddings_frame(vectors: pa.Table, chunk_ids: Sequence[str], dimension: int) -> pd.DataFrame:
    """One row per vector: its chunk id, the chunk id at the same position of chunks.parquet (the index zips
    the two files row by row), dimension, norm, and whether every component is finite."""
    lengths, matrix = vector_matrix(vectors.column("vector"), dimension)
    finite, norms = vector_stats(lengths, matrix)
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
        *vector_expectations(dimension, tolerance),
    ]


def vector_expectations(dimension: int, tolerance: float) -> list[ExpectationSpec]:
    """Every vector (text or image): the model's dimension, finite, unit norm within `tolerance`."""
    return [
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
