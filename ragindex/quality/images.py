"""Expectations on the image table: one row per image and source, finite unit vectors of the model's size, one model.

Same shape as the other suites in ragindex/quality/: helper columns computed with numpy, judged by plain
Great Expectations expectations."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa

from ragindex.quality.embeddings import fingerprint_expectations, vector_expectations, vector_matrix, vector_stats
from ragindex.quality.expectations import Batch, ExpectationSpec, SuiteResult, validate


def images_frame(rows: pa.Table, dimension: int) -> pd.DataFrame:
    """One row per image row: its key, path, vector dimension, norm, and whether every component is finite."""
    lengths, matrix = vector_matrix(rows.column("vector"), dimension)
    finite, norms = vector_stats(lengths, matrix)
    sources, ids = rows.column("source").to_pylist(), rows.column("image_id").to_pylist()
    return pd.DataFrame({
        "image_key": pd.Series([f"{s}:{i}" for s, i in zip(sources, ids, strict=True)], dtype=object),
        "image_id": pd.Series(ids, dtype=object),
        "path": pd.Series(rows.column("path").to_pylist(), dtype=object),
        "vector_dimension": pd.Series(lengths, dtype="int64"),
        "vector_norm": pd.Series(norms, dtype="float64"),
        "vector_is_finite": pd.Series(finite, dtype=bool),
    })


def images_expectations(dimension: int, tolerance: float) -> list[ExpectationSpec]:
    return [
        ExpectationSpec("ExpectColumnValuesToNotBeNull", {"column": "image_id"}, "every image has a content hash"),
        ExpectationSpec("ExpectColumnValuesToBeUnique", {"column": "image_key"}, "one row per image and source"),
        ExpectationSpec("ExpectColumnValuesToNotBeNull", {"column": "path"}, "every image has a path"),
        *vector_expectations(dimension, tolerance),
    ]


def validate_images(rows: pa.Table, dimension: int, model_fingerprint: str, tolerance: float = 1e-3) -> SuiteResult:
    """The image table's rows (ImageStore.rows()) against the configured image model."""
    found = pd.DataFrame([{"origin": "image table", "fingerprint": fp}
                          for fp in sorted(set(rows.column("fingerprint").to_pylist()))],
                         columns=["origin", "fingerprint"])
    return validate("images", [
        Batch("images", images_frame(rows, dimension), images_expectations(dimension, tolerance), ["image_key"]),
        Batch("fingerprints", found, fingerprint_expectations(model_fingerprint), ["origin"]),
    ])
