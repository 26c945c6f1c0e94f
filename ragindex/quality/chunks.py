"""The chunks suite: chunks staged by a run fit the model, belong to a known document and one of its sections."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import SimpleNamespace
from typing import Any

import pandas as pd

from ragindex.chunking import HEADING_SEPARATOR, document_sections
from ragindex.quality.documents import NON_BLANK
from ragindex.quality.expectations import Batch, ExpectationSpec, SuiteResult, validate


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
