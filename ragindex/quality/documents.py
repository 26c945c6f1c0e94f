"""The documents suite: documents staged by a run have an id, clean non-blank text and a bounded size."""

from __future__ import annotations

import pandas as pd

from ragindex.quality.expectations import Batch, ExpectationSpec, SuiteResult, validate

# Text that did not decode cleanly: NUL and other C0 control characters (tab, newlines and form feed are
# fine) or U+FFFD, the replacement character a lossy decode leaves behind.
UNDECODABLE = "[\x00-\x08\x0b\x0e-\x1f\ufffd]"
NON_BLANK = r"\S"


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
