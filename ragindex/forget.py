"""Forget a document: its chunks leave the index table, its staging rows, and every table version that can serve.

LanceDB versions are immutable, so forgetting is: delete the rows (a new version); rewrite the table's data files
so no file still holds them (a deletion alone only marks rows); tag the result; re-pin every MLflow alias of the
table (and its rollback target) to that tag; then delete every older tag and version of the table, and of the
source's staging tables. What stays: the new version, and the embedding cache's vectors (keyed by text hash, no
text). The history of the table before the forget is gone with it; that is the price of an erasure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from ragindex.build_tag import BuildTag
from ragindex.index_store import IndexStore
from ragindex.lance_tables import quote, scan_columns
from ragindex.retention import cleanup_versions
from ragindex.serving.pins import Repinned, advance_pins
from ragindex.staging import StageStore
from ragindex.tracking import Tracker


@dataclass
class Forgotten:
    """What `forget` removed from one table."""

    table: str
    sources: list[str]
    chunks: int  # rows deleted from the latest version
    tag: str  # the version that serves now
    versions_removed: int
    tags_deleted: list[str]
    staging_rows: int
    repinned: list[Repinned] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"table {self.table}: {self.chunks} chunks of sources {', '.join(self.sources)} deleted; now at tag "
               f"{self.tag}; {self.versions_removed} older versions and {len(self.tags_deleted)} tags removed; "
               f"{self.staging_rows} staging rows deleted"]
        return out + [f"  {r.line()}" for r in self.repinned]


def predicate(doc_id: str | None = None, path: str | None = None) -> str:
    """The rows of one document, by id or by path."""
    return f"doc_id = {quote(doc_id)}" if doc_id is not None else f"path = {quote(path)}"


def holders(store: IndexStore, where: str) -> list[str]:
    """The sources whose rows match in the latest version or any version still on disk (newest first)."""
    table = store.open()
    for entry in sorted(table.list_versions(), key=lambda v: v["version"], reverse=True):
        old = store.open(int(entry["version"]))
        if old.count_rows(where):
            return sorted(set(scan_columns(old, ["source"], where).column("source").to_pylist()))
    return []


def _rewrite(table) -> None:
    """Rewrite every row into new data files: the files that held the deleted rows drop out of the version."""
    if table.count_rows():
        table.update(values_sql={"source": "source"})
    table.optimize(cleanup_older_than=timedelta(days=36500))


def forget(store: IndexStore, stages: StageStore, tracker: Tracker, where: str, sources: list[str],
           label: str) -> Forgotten:
    """Remove the matching rows everywhere in this table (call with the sources' writer locks held)."""
    table = store.open()
    chunks = table.count_rows(where)
    if chunks:
        table.delete(where)
        _rewrite(table)
        store.ensure_indexes()
    tag = BuildTag.new(sources[0], store.open().version)
    table.tags.create(str(tag), tag.version)
    repinned = advance_pins(tracker, store, str(tag), tag.version, lambda _: True, f"forget {label}")
    history = cleanup_versions(store.open(), 1, timedelta(0), {tag.version})
    staged = 0
    for source in sources:
        for stage in (stages.documents(store.name, source), stages.chunks(store.name, source)):
            if not stage.exists():
                continue
            part = stage.open()
            rows = part.count_rows(where)
            if rows:
                part.delete(where)
                _rewrite(part)
            staged += rows
            cleanup_versions(stage.open(), 1, timedelta(0), set())
    return Forgotten(store.name, sources, chunks, str(tag), history["removed_versions"], history["deleted_tags"],
                     staged, repinned)
