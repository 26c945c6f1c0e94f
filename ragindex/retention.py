"""Retention of old LanceDB table versions: a policy that never removes a version an MLflow alias points at.

Every build tags its table version and every registered retriever pins such a tag, so the versions that must
survive are tagged ones. LanceDB never deletes a tagged version, but it does not skip it either: its cleanup
(`Table.optimize(cleanup_older_than=...)`; lancedb's Python API offers no `error_if_tagged_old_versions` switch)
refuses to run at all while any tagged version is older than the cutoff. So a cleanup here

1. deletes the tags the policy lets go: older than `older_than`, not among the newest `keep_last`, not on a
   protected version;
2. tags every protected version that has lost its tag, so that it is kept too;
3. prunes with a cutoff no later than the oldest version still tagged (LanceDB prunes a prefix of the history:
   one age cutoff), just after the version before it, so no kept tag is ever in the way.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from ragindex.build_tag import BuildTag

_TAGGED_ERROR = "tagged version"
FAR_PAST = timedelta(days=36500)  # a cleanup cutoff that removes nothing: compaction and index folding only


def _version_times(table) -> dict[int, float]:
    """Epoch seconds of every version still on disk (lancedb reports naive local datetimes)."""
    return {int(v["version"]): v["timestamp"].timestamp() for v in table.list_versions()}


def _iso(epoch: float | None) -> str | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def tag_versions(table, tags: Iterable[str]) -> set[int]:
    """The versions the given tag names point at; a tag no longer in the table falls back to the version every
    build tag names (BuildTag), so a pinned version stays protected even if its tag was lost."""
    current = {name: int(info["version"]) for name, info in table.tags.list().items()}
    versions = set()
    for name in tags:
        if name in current:
            versions.add(current[name])
        elif parsed := BuildTag.parse(name):
            versions.add(parsed.version)
    return versions


def _prune(table, cutoff: float | None, attempts: int = 3) -> tuple[bool, str | None]:
    """Compact, then prune versions older than `cutoff` (epoch seconds). The first optimize compacts and folds new
    rows into the indexes without pruning, so the second one (the prune) starts at once and LanceDB's own clock
    matches ours; a tagged version found in the way (another writer tagged meanwhile) stops it, nothing deleted."""
    table.optimize(cleanup_older_than=FAR_PAST)
    if cutoff is None:
        return True, None
    error = None
    for _ in range(attempts):
        older_than = timedelta(seconds=max(time.time() - cutoff, 0.001))
        try:
            table.optimize(cleanup_older_than=older_than)
            return True, None
        except (RuntimeError, OSError, ValueError) as exc:
            if _TAGGED_ERROR not in str(exc):
                raise
            error = str(exc).splitlines()[0]
    return False, error


def cleanup_versions(table, keep_last: int, older_than: timedelta, protected_versions: set[int],
                     retained_tag_prefix: str = "retained") -> dict:
    """Delete old versions of a LanceDB table by policy; protected versions (and the newest) always survive.

    keep_last: the newest `keep_last` tags are kept whatever their age.
    older_than: versions (and tags) younger than this are kept.
    protected_versions: versions that must survive (those MLflow aliases pin, the build in progress).
    Returns what was done: tags deleted / created / kept, versions removed, the cutoff used and what limited it.
    """
    table.checkout_latest()
    now = time.time()
    times = _version_times(table)
    latest = max(times) if times else table.version
    policy_cutoff = now - older_than.total_seconds()
    tags = {name: int(info["version"]) for name, info in table.tags.list().items()}
    newest = {name for name, _ in sorted(tags.items(), key=lambda item: (item[1], item[0]), reverse=True)[:keep_last]}
    protected = {int(v) for v in protected_versions}

    deleted_tags, kept_tags = [], []
    for name, version in sorted(tags.items(), key=lambda item: item[1]):
        young = times.get(version, 0.0) >= policy_cutoff
        if version in protected or name in newest or young:
            kept_tags.append(name)
        else:
            table.tags.delete(name)
            deleted_tags.append(name)

    tagged = {name: tags[name] for name in kept_tags}
    created_tags, missing = [], []
    for version in sorted(protected - set(tagged.values())):
        if version not in times:
            missing.append(version)  # already gone before this policy ran (or never existed)
            continue
        name = f"{retained_tag_prefix}-v{version}"
        table.tags.create(name, version)
        created_tags.append(name)
        tagged[name] = version

    # LanceDB prunes every version older than one cutoff and refuses if a tagged one is among them: the cutoff is
    # the policy's, or, when a kept tag is older, halfway between that tag's version and the version before it.
    cutoff, limited_by = policy_cutoff, None
    oldest_tagged = min((v for v in tagged.values() if v in times), default=None)
    if oldest_tagged is not None and times[oldest_tagged] <= policy_cutoff:
        before = [t for v, t in times.items() if v < oldest_tagged]
        cutoff = (max(before) + times[oldest_tagged]) / 2 if before else None
        limited_by = min(n for n, v in tagged.items() if v == oldest_tagged)
    pruned, error = _prune(table, cutoff)
    after = _version_times(table)
    removed = sorted(set(times) - set(after))
    unsafe = sorted(protected & set(removed))
    if unsafe:  # cannot happen while LanceDB keeps tagged versions; say so loudly if it ever does
        raise RuntimeError(f"retention removed protected versions {unsafe}")
    return {
        "versions_before": len(times),
        "versions_after": len(after),
        "removed_versions": len(removed),
        "removed_range": [removed[0], removed[-1]] if removed else None,
        "latest_version": latest,
        "deleted_tags": deleted_tags,
        "kept_tags": kept_tags,
        "created_tags": created_tags,
        "protected_versions": sorted(protected),
        "protected_missing": missing,
        "cutoff": _iso(cutoff),
        "limited_by_tag": limited_by,
        "pruned": pruned,
        "error": error,
    }
