"""Moving what serves: every MLflow alias pinned to a table version that holds content the table has dropped.

A registered retriever serves the LanceDB tag it was registered with. When a build deletes chunks (a deleted
document, the old text of an edited one), an alias pinned to an older tag would keep answering with them; so the
version behind the alias is registered again with the same settings, pinned to the new tag, and the alias moves to
it. Its rollback target (`previous_champion`) is re-pinned the same way, so a rollback cannot bring deleted text
back either.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ragindex.errors import ConfigError
from ragindex.index_store import IndexStore
from ragindex.lance_tables import scan_columns
from ragindex.tracking import Tracker


@dataclass(frozen=True)
class Repinned:
    model: str
    aliases: tuple[str, ...]  # empty for a rollback target
    old_version: str
    new_version: str
    old_tag: str
    new_tag: str

    def line(self) -> str:
        what = "@" + ",@".join(self.aliases) if self.aliases else "rollback target"
        return f"{self.model} {what}: v{self.old_version} ({self.old_tag}) -> v{self.new_version} ({self.new_tag})"


def dropped_since(store: IndexStore, tag: str) -> Callable[[str], bool]:
    """A test of a tag: does its version hold chunk ids that the version at `tag` lacks (or is it gone)?"""
    current = set(scan_columns(store.open(tag), ["chunk_id"]).column("chunk_id").to_pylist())

    def stale(old: str) -> bool:
        try:
            held = scan_columns(store.open(old), ["chunk_id"]).column("chunk_id").to_pylist()
        except ConfigError:  # the version is gone: nothing can serve it any more
            return True
        return not set(held) <= current

    return stale


def advance_pins(tracker: Tracker, store: IndexStore, tag: str, version: int, stale: Callable[[str], bool],
                 reason: str) -> list[Repinned]:
    """Re-pin every alias of this table whose tag is stale (and its rollback target) to `tag`."""
    client, moved = tracker.client, []
    for model, current, aliases in tracker.aliased_versions(store.name, store.uri):
        previous = current.tags.get("previous_champion")
        new_previous = previous
        if previous:
            before = client.get_model_version(model, previous)
            config = tracker.serving_config(before)
            old = config.get("tag")
            if config.get("table") == store.name and config.get("uri") == store.uri and old and old != tag \
                    and stale(old):
                new_previous = tracker.repin(model, before, tag, version, reason)
                moved.append(Repinned(model, (), previous, new_previous, old, tag))
        old = tracker.serving_config(current)["tag"]
        if old != tag and stale(old):
            new = tracker.repin(model, current, tag, version, reason, new_previous)
            for alias in aliases:
                client.set_registered_model_alias(model, alias, new)
            moved.append(Repinned(model, tuple(aliases), str(current.version), new, old, tag))
        elif new_previous != previous:
            client.set_model_version_tag(model, current.version, "previous_champion", new_previous)
    return moved
