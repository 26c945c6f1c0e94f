"""The image table `<table>_images`: a pixel vector per image content and source, kept current by content hash."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from ragindex.config import IndexConfig
from ragindex.documents import Skipped, sha256_hex
from ragindex.errors import ConfigError
from ragindex.images import load_image
from ragindex.index_store import IndexStore
from ragindex.lance_tables import quote, scan_columns, table_names
from ragindex.storage import connect
from ragindex.vision.embedder import ImageEmbedder

IMAGE_TABLE_SUFFIX = "_images"
KEY = ["source", "image_id"]
_META = ["image_id", "source", "path", "doc_id", "caption", "size", "mtime", "fingerprint"]


def image_schema(dimension: int) -> pa.Schema:
    return pa.schema([
        ("image_id", pa.string()),  # sha256 of the file's bytes
        ("source", pa.string()),
        ("path", pa.string()),
        ("doc_id", pa.string()),  # the document that shows it (or the image file's own document)
        ("caption", pa.string()),  # the text of its image chunk: alt text, caption or description
        ("size", pa.int64()),
        ("mtime", pa.float64()),
        ("fingerprint", pa.string()),
        ("vector", pa.list_(pa.float32(), dimension)),
    ])


@dataclass(frozen=True)
class ImageRecord:
    """An image of a source as the text index knows it: the file and the words shown with it."""

    path: str
    doc_id: str
    source: str
    caption: str


@dataclass
class ImageSync:
    """What one sync of a source did to the image table."""

    table: str
    version: int
    images: int  # distinct image contents the source has now
    embedded: int  # decoded and embedded by this sync
    reused: int  # vector found in the table (same content and model, any source)
    deleted: int
    added: list[str] = field(default_factory=list)  # paths of images new to the source (thumbnails)
    skipped: list[Skipped] = field(default_factory=list)
    seconds: float = 0.0


def image_records(index: IndexStore, source: str) -> list[ImageRecord]:
    """One record per image path of a source's image chunks; the words of a document that shows the image are
    preferred to the image file's own description, then the longest."""
    if not index.exists():
        return []
    rows = scan_columns(index.open(), ["doc_id", "path", "text", "image_path"],
                        f"source = {quote(source)} AND kind = 'image'").to_pylist()
    best: dict[str, dict] = {}
    for row in sorted(rows, key=lambda r: (r["path"] == r["image_path"], -len(r["text"]), r["doc_id"], r["text"])):
        best.setdefault(row["image_path"], row)
    return [ImageRecord(p, r["doc_id"], source, r["text"]) for p, r in sorted(best.items())]


class ImageStore:
    """The LanceDB image table beside an index table; search only ever compares vectors of one model."""

    def __init__(self, config: IndexConfig, table: str | None = None):
        self.name = f"{table or config.table}{IMAGE_TABLE_SUFFIX}"
        self.uri = config.resolved_uri()
        self.db = connect(self.uri)

    def exists(self) -> bool:
        return self.name in table_names(self.db)

    def open(self):
        if not self.exists():
            raise ConfigError(f"image table '{self.name}' not found at {self.uri}; index images first "
                              "(embedder.image_model set)")
        return self.db.open_table(self.name)

    def _open_for(self, dimension: int):
        if not self.exists():
            return self.db.create_table(self.name, schema=image_schema(dimension), exist_ok=True)
        table = self.db.open_table(self.name)
        held = table.schema.field("vector").type.list_size
        if held != dimension:
            raise ConfigError(f"image table '{self.name}' holds {held}-dimensional vectors, the image model makes "
                              f"{dimension}; drop the table or set another index.table")
        return table

    def rows(self, source: str | None = None, fingerprint: str | None = None, vectors: bool = True) -> pa.Table:
        """Rows of the table (of one source, of one model), with or without their vectors."""
        if not self.exists():
            return image_schema(1).empty_table()
        terms = [f"source = {quote(source)}"] if source else []
        terms += [f"fingerprint = {quote(fingerprint)}"] if fingerprint else []
        return scan_columns(self.open(), _META + (["vector"] if vectors else []), " AND ".join(terms) or None)

    def matrix(self, source: str | None = None, fingerprint: str | None = None) -> np.ndarray:
        """The vectors as an (n, dimension) float32 matrix, e.g. for the drift tests (ragindex/drift)."""
        column = self.rows(source, fingerprint).column("vector")
        if not len(column):
            return np.zeros((0, 0), dtype=np.float32)
        return np.asarray(column.combine_chunks().flatten(), dtype=np.float32).reshape(len(column), -1)

    def sync(self, source: str, records: Sequence[ImageRecord], embedder: ImageEmbedder,
             max_pixels: int) -> ImageSync:
        """Make the source's rows match `records` in one commit: new contents are embedded unless the table
        already holds their vector for this model; rows of contents the source no longer has are deleted.
        Files whose size and mtime match their row are not re-read."""
        start = time.perf_counter()
        table = self._open_for(embedder.dimension)
        fingerprint = embedder.fingerprint.id
        held = {(r["path"], r["size"], r["mtime"]): r for r in self.rows(source, fingerprint, vectors=False)
                .to_pylist()}
        known_ids = set(self.rows(fingerprint=fingerprint, vectors=False).column("image_id").to_pylist())
        current: dict[str, dict] = {}
        skipped: list[Skipped] = []
        for record in records:
            row = self._identify(record, held, fingerprint, skipped)
            if row:
                current.setdefault(row["image_id"], row)
        changed = [r for r in current.values() if _changed(r, held)]
        vectors = self._vectors(changed, known_ids, fingerprint, embedder, max_pixels, skipped)
        upserts = [{**r, "vector": vectors[r["image_id"]]} for r in changed if r["image_id"] in vectors]
        ids = sorted(r["image_id"] for r in current.values() if r["image_id"] in vectors or not _changed(r, held))
        gone = f"source = {quote(source)}" + (f" AND image_id NOT IN ({', '.join(map(quote, ids))})" if ids else "")
        previous = {r["image_id"] for r in held.values()}
        deleted = 0
        if upserts or table.count_rows(gone):
            result = table.merge_insert(KEY).when_matched_update_all().when_not_matched_insert_all() \
                .when_not_matched_by_source_delete(gone) \
                .execute(pa.Table.from_pylist(upserts, image_schema(embedder.dimension)))
            deleted = result.num_deleted_rows
        embedded = len({r["image_id"] for r in upserts} - known_ids)
        return ImageSync(self.name, table.version, len(ids), embedded, len(upserts) - embedded, deleted,
                         [r["path"] for r in upserts if r["image_id"] not in previous], skipped,
                         time.perf_counter() - start)

    @staticmethod
    def _identify(record: ImageRecord, held: dict, fingerprint: str, skipped: list[Skipped]) -> dict | None:
        """The row an image should have; its content hash is read only when size or mtime changed."""
        path = Path(record.path)
        try:
            stat = path.stat()
            old = held.get((record.path, stat.st_size, stat.st_mtime))
            image_id = old["image_id"] if old else sha256_hex(path.read_bytes())
        except OSError as error:
            skipped.append(Skipped(record.path, f"image unreadable ({error.strerror or error})"))
            return None
        return {"image_id": image_id, "source": record.source, "path": record.path, "doc_id": record.doc_id,
                "caption": record.caption, "size": stat.st_size, "mtime": stat.st_mtime, "fingerprint": fingerprint}

    def _vectors(self, rows: list[dict], known_ids: set[str], fingerprint: str, embedder: ImageEmbedder,
                 max_pixels: int, skipped: list[Skipped]) -> dict[str, list[float]]:
        """Vectors by image id: from the table when this model embedded the content before, else embedded."""
        reuse = sorted({r["image_id"] for r in rows} & known_ids)
        found: dict[str, list[float]] = {}
        if reuse:
            where = f"fingerprint = {quote(fingerprint)} AND image_id IN ({', '.join(map(quote, reuse))})"
            for row in scan_columns(self.open(), ["image_id", "vector"], where).to_pylist():
                found.setdefault(row["image_id"], row["vector"])
        pending = list({r["image_id"]: r["path"] for r in rows if r["image_id"] not in found}.items())
        for start in range(0, len(pending), embedder.batch_size):  # decoded a batch at a time: photos are big
            ids, images = [], []
            for image_id, path in pending[start : start + embedder.batch_size]:
                try:
                    images.append(load_image(path, max_pixels))
                    ids.append(image_id)
                except ValueError as error:
                    skipped.append(Skipped(path, str(error)))
            if images:
                found.update(zip(ids, embedder.embed_images(images).tolist(), strict=True))
        return found


def _changed(row: dict, held: dict) -> bool:
    """True unless the table holds this row as it is (same content, file, words and model)."""
    old = held.get((row["path"], row["size"], row["mtime"]))
    return old != row
