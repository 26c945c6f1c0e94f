"""Change detection: the documents a source has now, compared with those last indexed."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class DocState:
    """What the index knows about a document: content hash, size, mtime, and how it was cut and embedded."""

    content_hash: str
    size: int
    mtime: float
    chunker_hash: str
    fingerprint: str
    chunk_ids: tuple[str, ...] = ()


@dataclass
class ChangeSet:
    """Document ids by what happened to them since the last indexed version."""

    added: list[str] = field(default_factory=list)
    modified: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    kept_skipped: list[str] = field(default_factory=list)  # indexed before, unreadable now: kept as they were

    def counts(self) -> dict[str, int]:
        return {"added": len(self.added), "modified": len(self.modified), "deleted": len(self.deleted),
                "unchanged": len(self.unchanged)}

    @property
    def replaced(self) -> list[str]:
        """Documents whose old chunks may be removed by this run."""
        return self.modified + self.deleted


def classify(doc_id: str, content_hash: str, previous: DocState | None, chunker_hash: str,
             fingerprint: str) -> str:
    """added | modified | unchanged, where a chunker or model change makes an unchanged text 'modified'."""
    if previous is None:
        return "added"
    if (previous.content_hash != content_hash or previous.chunker_hash != chunker_hash
            or previous.fingerprint != fingerprint):
        return "modified"
    return "unchanged"
