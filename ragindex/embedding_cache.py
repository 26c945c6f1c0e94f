"""Embedding cache keyed by (model fingerprint, text hash): a text is embedded once per model, ever.

`embed_through_cache` is the one loop that turns texts into vectors: cached vectors are read, missing texts
are embedded in batches (in this process, or streamed back from a Ray actor pool: ragindex/compute/ray_embed.py),
and each batch is committed to the cache before it is used, so a crash never loses finished work.

Built to hold 100M rows: a BTree index on `text_hash` once the table passes INDEX_MIN_ROWS; membership and reads
stream the table in record batches against the asked-for hashes (memory bounded by the request, never by the
cache); small commits are compacted (`maintain`); `ragindex/cache_gc.py` removes vectors no kept version uses.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import timedelta
from functools import partial

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from lancedb.index import BTree

from ragindex.lance_tables import in_list, scan_in, table_names
from ragindex.storage import connect

EMBED_BATCH = 1024  # texts per cache commit
INDEX_MIN_ROWS = 50_000  # the text_hash BTree is created once the cache holds this many rows
LOOKUP_SHARE = 50  # indexed `IN` lookups while the request is under 1/LOOKUP_SHARE of the cache, else one scan
COMPACT_FRAGMENTS = 64  # small fragments (one per commit) tolerated before `maintain` compacts them
SCAN_ROWS = 65_536  # rows per record batch of a streaming scan
DELETE_BATCH = 8192  # hashes per delete predicate
KEEP_ALL = timedelta(days=36500)  # optimize without pruning versions
Progress = Callable[[int, int], None]  # (texts embedded so far, texts to embed)
class EmbeddingCache:
    """One LanceDB table per model fingerprint with columns text_hash and vector."""

    def __init__(self, uri: str, fingerprint_id: str, dimension: int):
        self.db = connect(uri)
        self.fingerprint_id = fingerprint_id
        self.name = f"embeddings_{fingerprint_id}"
        self.dimension = dimension
        self.schema = pa.schema([("text_hash", pa.string()), ("vector", pa.list_(pa.float32(), dimension))])
        self._table = self.db.open_table(self.name) if self.name in table_names(self.db) else None

    def _open(self):
        if self._table is None:
            self._table = self.db.create_table(self.name, schema=self.schema, exist_ok=True)
        return self._table

    def rows(self) -> int:
        return self._table.count_rows() if self._table is not None else 0

    def missing(self, text_hashes: Iterable[str]) -> list[str]:
        """The given hashes (deduplicated, in order) that have no vector for this model."""
        wanted = list(dict.fromkeys(text_hashes))
        if not wanted or not self.rows():
            return wanted
        found = {h for part in self._matching(wanted, ["text_hash"]) for h in part.column("text_hash").to_pylist()}
        return [h for h in wanted if h not in found]

    def _matching(self, wanted: list[str], columns: list[str]) -> Iterator[pa.Table | pa.RecordBatch]:
        """Rows whose hash is wanted: indexed `IN` lookups for a small request, else one streaming scan filtered
        batch by batch; either way memory grows with the request, not with the cache."""
        if len(wanted) * LOOKUP_SHARE < self.rows() and self.indexed():
            yield from scan_in(self._table, columns, "text_hash", wanted)
            return
        value_set = pa.array(wanted, pa.string())
        for batch in self.scan(list(dict.fromkeys(["text_hash", *columns]))):
            wanted_rows = pc.is_in(batch.column("text_hash"), value_set=value_set)
            hits = batch if pc.all(wanted_rows).as_py() else batch.filter(wanted_rows)  # all: no copy (a build)
            if hits.num_rows:
                yield hits.select(columns)

    def scan(self, columns: list[str]) -> Iterator[pa.RecordBatch]:
        """Some columns of every row, a record batch at a time."""
        if self._table is None:
            return
        yield from self._table.search().select(columns).limit(max(self.rows(), 1)).to_batches(SCAN_ROWS)

    def indexed(self) -> bool:
        return self._table is not None and any(i.columns == ["text_hash"] for i in self._table.list_indices())

    def maintain(self) -> dict[str, str]:
        """Index `text_hash` past INDEX_MIN_ROWS; compact the small fragments of per-batch commits and fold new
        rows into the index once there are COMPACT_FRAGMENTS of them. Never prunes versions (retention does)."""
        done: dict[str, str] = {}
        if self._table is None:
            return done
        if not self.indexed() and self.rows() >= INDEX_MIN_ROWS:
            self._table.create_index("text_hash", config=BTree())
            done["text_hash"] = "created BTREE"
        if self._table.stats()["fragment_stats"]["num_small_fragments"] >= COMPACT_FRAGMENTS:
            self.compact()
            done["optimize"] = "compacted fragments, folded new rows into the index"
        return done

    def put(self, text_hashes: Sequence[str], vectors: np.ndarray) -> None:
        """Append vectors; each call is one LanceDB commit, so a crash keeps every finished batch."""
        if not len(text_hashes):
            return
        flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).ravel())
        batch = pa.table({"text_hash": pa.array(list(text_hashes), pa.string()),
                          "vector": pa.FixedSizeListArray.from_arrays(flat, self.dimension)})
        self._open().add(batch)

    def delete(self, text_hashes: Sequence[str]) -> None:
        """Remove the vectors of these hashes (a commit per IN_LIST of them; `compact` reclaims the space)."""
        for start in range(0, len(text_hashes), DELETE_BATCH):
            self._open().delete(in_list("text_hash", text_hashes[start : start + DELETE_BATCH]))

    def compact(self, prune_older_than: timedelta | None = None) -> None:
        """Rewrite small and deleted-from fragments, fold new rows into the index; prune old cache versions
        (nothing pins a cache version) when asked."""
        self._open().optimize(cleanup_older_than=KEEP_ALL)
        if prune_older_than is not None:
            self._open().optimize(cleanup_older_than=prune_older_than)

    def get(self, text_hashes: Iterable[str]) -> dict[str, np.ndarray]:
        """Vectors for the given hashes (those present)."""
        hashes = list(dict.fromkeys(text_hashes))
        found: dict[str, np.ndarray] = {}
        if self._table is None or not hashes:
            return found
        for part in self._matching(hashes, ["text_hash", "vector"]):
            self._collect(part, found)
        return found

    def _collect(self, table: pa.Table | pa.RecordBatch, found: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        column = table.column("vector")
        column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
        vectors = np.asarray(column.flatten(), dtype=np.float32)
        vectors = vectors.reshape(-1, self.dimension)
        for text_hash, vector in zip(table.column("text_hash").to_pylist(), vectors, strict=True):
            found[text_hash] = vector
        return found


def _in_process(embedder, missing: list[str], texts_by_hash: dict[str, str]) -> Iterator[tuple[list[str], np.ndarray]]:
    """(hashes, vectors) of about EMBED_BATCH texts at a time. An embedder with `embed_batches` sees the whole part
    at once, so its length-sorted batches pad less than sorting each commit's texts alone would (bulk throughput:
    parts of 8192 rather than 1024 texts), and finished batches are committed while the rest embed."""
    batches = getattr(embedder, "embed_batches", None)
    if batches is None:
        for start in range(0, len(missing), EMBED_BATCH):
            part = missing[start : start + EMBED_BATCH]
            yield part, embedder.embed([texts_by_hash[h] for h in part])
        return
    positions: list[np.ndarray] = []
    vectors: list[np.ndarray] = []
    held = 0
    for rows, out in batches([texts_by_hash[h] for h in missing]):
        positions.append(rows)
        vectors.append(out)
        held += len(rows)
        if held >= EMBED_BATCH:
            yield [missing[i] for i in np.concatenate(positions)], np.concatenate(vectors)
            positions, vectors, held = [], [], 0
    if positions:
        yield [missing[i] for i in np.concatenate(positions)], np.concatenate(vectors)


def fill_cache(texts_by_hash: dict[str, str], embedder_factory: Callable[[], object], cache: EmbeddingCache,
               progress: Progress | None = None) -> int:
    """Embed the texts the cache lacks (the model is created only if one is missing); returns how many."""
    missing = cache.missing(texts_by_hash)
    return fill_cache_parts([{h: texts_by_hash[h] for h in missing}], len(missing), embedder_factory, cache,
                            progress)


def fill_cache_parts(parts: Iterable[dict[str, str]], total: int, embedder_factory: Callable[[], object],
                     cache: EmbeddingCache, progress: Progress | None = None) -> int:
    """Embed texts the cache lacks, given as bounded parts (hash -> text) so the caller never holds them all;
    the model is created at the first text. Returns how many were embedded.

    An embedder with `embed_stream` (the Ray engine) yields (hashes, vectors) as its workers finish; a hash that
    comes back twice (a retried task) is written once, and one that never comes back fails the step."""
    embedder = None
    done = 0
    for texts_by_hash in parts:
        if not texts_by_hash:
            continue
        embedder = embedder or embedder_factory()
        stream = getattr(embedder, "embed_stream", None)
        missing = list(texts_by_hash)
        pending = set(missing)
        for part, vectors in (stream or partial(_in_process, embedder))(missing, texts_by_hash):
            bad = np.flatnonzero(~np.isfinite(vectors).all(axis=1))
            if len(bad):  # never cached: a cached vector is reused by every later build
                raise ValueError(f"the model returned non-finite vectors for {len(bad)} of {len(part)} texts "
                                 f"(text hash {part[bad[0]]}); nothing of this batch was cached")
            new = [i for i, h in enumerate(part) if h in pending]
            pending.difference_update(part)
            cache.put([part[i] for i in new], vectors[new])
            done += len(new)
            if progress:
                progress(done, total)
        if pending:
            raise RuntimeError(f"the embedder returned no vector for {len(pending)} texts "
                               f"(e.g. {next(iter(pending))})")
    if done:
        cache.maintain()
    return done


def embed_through_cache(texts: Sequence[str], hashes: Sequence[str], embedder_factory: Callable[[], object],
                        cache: EmbeddingCache, progress: Progress | None = None) -> np.ndarray:
    """Vectors for texts (keyed by their hashes), in order; only texts never embedded with this model are."""
    fill_cache(dict(zip(hashes, texts, strict=True)), embedder_factory, cache, progress)
    if not hashes:
        return np.zeros((0, cache.dimension), dtype=np.float32)
    found = cache.get(hashes)
    lost = [h for h in hashes if h not in found]
    if lost:
        raise RuntimeError(f"embedding cache lost {len(lost)} vectors (e.g. {lost[0]}); rerun the build")
    return np.stack([found[h] for h in hashes]).astype(np.float32)
