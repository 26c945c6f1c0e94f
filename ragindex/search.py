"""Search an index table: dense (ANN as served), dense_exact (brute-force cosine), fts, hybrid."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from lancedb.query import MultiMatchQuery

from ragindex.config import SearchConfig
from ragindex.dense_search import DenseIndex
from ragindex.embedding import Embedder
from ragindex.evaluation.fusion import normalized_fusion, rrf
from ragindex.index_store import IndexStore, where_clause
from ragindex.paths import data_dir

DEFAULT_HYBRID_WEIGHT = 0.7
Mode = Literal["dense", "dense_exact", "fts", "hybrid"]
MODES: tuple[str, ...] = ("dense", "dense_exact", "fts", "hybrid")
_COLUMNS = ["chunk_id", "doc_id", "source", "title", "heading_path", "text"]


@dataclass(frozen=True)
class Hit:
    chunk_id: str
    doc_id: str
    source: str
    title: str
    heading_path: str
    score: float
    text: str

    def as_dict(self) -> dict:
        return asdict(self)


class Retriever:
    """Answers queries from one table, optionally pinned to a version or tag."""

    def __init__(self, store: IndexStore, embedder: Embedder, search: SearchConfig | None = None,
                 version: int | str | None = None, log_queries: bool = False):
        self.store = store
        self.version = version
        self.log_queries = log_queries  # append every query to the query log (ragindex/query_log.py)
        self.embedder = embedder
        self.config = search or SearchConfig()
        self.table = store.open(version)
        self.ann = store.config.ann
        self.has_ann = any(tuple(i.columns) == ("vector",) for i in self.table.list_indices())
        # below the ANN threshold: this version's vectors in memory, searched exactly (ragindex/dense_search.py)
        self.dense_index = None if self.has_ann else DenseIndex.load(self.table, _COLUMNS)
        weight = self.config.hybrid_weight
        self.hybrid_weight = measured_weight(store.name) if weight == "auto" else float(weight)

    def search(self, query: str, mode: Mode = "hybrid", k: int = 10, filters: dict[str, str] | None = None,
               vector=None) -> list[Hit]:
        if mode not in MODES:
            raise ValueError(f"unknown mode '{mode}'; use one of {', '.join(MODES)}")
        where = where_clause(filters or {})
        if mode == "fts":
            self._log(query, mode, None)  # no vector: query drift embeds logged fts queries when it reads them
            return self._fts(query, k, where)
        if vector is None:
            vector = self.embedder.embed([query])[0]
        self._log(query, mode, vector)
        if mode in ("dense", "dense_exact"):
            return self._dense(vector, k, where, exact=mode == "dense_exact")
        n = max(k, self.config.candidates)
        dense = {h.chunk_id: h for h in self._dense(vector, n, where, exact=False)}
        sparse = {h.chunk_id: h for h in self._fts(query, n, where)}
        if self.config.fusion == "rrf":
            fused = rrf([{c: h.score for c, h in dense.items()}, {c: h.score for c, h in sparse.items()}])
        else:
            fused = normalized_fusion({c: h.score for c, h in dense.items()},
                                      {c: h.score for c, h in sparse.items()}, self.hybrid_weight)
        ranked = sorted(fused.items(), key=lambda item: (-item[1], item[0]))[:k]
        return [Hit(**{**asdict(dense.get(c) or sparse[c]), "score": s}) for c, s in ranked]

    def _log(self, query: str, mode: str, vector) -> None:
        if self.log_queries:
            from ragindex.query_log import log_query

            log_query(query, mode, self.store.name, self.embedder.fingerprint.id, vector, self.version)

    def _dense(self, vector, k: int, where: str | None, exact: bool) -> list[Hit]:
        found = self.dense_index.search(vector, k, where) if self.dense_index else None
        if found is not None:
            return [_hit(row, score) for row, score in found]
        query = self.table.search(vector, vector_column_name="vector").distance_type("cosine")
        if exact or not self.has_ann:
            query = query.bypass_vector_index()
        else:
            query = query.nprobes(self.ann.nprobes).ef(max(self.ann.ef, k))  # HNSW needs ef >= k
            if self.ann.refine_factor:
                query = query.refine_factor(self.ann.refine_factor)
        if where:
            query = query.where(where, prefilter=True)
        rows = query.select([*_COLUMNS, "_distance"]).limit(k).to_list()
        return [_hit(row, 1.0 - row["_distance"]) for row in rows]

    def _fts(self, text: str, k: int, where: str | None) -> list[Hit]:
        if not text.strip():
            return []
        boost = self.store.config.fts_title_boost
        match = MultiMatchQuery(text, ["text", "title"], boosts=[1.0, boost]) if boost else text
        query = self.table.search(match, query_type="fts")
        if where:
            query = query.where(where, prefilter=True)
        rows = query.select([*_COLUMNS, "_score"]).limit(k).to_list()
        return [_hit(row, row["_score"]) for row in rows]


def fusion_file(table: str) -> Path:
    return data_dir() / "evaluations" / table / "fusion.json"


def measured_weight(table: str, default: float = DEFAULT_HYBRID_WEIGHT) -> float:
    """The dense weight chosen by the last evaluation of this table, so CLI and served model rank alike."""
    file = fusion_file(table)
    return float(json.loads(file.read_text())["weight"]) if file.is_file() else default


def _hit(row: dict, score: float) -> Hit:
    return Hit(row["chunk_id"], row["doc_id"], row["source"], row["title"] or "", row["heading_path"] or "",
               float(score), row["text"])
