"""Data quality of the build's stages: Great Expectations 1.x suites validated on pandas DataFrames.

Nothing here imports Great Expectations at module level (it takes seconds to import); only validation does.
"""

from ragindex.quality.suites import (
    Batch,
    ExpectationOutcome,
    ExpectationSpec,
    FailedExpectation,
    SuiteResult,
    ann_recall,
    artifact_paths,
    quality_dir,
    validate,
    validate_chunks,
    validate_documents,
    validate_embeddings,
    validate_index,
    write_artifacts,
)

__all__ = [
    "Batch",
    "ExpectationOutcome",
    "ExpectationSpec",
    "FailedExpectation",
    "SuiteResult",
    "ann_recall",
    "artifact_paths",
    "quality_dir",
    "validate",
    "validate_chunks",
    "validate_documents",
    "validate_embeddings",
    "validate_index",
    "write_artifacts",
]
