"""Embeddings to compare, and the record of every comparison.

Where vectors come from: an index table (optionally at a version or tag, optionally one source's rows),
a vectors Parquet file (a build's staging `vectors.parquet`), or a source folder (chunked and embedded through
the embedding cache, so a second look costs no model time). Every loader returns a seeded, deterministic
sample of at most `max_rows` chunk rows (whole documents when sampling by document), the model fingerprint the
vectors carry and each row's document id.

`per_document` turns chunk rows into one row per document (the normalised mean of its chunk vectors). The
tests assume independent rows; chunks of one document are alike, so on chunk rows two random halves of one
corpus split by document look "drifted" (benchmarks/bench_drift_real.py). Document rows keep the tests
calibrated when documents, not chunks, are what a batch adds.

`DriftHistory` keeps one JSON line per evaluation under `data_dir() / "drift"`, so p-values can be followed
across runs.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ragindex.config import ChunkerConfig, IndexConfig, SourceConfig
from ragindex.errors import ConfigError
from ragindex.index_store import IndexStore
from ragindex.lance_tables import quote
from ragindex.paths import DataLayout

DEFAULT_MAX_ROWS = 20_000
EMBED_BATCH = 256
Progress = Callable[[str], None]


def drift_dir() -> Path:
    return DataLayout.current().ensure(DataLayout.current().drift)


@dataclass
class Sample:
    """A deterministic sample of one side's embeddings: (n, d) float32 rows and the model that made them."""

    label: str
    vectors: np.ndarray
    fingerprint: str | None
    total: int  # rows available before sampling
    ids: list[str] = field(default_factory=list)  # chunk ids (document ids once per_document), in row order
    texts: list[str] | None = None
    groups: list[str] | None = None  # each row's document id, when known
    unit: str = "chunk"

    def __len__(self) -> int:
        return int(self.vectors.shape[0])

    def describe(self) -> dict[str, Any]:
        return {"label": self.label, "rows": len(self), "unit": self.unit, "total": self.total,
                "fingerprint": self.fingerprint}


def per_document(sample: Sample) -> Sample:
    """One row per document: the L2-normalised mean of its chunk vectors (rows without a document id, or an
    already aggregated sample, are returned unchanged)."""
    if sample.unit == "document" or sample.groups is None:
        return sample
    if not len(sample):
        return Sample(sample.label, sample.vectors, sample.fingerprint, 0, [], None, [], "document")
    docs, index = np.unique(np.asarray(sample.groups, dtype=object).astype(str), return_inverse=True)
    sums = np.zeros((len(docs), sample.vectors.shape[1]), dtype=np.float64)
    np.add.at(sums, index, sample.vectors.astype(np.float64))
    sums /= np.bincount(index, minlength=len(docs))[:, None]
    norms = np.linalg.norm(sums, axis=1, keepdims=True)
    means = (sums / np.where(norms > 0, norms, 1.0)).astype(np.float32)
    return Sample(sample.label, means, sample.fingerprint, len(docs), docs.tolist(), None, docs.tolist(), "document")


def as_unit(sample: Sample, unit: str) -> Sample:
    """The sample as chunk rows or as document rows (see per_document)."""
    if unit not in ("chunk", "document"):
        raise ValueError(f"unit must be 'chunk' or 'document', got {unit!r}")
    return per_document(sample) if unit == "document" else sample


def _pick(keys: Sequence[tuple[str, str]], max_rows: int, seed: int, by_document: bool) -> list[int]:
    """Positions of the rows to keep among (chunk id, doc id) keys sorted by chunk id: a seeded sample of
    rows, or (by_document) whole documents in seeded order while their rows fit in max_rows."""
    if len(keys) <= max_rows:
        return list(range(len(keys)))
    if not by_document:
        return sample_positions(len(keys), max_rows, seed).tolist()
    rows_of: dict[str, list[int]] = {}
    for position, (_, doc) in enumerate(keys):
        rows_of.setdefault(doc, []).append(position)
    docs = sorted(rows_of)
    kept: list[int] = []
    for i in np.random.default_rng(seed).permutation(len(docs)):
        rows = rows_of[docs[i]]
        if kept and len(kept) + len(rows) > max_rows:
            continue
        kept.extend(rows)
        if len(kept) >= max_rows:
            break
    return sorted(kept)


def sample_positions(n: int, k: int, seed: int) -> np.ndarray:
    """At most k of range(n), chosen by the seeded generator, sorted (all of them when n <= k)."""
    if n <= k:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=k, replace=False))


def _matrix(column: pa.ChunkedArray | pa.Array, dimension: int | None = None) -> np.ndarray:
    """A (fixed-size or variable) list<float> column as an (n, d) float32 matrix."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if len(array) == 0:
        return np.zeros((0, dimension or 0), dtype=np.float32)
    if pa.types.is_fixed_size_list(array.type):
        width = array.type.list_size
        return np.asarray(array.flatten(), dtype=np.float32).reshape(-1, width)
    return np.asarray(array.to_pylist(), dtype=np.float32)


def _one_fingerprint(values: Iterable[str | None], label: str) -> str | None:
    found = sorted({v for v in values if v})
    if len(found) > 1:
        raise ValueError(f"{label} mixes vectors of several models ({', '.join(found)}); compare one model at a time")
    return found[0] if found else None


def table_sample(store: IndexStore, version: int | str | None = None, *, where: str | None = None,
                 exclude_ids: Iterable[str] = (), max_rows: int = DEFAULT_MAX_ROWS, seed: int = 0,
                 with_text: bool = False, by_document: bool = True) -> Sample:
    """A seeded sample of the table's vectors at `version` (a number or tag; None = latest).

    Reads chunk and document ids first (cheap), picks at most `max_rows` rows in chunk-id order with the seed
    (whole documents when `by_document`), then fetches only those rows' `vector` and `fingerprint` (and `text`
    when asked): the same inputs give the same sample whatever the table's physical layout.
    """
    table = store.name
    opened = store.open(version)
    label = f"{table}@{version}" if version is not None else table
    if where:
        label += f" where {where}"
    vector_type = opened.schema.field("vector").type
    dimension = vector_type.list_size if pa.types.is_fixed_size_list(vector_type) else None
    total_rows = opened.count_rows(where) if where else opened.count_rows()
    if not total_rows:
        return Sample(label, np.zeros((0, dimension or 0), dtype=np.float32), None, 0)
    query = opened.search()
    if where:
        query = query.where(where)
    ids = query.with_row_id(True).select(["chunk_id", "doc_id"]).limit(total_rows).to_arrow()
    excluded = set(exclude_ids)
    keyed = sorted((c, d, r) for c, d, r in zip(ids.column("chunk_id").to_pylist(), ids.column("doc_id").to_pylist(),
                                                ids.column("_rowid").to_pylist(), strict=True) if c not in excluded)
    chosen = [keyed[i] for i in _pick([(c, d) for c, d, _ in keyed], max_rows, seed, by_document)]
    columns = ["chunk_id", "doc_id", "vector", "fingerprint"] + (["text"] if with_text else [])
    if not chosen:
        return Sample(label, np.zeros((0, dimension or 0), dtype=np.float32), None, 0, [], [] if with_text else None,
                      [])
    rows = opened.take_row_ids([r for _, _, r in chosen]).select(columns).to_arrow()
    rows = rows.sort_by([("chunk_id", "ascending")])
    return Sample(label, _matrix(rows.column("vector"), dimension),
                  _one_fingerprint(rows.column("fingerprint").to_pylist(), label), len(keyed),
                  rows.column("chunk_id").to_pylist(), rows.column("text").to_pylist() if with_text else None,
                  rows.column("doc_id").to_pylist())


def parquet_sample(path: str | Path, max_rows: int = DEFAULT_MAX_ROWS, seed: int = 0,
                   fingerprint: str | None = None, chunks_path: str | Path | None = None,
                   by_document: bool = True) -> Sample:
    """A seeded sample of a vectors Parquet file (columns `vector`, optionally `chunk_id`, `doc_id`,
    `fingerprint`). Document ids come from the file or, by chunk id, from `chunks_path` (a build's
    chunks.parquet, whose rows the build's vectors.parquet follows)."""
    path = Path(path)
    names = pq.ParquetFile(path).schema_arrow.names
    if "vector" not in names:
        raise ValueError(f"{path} has no 'vector' column")
    columns = [c for c in ("chunk_id", "doc_id", "vector", "fingerprint") if c in names]
    table = pq.read_table(path, columns=columns)
    ids = table.column("chunk_id").to_pylist() if "chunk_id" in columns else [str(i) for i in range(table.num_rows)]
    docs: list[str] | None = table.column("doc_id").to_pylist() if "doc_id" in columns else None
    if docs is None and chunks_path is not None and Path(chunks_path).is_file() and "chunk_id" in columns:
        chunk_rows = pq.read_table(chunks_path, columns=["chunk_id", "doc_id"])
        doc_of = dict(zip(chunk_rows.column("chunk_id").to_pylist(), chunk_rows.column("doc_id").to_pylist(),
                          strict=True))
        docs = [doc_of.get(c, c) for c in ids]
    positions = _pick(list(zip(ids, docs or ids, strict=True)), max_rows, seed, by_document and docs is not None)
    picked = table.take(pa.array(positions, pa.int64())) if table.num_rows else table
    if "fingerprint" in columns:
        fingerprint = _one_fingerprint([*picked.column("fingerprint").to_pylist(), fingerprint], str(path))
    return Sample(str(path), _matrix(picked.column("vector")), fingerprint, table.num_rows,
                  [ids[i] for i in positions] if "chunk_id" in columns else [], None,
                  [docs[i] for i in positions] if docs is not None else None)


def batch_sample(rows: pa.Table, cache, label: str, max_rows: int = DEFAULT_MAX_ROWS, seed: int = 0,
                 by_document: bool = True) -> Sample:
    """A seeded sample of a build's chunks (columns chunk_id, doc_id, text_hash) with their cached vectors."""
    keyed = sorted(zip(rows.column("chunk_id").to_pylist(), rows.column("doc_id").to_pylist(),
                       rows.column("text_hash").to_pylist(), strict=True))
    chosen = [keyed[i] for i in _pick([(c, d) for c, d, _ in keyed], max_rows, seed, by_document)]
    found = cache.get(h for _, _, h in chosen)
    vectors = np.stack([found[h] for _, _, h in chosen]).astype(np.float32) if chosen else \
        np.zeros((0, cache.dimension), np.float32)
    return Sample(f"this run's new and changed chunks ({label})", vectors, cache.name.removeprefix("embeddings_"),
                  len(keyed), [c for c, _, _ in chosen], None, [d for _, d, _ in chosen])


def folder_source(path: str | Path) -> SourceConfig:
    """A directory or BEIR folder as an (unregistered) source, named after the folder."""
    resolved = Path(path).expanduser().resolve()
    if not resolved.is_dir():
        raise ConfigError(f"{path} is not a directory (nor a table name)")
    kind = "beir" if (resolved / "corpus.jsonl").is_file() else "directory"
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", resolved.name).strip("-.") or "source"
    name = f"{slug}-{hashlib.sha256(str(resolved).encode()).hexdigest()[:6]}"
    return SourceConfig(name=name, type=kind, path=str(resolved))


def embed_cached(texts: Sequence[str], hashes: Sequence[str], embedder, cache_uri: str | Path | None = None,
                 progress: Progress | None = None) -> np.ndarray:
    """Vectors for texts (keyed by their hashes) through the embedding cache; only unseen texts are embedded."""
    from ragindex.embedding_cache import EmbeddingCache

    cache = EmbeddingCache(str(cache_uri or DataLayout.current().embedding_cache), embedder.fingerprint.id,
                           embedder.dimension)
    found = cache.get(hashes)
    missing = list(dict.fromkeys(h for h in hashes if h not in found))
    if missing:
        text_of = dict(zip(hashes, texts, strict=True))
        for start in range(0, len(missing), EMBED_BATCH):
            part = missing[start : start + EMBED_BATCH]
            vectors = embedder.embed([text_of[h] for h in part])
            cache.put(part, vectors)
            found.update(zip(part, np.asarray(vectors, dtype=np.float32), strict=True))
            if progress:
                progress(f"embedded {min(start + EMBED_BATCH, len(missing))}/{len(missing)} new texts")
    if not hashes:
        return np.zeros((0, embedder.dimension), dtype=np.float32)
    return np.stack([found[h] for h in hashes]).astype(np.float32)


def source_chunks(source: SourceConfig, chunker_config: ChunkerConfig, embedder) -> list:
    """Every chunk of a source's readable documents, in (doc id, position) order."""
    from ragindex.chunking import make_chunker
    from ragindex.documents import Document
    from ragindex.sources import read_source

    chunker = make_chunker(chunker_config, embedder)
    chunks = [c for item in read_source(source) if isinstance(item, Document) for c in chunker.chunk(item)]
    return sorted(chunks, key=lambda c: (c.doc_id, c.position))


def chunk_sample(chunks: Sequence, embedder, label: str, max_rows: int = DEFAULT_MAX_ROWS, seed: int = 0,
                 progress: Progress | None = None, by_document: bool = True) -> Sample:
    """A seeded sample of chunks (sorted by chunk id first; whole documents when by_document), embedded
    through the cache."""
    ordered = sorted(chunks, key=lambda c: c.chunk_id)
    picked = [ordered[i] for i in _pick([(c.chunk_id, c.doc_id) for c in ordered], max_rows, seed, by_document)]
    vectors = embed_cached([c.text for c in picked], [c.text_hash for c in picked], embedder, progress=progress)
    return Sample(label, vectors, embedder.fingerprint.id, len(ordered), [c.chunk_id for c in picked],
                  [c.text for c in picked], [c.doc_id for c in picked])


def source_sample(path: str | Path, chunker_config: ChunkerConfig, embedder, max_rows: int = DEFAULT_MAX_ROWS,
                  seed: int = 0, progress: Progress | None = None, by_document: bool = True) -> Sample:
    """A directory (or BEIR folder) chunked like a build and embedded through the embedding cache."""
    source = folder_source(path)
    chunks = source_chunks(source, chunker_config, embedder)
    return chunk_sample(chunks, embedder, str(source.resolved_path()), max_rows, seed, progress, by_document)


_VERSIONED = re.compile(r"^(?P<table>[A-Za-z0-9][A-Za-z0-9_.-]*)@(?P<version>.+)$")


def parse_side(spec: str) -> tuple[str, str, int | str | None]:
    """('folder', path, None), ('parquet', path, None) or ('table', name, version) for a command-line side.

    An existing path (or one containing a path separator) is a folder or a Parquet file; otherwise `TABLE`
    or `TABLE@VERSION_OR_TAG` (a number is a version, anything else a tag).
    """
    path = Path(spec).expanduser()
    if path.exists() or os.sep in spec:
        if path.is_file() and path.suffix == ".parquet":
            return "parquet", str(path), None
        return "folder", str(path), None
    match = _VERSIONED.match(spec)
    if match:
        version = match.group("version")
        return "table", match.group("table"), int(version) if version.isdigit() else version
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", spec):
        raise ConfigError(f"'{spec}' is neither an existing folder nor a table name (TABLE or TABLE@VERSION)")
    return "table", spec, None


def load_side(spec: str, index: IndexConfig, chunker_config: ChunkerConfig, embedder_factory: Callable[[], Any],
              max_rows: int = DEFAULT_MAX_ROWS, seed: int = 0, with_text: bool = False,
              progress: Progress | None = None, by_document: bool = True) -> Sample:
    """The (chunk-row) sample a command-line side names (see parse_side); the embedder is loaded only for
    folders. Pass the result through as_unit for document rows."""
    kind, name, version = parse_side(spec)
    if kind == "folder":
        return source_sample(name, chunker_config, embedder_factory(), max_rows, seed, progress, by_document)
    if kind == "parquet":
        return parquet_sample(name, max_rows, seed, by_document=by_document)
    try:
        return table_sample(index, name, version, max_rows=max_rows, seed=seed, with_text=with_text,
                            by_document=by_document)
    except ValueError as error:  # a missing version or tag
        if isinstance(error, ConfigError):
            raise
        raise ConfigError(f"{spec}: {error}") from None


_TAG = r"^{source}-\d{{8}}T\d{{6}}-v(?P<version>\d+)$"


def previous_source_tag(tags: dict[str, dict], source: str, before_version: int) -> str | None:
    """The newest build tag of `source` at a version below `before_version` (tags are
    `<source>-<UTC time>-v<version>`, see IndexStore.tag), or None."""
    pattern = re.compile(_TAG.format(source=re.escape(source)))
    best: tuple[int, str] | None = None
    for name, info in tags.items():
        match = pattern.match(name)
        if not match:
            continue
        version = int(info.get("version", match.group("version")) if isinstance(info, dict) else match.group("version"))
        if version < before_version and (best is None or (version, name) > best):
            best = (version, name)
    return best[1] if best else None


def source_filter(source: str) -> str:
    return f"source = {quote(source)}"


class DriftHistory:
    """One JSON line per drift evaluation: time, table, source, kind, p-value, drifted, per-test p-values."""

    def __init__(self, folder: str | Path | None = None):
        self.path = Path(folder or drift_dir()) / "history.jsonl"

    def append(self, record: dict[str, Any]) -> dict[str, Any]:
        """Add one record (its `time` defaults to now, UTC ISO 8601); returns it as stored."""
        stored = {"time": datetime.now(UTC).isoformat(timespec="seconds"), **record}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(stored, sort_keys=True, default=_jsonable) + "\n"
        with self.path.open("a", encoding="utf-8") as handle:  # one write per record: appends do not interleave
            handle.write(line)
        return stored

    def records(self, table: str | None = None, source: str | None = None, kind: str | None = None,
                limit: int | None = None) -> list[dict[str, Any]]:
        """Matching records, oldest first (the last `limit` of them)."""
        if not self.path.is_file():
            return []
        out = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn last line from a crash: skip it
            if all(want is None or record.get(key) == want
                   for key, want in (("table", table), ("source", source), ("kind", kind))):
                out.append(record)
        return out[-limit:] if limit else out

    @staticmethod
    def record(kind: str, table: str, source: str, status: str, decision: Any = None, **extra: Any) -> dict:
        """A history record from a DriftDecision (or None when nothing was tested)."""
        record: dict[str, Any] = {"kind": kind, "table": table, "source": source, "status": status,
                                  "p_value": None, "drifted": False, "tests": {}}
        if decision is not None:
            record.update(p_value=float(decision.p_value), drifted=bool(decision.drifted),
                          alpha=float(decision.alpha), n_reference=int(decision.n_reference),
                          n_current=int(decision.n_current),
                          tests={t.name: float(t.p_value) for t in decision.tests},
                          effects={t.name: float(t.effect_size) for t in decision.tests})
        record.update(extra)
        return record


def history_points(records: Sequence[dict[str, Any]]) -> list[tuple[str, float]]:
    """(label, combined p) of the tested records, for plot_drift's history panel."""
    return [(_short_label(r), float(r["p_value"])) for r in records if r.get("p_value") is not None]


def history_markdown(records: Sequence[dict[str, Any]], limit: int = 20) -> str:
    """The last `limit` records as a Markdown table (newest last)."""
    from ragindex.drift.report import format_p

    shown = list(records)[-limit:]
    if not shown:
        return "_no drift evaluations yet_"
    names = sorted({name for r in shown for name in r.get("tests", {})})
    header = ["Time (UTC)", "Build", "Status", "Combined p", "Drifted", *(f"p {n}" for n in names)]
    lines = ["| " + " | ".join(header) + " |", "|---|---|---|---:|---|" + "---:|" * len(names)]
    for r in shown:
        p = r.get("p_value")
        cells = [r.get("time", ""), r.get("tag") or r.get("label", ""), r.get("status", ""),
                 format_p(p) if p is not None else "-", "yes" if r.get("drifted") else "no"]
        cells += [format_p(r["tests"][n]) if n in r.get("tests", {}) else "-" for n in names]
        lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


def _short_label(record: dict[str, Any]) -> str:
    tag = record.get("tag")
    match = re.search(r"-(\d{8}T\d{6})-v(\d+)$", tag or "")
    if match:
        return f"v{match.group(2)} {match.group(1)[4:8]}"
    return str(record.get("time", ""))[5:16].replace("T", " ")


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
