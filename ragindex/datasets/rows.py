"""One evaluation row per generated query: the dataclass, its Arrow schema, and Parquet round trips."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

ROW_SCHEMA = pa.schema([
    ("query_id", pa.string()),
    ("query", pa.string()),
    ("reference_chunk_ids", pa.list_(pa.string())),
    ("reference_grades", pa.list_(pa.int32())),
    ("reference_contexts", pa.list_(pa.string())),
    ("reference_answer", pa.string()),  # nullable: only the llm generator writes one
    ("generator", pa.string()),
    ("generator_version", pa.int32()),
    ("lexical", pa.bool_()),  # True where the query shares surface words with its chunk (favours keyword search)
    ("seed", pa.int64()),
    ("source_doc_id", pa.string()),
    ("corpus_version", pa.string()),  # the LanceDB tag (or version) the chunks were read from
    ("chunker_hash", pa.string()),
    ("model_fingerprint", pa.string()),
    ("generator_model", pa.string()),  # nullable: the LLM that wrote the question, for the llm generator
])


@dataclass(frozen=True)
class DatasetRow:
    """A query with its graded reference chunks and everything needed to reproduce how it was made."""

    query_id: str
    query: str
    reference_chunk_ids: tuple[str, ...]
    reference_grades: tuple[int, ...]
    reference_contexts: tuple[str, ...]
    reference_answer: str | None
    generator: str
    generator_version: int
    lexical: bool
    seed: int
    source_doc_id: str
    corpus_version: str
    chunker_hash: str
    model_fingerprint: str
    generator_model: str | None = None

    def __post_init__(self) -> None:
        for name in ("reference_chunk_ids", "reference_grades", "reference_contexts"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        n = len(self.reference_chunk_ids)
        if not self.query_id or not self.query.strip():
            raise ValueError("a dataset row needs a query id and a non-empty query")
        if n == 0:
            raise ValueError(f"row {self.query_id}: at least one reference chunk is required")
        if len(self.reference_grades) != n or len(self.reference_contexts) != n:
            raise ValueError(f"row {self.query_id}: reference ids, grades and contexts differ in length")
        if len(set(self.reference_chunk_ids)) != n:
            raise ValueError(f"row {self.query_id}: duplicate reference chunk ids")
        if any(int(g) <= 0 for g in self.reference_grades):
            raise ValueError(f"row {self.query_id}: reference grades must be positive")

    @property
    def judgements(self) -> dict[str, int]:
        """This row's qrels: reference chunk id -> grade."""
        return dict(zip(self.reference_chunk_ids, (int(g) for g in self.reference_grades), strict=True))

    def as_dict(self) -> dict:
        out = asdict(self)
        for name in ("reference_chunk_ids", "reference_grades", "reference_contexts"):
            out[name] = list(out[name])
        return out

    @classmethod
    def from_dict(cls, data: Mapping) -> DatasetRow:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def rows_to_table(rows: Iterable[DatasetRow]) -> pa.Table:
    return pa.Table.from_pylist([r.as_dict() for r in rows], schema=ROW_SCHEMA)


def rows_from_table(table: pa.Table) -> list[DatasetRow]:
    return [DatasetRow.from_dict(d) for d in table.to_pylist()]


def write_rows(path: str | Path, rows: Sequence[DatasetRow]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(rows_to_table(rows), path)
    return path


def read_rows(path: str | Path) -> list[DatasetRow]:
    return rows_from_table(pq.read_table(path))


def rows_qrels(rows: Iterable[DatasetRow]) -> dict[str, dict[str, int]]:
    """qrels of a set of rows, ready for `ragindex.evaluation.metrics.per_query_metrics`."""
    return {r.query_id: r.judgements for r in rows}
