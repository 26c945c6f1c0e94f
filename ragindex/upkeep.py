"""Upkeep of a LanceDB table: compaction, index folding and version cleanup by policy, and the figures to watch."""

from __future__ import annotations

from datetime import timedelta

from ragindex.config import UpkeepConfig
from ragindex.retention import cleanup_versions

HEALTH_LIMITS = {"fragments": "max_fragments", "versions": "max_versions", "unindexed_rows": "max_unindexed_rows"}


def health(table) -> dict[str, int]:
    """Fragments, versions on disk, and the most rows any of the table's indexes still lacks."""
    table.checkout_latest()
    unindexed = [table.index_stats(i.name) for i in table.list_indices()]
    return {"fragments": table.stats()["fragment_stats"]["num_fragments"],
            "versions": len(table.list_versions()),
            "unindexed_rows": max((s.num_unindexed_rows for s in unindexed if s), default=0)}


def over_limits(figures: dict[str, int], limits: UpkeepConfig) -> dict[str, str]:
    """The figures past their configured limit, each with a one-line reason."""
    return {name: f"{figures[name]} {name.replace('_', ' ')} > {key} {getattr(limits, key)}"
            for name, key in HEALTH_LIMITS.items() if figures[name] > getattr(limits, key)}


def upkeep_table(table, keep_last: int, older_than: timedelta, protected_versions: set[int]) -> dict:
    """Compact, fold new rows into the indexes and delete old versions (never a protected or tagged-and-kept
    one, ragindex/retention.py); the health figures before and after."""
    before = health(table)
    result = cleanup_versions(table, keep_last, older_than, protected_versions)
    return {"before": before, "after": health(table), "removed_versions": result["removed_versions"],
            "deleted_tags": result["deleted_tags"], "protected_versions": result["protected_versions"],
            "pruned": result["pruned"], "error": result["error"]}
