"""Search an index table: dense (ANN as served), dense_exact (brute-force cosine), fts, hybrid; per-document caps."""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from functools import cached_property
from typing import Literal

import numpy as np
import pyarrow as pa
from lancedb.query import MatchQuery

from ragindex.access import GROUPS_COLUMN, combine, visible_where
from ragindex.config import SEARCH_MODES, SearchConfig, SearchMode
from ragindex.dense_search import DenseIndex, vector_matrix
from ragindex.embedding import Embedder
from ragindex.errors import ConfigError
from ragindex.evaluation.fusion import PRIOR, FusionChoice
from ragindex.index_store import IndexStore, vector_query, where_clause
from ragindex.lance_tables import scan_columns
from ragindex.titles import TITLE_VECTOR, configured_weight, unit_rows

Mode = SearchMode
GroupBy = Literal["chunk", "doc"]
MODES = SEARCH_MODES
FtsQueries = tuple["Future[list[dict]] | None", "Future[list[dict]] | None"]  # text and title match rows
TITLE_ROWS_PER_RESULT = 10  # title matches are chunk rows: read this many per wanted result to reach many documents
_COLUMNS = ["chunk_id", "doc_id", "source", "title", "heading_path", "text", "position", "n_tokens", "path", "page",
            "kind", "image_path"]


@dataclass(frozen=True)
class Hit:
    chunk_id: str
    doc_id: str
    source: str
    title: str
    heading_path: str
    score: float
    text: str
    position: int = 0
    n_tokens: int = 0
    path: str = ""
    page: int | None = None  # the PDF page of the text
    kind: str = "text"  # text | image
    image_path: str | None = None  # the image an image chunk describes

    @property
    def citation(self) -> str:
        """Where a reader finds the hit: the file, with the page for a PDF, or the image."""
        where = self.image_path or self.path or self.doc_id
        return f"{where} p.{self.page}" if self.page else where

    def as_dict(self) -> dict:
        return {**asdict(self), "citation": self.citation}


@dataclass(frozen=True)
class DocumentHit:
    """A document ranked by its best chunk (MaxP), with its best chunks in rank order."""

    doc_id: str
    source: str
    title: str
    score: float
    chunks: list[Hit]

    def as_dict(self) -> dict:
        return {"doc_id": self.doc_id, "source": self.source, "title": self.title, "score": self.score,
                "chunks": [h.as_dict() for h in self.chunks]}


def cap_per_doc(hits: list[Hit], per_doc: int) -> list[Hit]:
    """Hits in rank order, at most `per_doc` of any one document (0 = no cap)."""
    if per_doc <= 0:
        return list(hits)
    seen: dict[str, int] = {}
    out = []
    for hit in hits:
        seen[hit.doc_id] = seen.get(hit.doc_id, 0) + 1
        if seen[hit.doc_id] <= per_doc:
            out.append(hit)
    return out


def group_documents(hits: list[Hit], per_doc: int) -> list[DocumentHit]:
    """Ranked chunk hits folded into documents in order of their best chunk; `per_doc` chunks each (0 = all)."""
    docs: dict[str, list[Hit]] = {}
    for hit in hits:
        docs.setdefault(hit.doc_id, []).append(hit)
    return [DocumentHit(doc, chunks[0].source, chunks[0].title, chunks[0].score,
                        chunks[:per_doc] if per_doc > 0 else chunks) for doc, chunks in docs.items()]


def rank(hits: list[Hit]) -> list[Hit]:
    return sorted(hits, key=lambda h: (-h.score, h.chunk_id))


class Retriever:
    """Answers queries from one table, optionally pinned to a version or tag; `fusion` says how hybrid ranks
    and the weight of title vectors in dense scores (the evaluation's FusionChoice, recorded with the registered
    model; default the documented prior, with the configured title weight under index.title_vectors: on).

    Every search is restricted to the chunks a caller's `groups` may see (public chunks always; no groups:
    public only), per call or else the retriever's own; `unrestricted=True` (the build's own evaluation) drops
    the restriction where a call names no groups."""

    def __init__(self, store: IndexStore, embedder: Embedder, search: SearchConfig | None = None,
                 version: int | str | None = None, log_queries: bool = False, fusion: FusionChoice | None = None,
                 groups: Iterable[str] = (), unrestricted: bool = False):
        self.groups = tuple(groups)
        self.unrestricted = unrestricted
        self.store = store
        self.version = version
        self.log_queries = log_queries  # append every query to the query log (ragindex/query_log.py)
        self.embedder = embedder
        self.config = search or SearchConfig()
        self.table = store.open(version)
        self.ann = store.config.ann
        indexed = {tuple(i.columns) for i in self.table.list_indices()}
        self.has_ann = ("vector",) in indexed
        self.has_title_ann = (TITLE_VECTOR,) in indexed
        self.columns = frozenset(self.table.schema.names)  # read once: LanceDB fetches the schema on each call
        self._passes_all: dict[tuple[str, int], bool] = {}  # (access predicate, version) -> holds for every row
        self.has_titles = TITLE_VECTOR in self.columns
        self.fusion = fusion or replace(PRIOR, title_weight=configured_weight(store.config))

    @cached_property
    def dense_index(self) -> DenseIndex | None:
        """Below the ANN threshold: this version's vectors in memory, searched exactly (ragindex/dense_search.py);
        read at the first dense query, so a keyword search reads no vectors."""
        return None if self.has_ann else DenseIndex.load(self.table, _COLUMNS)

    def visible(self, groups: Iterable[str] | None = None) -> str | None:
        """The access prefilter of a call with these groups (None: the retriever's); None when unrestricted."""
        if groups is None and self.unrestricted:
            return None
        if GROUPS_COLUMN not in self.columns:
            raise ConfigError(f"table '{self.store.name}' at version {self.table.version} predates access control "
                              "(no groups column); re-index it, or search a newer version")
        return visible_where(self.groups if groups is None else groups)

    def _prefilter(self, groups: Iterable[str] | None) -> str | None:
        """The access prefilter of a search, or None where this table version holds no row the caller may not
        see: a filter that passes every row still costs a scan of the groups column on each query. Counted once
        per predicate and table version (rows whose groups are null match nothing, so they keep the filter)."""
        access = self.visible(groups)
        if access is None:
            return None
        key = (access, self.table.version)  # a retriever on the latest version may see a newer one
        if key not in self._passes_all:
            self._passes_all[key] = self.table.count_rows(access) == self.table.count_rows()
        return None if self._passes_all[key] else access

    def visible_doc_ids(self, groups: Iterable[str] | None = None) -> set[str] | None:
        """The documents with a chunk the caller may see (for tables keyed by document, such as the image
        table); None when unrestricted."""
        access = self.visible(groups)
        return None if access is None else set(scan_columns(self.table, ["doc_id"], access).column("doc_id")
                                                .to_pylist())

    def search(self, query: str, mode: Mode = "hybrid", k: int = 10, filters: dict[str, str] | None = None,
               vector=None, per_doc: int | None = None, group_by: GroupBy = "chunk",
               groups: Iterable[str] | None = None, title_weight: float | None = None
               ) -> list[Hit] | list[DocumentHit]:
        """The top `k` chunks with at most `per_doc` of one document (default search.per_doc; 0 = no cap),
        or with group_by="doc" the top `k` documents, each with its best `per_doc` chunks (0 = all found);
        only chunks the caller's `groups` may see (default: the retriever's). `title_weight` overrides the
        served weight of title vectors in dense scores (the evaluation tries several)."""
        if mode not in MODES:
            raise ValueError(f"unknown mode '{mode}'; use one of {', '.join(MODES)}")
        if group_by not in ("chunk", "doc"):
            raise ValueError(f"unknown group_by '{group_by}'; use chunk or doc")
        if k < 1:
            raise ValueError(f"k must be at least 1, not {k}")
        cap = self.config.per_doc if per_doc is None else per_doc
        where = combine(self._prefilter(groups), where_clause(filters or {}))
        n = k if cap <= 0 and group_by == "chunk" else max(k, self.config.candidates)
        # hybrid: the keyword half runs in LanceDB's threads while this one embeds the query
        sparse = self._fts_queries(query, max(n, self.config.candidates), where) if mode == "hybrid" else None
        if mode != "fts" and vector is None:
            vector = self.embedder.embed([query])[0]
        self._log(query, mode, vector)  # fts logs no vector: query drift embeds logged fts queries when it reads them
        while True:  # widen the candidate list until the cap or the grouping leaves k results (or nothing is left)
            ranked = self._ranked(query, mode, n, where, vector,
                                  self.fusion.title_weight if title_weight is None else title_weight, sparse)
            sparse = None  # a widened pass asks for more
            found = len(group_documents(ranked, 1)) if group_by == "doc" else len(cap_per_doc(ranked, cap))
            if found >= k or len(ranked) < n:
                break
            n *= 4
        if group_by == "doc":
            return group_documents(ranked, cap)[:k]
        return cap_per_doc(ranked, cap)[:k]

    @cached_property
    def _pool(self) -> ThreadPoolExecutor:
        """Threads that wait on LanceDB queries while the caller's thread embeds or runs another query."""
        return ThreadPoolExecutor(2, thread_name_prefix="ragindex-search")

    def _ranked(self, query: str, mode: str, n: int, where: str | None, vector, title_weight: float,
                prefetched: FtsQueries | None = None) -> list[Hit]:
        if mode == "fts":
            return self._fts(query, n, where)
        if mode in ("dense", "dense_exact"):
            return self._dense(vector, n, where, mode == "dense_exact", title_weight)
        n = max(n, self.config.candidates)
        dense = {h.chunk_id: h for h in self._dense(vector, n, where, False, title_weight)}
        sparse = {h.chunk_id: h for h in (self._fts_hits(prefetched, n) if prefetched else self._fts(query, n, where))}
        fused = self.fusion.fuse({c: h.score for c, h in dense.items()}, {c: h.score for c, h in sparse.items()})
        top = sorted(fused.items(), key=lambda item: (-item[1], item[0]))[:n]  # rank()'s order, before any Hit
        return [replace(dense.get(c) or sparse[c], score=s) for c, s in top]

    def _log(self, query: str, mode: str, vector) -> None:
        if self.log_queries:
            from ragindex.query_log import log_query

            log_query(query, mode, self.store.name, self.embedder.fingerprint.id, vector, self.version)

    def _dense(self, vector, k: int, where: str | None, exact: bool, title_weight: float = 0.0) -> list[Hit]:
        title_weight = title_weight if self.has_titles else 0.0
        found = self.dense_index.search(vector, k, where, title_weight) if self.dense_index else None
        if found is not None:
            return [_hit(row, score) for row, score in found]
        if title_weight:
            return self._dense_titled(vector, k, where, exact, title_weight)
        query = vector_query(self.table, vector, k, exact or not self.has_ann, self.ann.nprobes, self.ann.ef,
                             self.ann.refine_factor, where)
        rows = query.select([*_COLUMNS, "_distance"]).to_list()
        return [_hit(row, 1.0 - row["_distance"]) for row in rows]

    def _dense_titled(self, vector, k: int, where: str | None, exact: bool, title_weight: float) -> list[Hit]:
        """The k nearest by body vector and the k nearest by title vector (each through its ANN index when it
        has one, both under the same prefilter), scored exactly by cos(body) + title_weight x cos(title)."""
        parts = []
        for column, ann in (("vector", self.has_ann), (TITLE_VECTOR, self.has_title_ann)):
            query = vector_query(self.table, vector, k, exact or not ann, self.ann.nprobes, self.ann.ef,
                                 self.ann.refine_factor, combine(where, f"{column} IS NOT NULL"), column)
            parts.append(query.select([*_COLUMNS, "vector", TITLE_VECTOR, "_distance"]).to_arrow()
                         .drop_columns(["_distance"]))
        found = pa.concat_tables(parts)
        query = np.asarray(vector, dtype=np.float32)
        query = query / max(float(np.linalg.norm(query)), 1e-12)
        scores = np.einsum("ij,j->i", unit_rows(vector_matrix(found.column("vector"))), query) \
            + title_weight * np.einsum("ij,j->i", unit_rows(vector_matrix(found.column(TITLE_VECTOR))), query)
        hits = {row["chunk_id"]: _hit(row, score) for row, score in
                zip(found.drop_columns(["vector", TITLE_VECTOR]).to_pylist(), scores.tolist(), strict=True)}
        return rank(list(hits.values()))[:k]

    def _fts(self, text: str, k: int, where: str | None) -> list[Hit]:
        """BM25 over chunk text; a document's title match is added once, to its best chunk (or, when none of
        its chunks matched, to its first title-matching chunk), so a title never makes a document's chunks tie."""
        return self._fts_hits(self._fts_queries(text, k, where), k) if text.strip() else []

    def _fts_queries(self, text: str, k: int, where: str | None) -> FtsQueries:
        """The text and title queries, started at once in the pool (whose tasks never wait on each other)."""
        if not text.strip():
            return None, None
        boost = self.store.config.fts_title_boost
        return (self._pool.submit(self._match, MatchQuery(text, "text"), k, where),
                self._pool.submit(self._match, MatchQuery(text, "title"), k * TITLE_ROWS_PER_RESULT, where)
                if boost else None)

    def _fts_hits(self, queries: FtsQueries, k: int) -> list[Hit]:
        text_rows, title_rows = queries
        if text_rows is None:
            return []
        hits = [_hit(row, row["_score"]) for row in text_rows.result()]
        if title_rows is None:
            return hits
        boost = self.store.config.fts_title_boost
        titles: dict[str, dict] = {}
        for row in title_rows.result():
            best = titles.get(row["doc_id"])
            if best is None or (row["position"] or 0) < (best["position"] or 0):
                titles[row["doc_id"]] = row
        out, credited = [], set()
        for hit in hits:  # hits are best first: a document's first hit is its best chunk
            if hit.doc_id in titles and hit.doc_id not in credited:
                credited.add(hit.doc_id)
                hit = replace(hit, score=hit.score + boost * titles[hit.doc_id]["_score"])
            out.append(hit)
        out += [_hit(row, boost * row["_score"]) for doc, row in titles.items() if doc not in credited]
        return rank(out)[:k]

    def _match(self, match: MatchQuery, k: int, where: str | None) -> list[dict]:
        """BM25 rows of one FTS index. Where this version's rows are in memory already (a dense query loaded
        them), the chunk text query reads only ids and scores and takes the rows from memory: reading 100 texts
        through LanceDB was 1.8 of its 4.5 ms (msmarco 5k)."""
        index = self.__dict__.get("dense_index") if match.column == "text" else None  # loaded; never loads it
        if index is not None:
            found = self._match_query(match, where).select(["chunk_id", "_score"]).limit(k).to_arrow()
            rows = index.rows_of(found.column("chunk_id").to_pylist())
            if rows is not None:
                return [{**row, "_score": score} for row, score in
                        zip(rows, found.column("_score").to_pylist(), strict=True)]
        return self._match_query(match, where).select([*_COLUMNS, "_score"]).limit(k).to_list()

    def _match_query(self, match: MatchQuery, where: str | None):
        query = self.table.search(match, query_type="fts")
        return query.where(where, prefilter=True) if where else query


def _hit(row: dict, score: float) -> Hit:
    return Hit(row["chunk_id"], row["doc_id"], row["source"], row["title"] or "", row["heading_path"] or "",
               float(score), row["text"], int(row.get("position") or 0), int(row.get("n_tokens") or 0),
               row.get("path") or "", row.get("page"), row.get("kind") or "text", row.get("image_path"))
