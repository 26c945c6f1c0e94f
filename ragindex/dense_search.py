"""Exact cosine search over a small table held in memory: one matrix product per query instead of a scan.

Tables below the ANN threshold have no vector index, so LanceDB answers a dense query by reading every vector
from disk. Here the vectors of one table version are read once into a normalised float32 matrix; a query is a
matrix-vector product and a partial sort. Equality filters (the `where` that `index_store.where_clause` writes)
and the access predicate (`access.visible_where`, ANDed in front of them by `access.combine`) become a boolean mask
over dictionary-encoded metadata columns and group sets, applied before ranking (a prefilter). A table with title
vectors (ragindex/titles.py) holds them as a second matrix: a query's score adds weight x cos(query, title).
"""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ragindex.access import GROUPS_COLUMN
from ragindex.index_store import FILTER_FIELDS
from ragindex.titles import TITLE_VECTOR, unit_rows

MAX_ROWS = 200_000  # 300 MiB of float32 at dimension 384: beyond this the table has (or should have) an ANN index
_TERM = re.compile(r"([A-Za-z_][A-Za-z0-9_]*) = '((?:[^']|'')*)'")
_ACCESS = re.compile(rf"^array_has_any\({GROUPS_COLUMN}, \[((?:'(?:[^']|'')*'(?:, )?)*)\]\)(?: AND \((.*)\))?$", re.S)
_LITERAL = re.compile(r"'((?:[^']|'')*)'")


def parse_access(where: str | None) -> tuple[set[str] | None, str | None]:
    """(the caller's groups, the rest of the predicate) of a `combine(visible_where(...), filters)` string;
    (None, where) when it carries no access predicate."""
    match = _ACCESS.match(where or "")
    if not match:
        return None, where
    return {m.replace("''", "'") for m in _LITERAL.findall(match.group(1))}, match.group(2)


def parse_where(where: str | None) -> dict[str, str] | None:
    """The filters of a `where_clause` string (`f = 'v' AND ...`); None when it is anything else."""
    if not where:
        return {}
    filters, position = {}, 0
    while True:
        match = _TERM.match(where, position)
        if not match:
            return None
        filters[match.group(1)] = match.group(2).replace("''", "'")
        position = match.end()
        if position == len(where):
            return filters
        if not where.startswith(" AND ", position):
            return None
        position += len(" AND ")


class DenseIndex:
    """The rows of one table version: metadata columns, and their vectors (and title vectors, where the table has
    them) as normalised matrices."""

    def __init__(self, rows: pa.Table, vectors: np.ndarray, titles: np.ndarray | None = None):
        self.rows = rows
        self.vectors = unit_rows(vectors)
        self.titles = None if titles is None else unit_rows(titles)
        self._codes: dict[str, tuple[np.ndarray, dict[str, int]]] = {}
        for name in FILTER_FIELDS:
            if name in rows.column_names:
                encoded = pc.dictionary_encode(rows.column(name)).combine_chunks()
                codes = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False)
                self._codes[name] = (codes, {v: i for i, v in enumerate(encoded.dictionary.to_pylist())})
        sets = [frozenset(g or ()) for g in rows.column(GROUPS_COLUMN).to_pylist()] \
            if GROUPS_COLUMN in rows.column_names else []
        self._group_sets = sorted(set(sets), key=sorted)  # few distinct sets: each query tests these, not rows
        lookup = {s: i for i, s in enumerate(self._group_sets)}
        self._group_codes = np.fromiter((lookup[s] for s in sets), dtype=np.int64, count=len(sets))
        self._positions: dict[str, int] | None = None  # chunk id -> row, built at the first rows_of

    def rows_of(self, chunk_ids: list[str]) -> list[dict] | None:
        """The rows of these chunk ids, in their order; None when one is not in this index (another version)."""
        if self._positions is None:
            self._positions = {c: i for i, c in enumerate(self.rows.column("chunk_id").to_pylist())}
        positions = [self._positions.get(c) for c in chunk_ids]
        if None in positions:
            return None
        return self.rows.take(pa.array(positions, pa.int64())).to_pylist()

    @classmethod
    def load(cls, table, columns: list[str], max_rows: int = MAX_ROWS) -> DenseIndex | None:
        """Read `columns`, the filter fields and the vectors of `table` (as checked out); None above max_rows."""
        count = table.count_rows()
        if count > max_rows:
            return None
        names = [c for c in dict.fromkeys([*columns, *FILTER_FIELDS, GROUPS_COLUMN]) if c in table.schema.names]
        vectors = ["vector", *([TITLE_VECTOR] if TITLE_VECTOR in table.schema.names else [])]
        data = table.search().select([*names, *vectors]).limit(max(count, 1)).to_arrow()
        matrices = [vector_matrix(data.column(v)) for v in vectors]
        return cls(data.drop_columns(vectors), *matrices)

    def mask(self, filters: dict[str, str]) -> np.ndarray | None:
        """Rows whose columns equal every filter value (None: no filter)."""
        if not filters:
            return None
        keep = np.ones(len(self.rows), dtype=bool)
        for name, value in filters.items():
            codes, lookup = self._codes[name]
            keep &= codes == lookup.get(value, -2)
        return keep

    def visible(self, groups: set[str]) -> np.ndarray:
        """Rows whose groups share one with `groups` (a row with no groups is visible to nobody)."""
        allowed = np.array([bool(s & groups) for s in self._group_sets] or [False])
        return allowed[self._group_codes] if len(self._group_codes) else np.zeros(len(self.rows), dtype=bool)

    def search(self, vector, k: int, where: str | None = None, title_weight: float = 0.0
               ) -> list[tuple[dict, float]] | None:
        """The k rows of highest cosine to `vector` (plus `title_weight` x cosine to their title vector; ties by
        row order) as (row, score); None when `where` is not an access predicate and equality filters this index
        understands (the caller asks LanceDB instead)."""
        groups, rest = parse_access(where)
        filters = parse_where(rest)
        if filters is None or not set(filters) <= set(self._codes):
            return None
        query = np.asarray(vector, dtype=np.float32)
        query = query / max(float(np.linalg.norm(query)), 1e-12)
        keep = self.mask(filters)
        if groups is not None:
            visible = self.visible(groups)
            keep = visible if keep is None else keep & visible
        candidates = np.arange(len(self.rows)) if keep is None else np.flatnonzero(keep)
        # einsum, not BLAS: a threaded sgemv wakes spinning BLAS threads that took 8 ms instead of 0.3 ms on a
        # busy 2-core machine and then slow the next query's embedding; all rows, then the mask (no matrix copy)
        scores = np.einsum("ij,j->i", self.vectors, query)
        if title_weight and self.titles is not None:
            scores += title_weight * np.einsum("ij,j->i", self.titles, query)
        scores = scores[candidates]
        k = min(k, len(candidates))
        if k <= 0:
            return []
        top = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
        top = top[np.lexsort((candidates[top], -scores[top]))]
        rows = self.rows.take(pa.array(candidates[top])).to_pylist()
        return [(row, float(score)) for row, score in zip(rows, scores[top], strict=True)]


def vector_matrix(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A fixed-size-list vector column as a float32 matrix; null vectors are zero rows."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    dimension = array.type.list_size
    values = array.values.slice(array.offset * dimension, len(array) * dimension)
    matrix = values.to_numpy(zero_copy_only=False).astype(np.float32).reshape(len(array), dimension)
    if array.null_count:
        matrix[array.is_null().to_numpy(zero_copy_only=False)] = 0.0
    return np.nan_to_num(matrix, copy=False)
