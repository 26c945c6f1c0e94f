"""Data quality of the build's stages: Great Expectations 1.x suites validated on pandas DataFrames.

One module per stage (documents, chunks, embeddings, index), the validation itself in `expectations`, the files
on disk in `artifacts`. Nothing here imports Great Expectations at module level (it takes seconds to import);
only validation and rendering do.
"""

from ragindex.quality.artifacts import write_artifacts
from ragindex.quality.chunks import validate_chunks
from ragindex.quality.documents import validate_documents
from ragindex.quality.embeddings import validate_embeddings, vectors_table
from ragindex.quality.expectations import (
    Batch,
    ExpectationOutcome,
    ExpectationSpec,
    FailedExpectation,
    SuiteResult,
    validate,
)
from ragindex.quality.index import ann_recall, validate_index

__all__ = [
    "Batch",
    "ExpectationOutcome",
    "ExpectationSpec",
    "FailedExpectation",
    "SuiteResult",
    "ann_recall",
    "validate",
    "validate_chunks",
    "validate_documents",
    "validate_embeddings",
    "validate_index",
    "vectors_table",
    "write_artifacts",
]
