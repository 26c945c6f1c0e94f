"""Retention: LanceDB keeps tagged versions; the policy deletes old versions and tags but never a protected one."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import lancedb
import pyarrow as pa
import pytest

from ragindex.retention import cleanup_versions, tag_versions
from ragindex.tracking import Tracker

GAP = 0.05  # seconds between commits, so every version has its own moment: 50x the 1 ms cutoffs below


@pytest.fixture
def table(tmp_path):
    """A table with versions 1..8 (one row added per version)."""
    db = lancedb.connect(str(tmp_path / "db"))
    table = db.create_table("t", pa.table({"n": [0]}))
    for n in range(1, 8):
        time.sleep(GAP)
        table.add(pa.table({"n": [n]}))
    assert [v["version"] for v in table.list_versions()] == list(range(1, 9))
    return table


def _versions(table) -> set[int]:
    return {v["version"] for v in table.list_versions()}


def _rows_at(table, version) -> int:
    """Rows of a version (number or tag), read through a handle of its own."""
    old = lancedb.connect(str(Path(table.uri).parent)).open_table(table.name)
    old.checkout(version)
    return old.count_rows()


def test_lancedb_keeps_tagged_versions_by_refusing_to_clean(table):
    """What the policy builds on: LanceDB never deletes a tagged version; with one older than the cutoff its
    cleanup refuses to run at all (and lancedb's Python API cannot make it skip the tag instead)."""
    table.tags.create("pinned", 3)
    time.sleep(GAP)
    with pytest.raises(RuntimeError, match="tagged version"):
        table.optimize(cleanup_older_than=timedelta(milliseconds=1))
    assert {1, 2, 3, 8} <= _versions(table)  # nothing was removed
    assert _rows_at(table, "pinned") == 3
    # without the tag the same cleanup removes every old version
    table.tags.delete("pinned")
    table.optimize(cleanup_older_than=timedelta(milliseconds=1))
    assert _versions(table) == {table.version}


def test_policy_deletes_old_tags_and_versions_but_never_a_protected_one(table):
    table.tags.create("docs-a-v2", 2)  # old, unprotected: deleted
    table.tags.create("champion-build-v4", 4)  # old, protected (an MLflow alias pins it): kept
    table.tags.create("docs-b-v6", 6)  # old, unprotected: deleted
    table.tags.create("docs-c-v8", 8)  # the newest tag: kept by keep_last=1
    time.sleep(GAP)
    result = cleanup_versions(table, keep_last=1, older_than=timedelta(milliseconds=1), protected_versions={4})
    assert result["deleted_tags"] == ["docs-a-v2", "docs-b-v6"]
    assert result["kept_tags"] == ["champion-build-v4", "docs-c-v8"]
    assert set(table.tags.list()) == {"champion-build-v4", "docs-c-v8"}
    left = _versions(table)
    assert {1, 2, 3} & left == set(), "versions before the oldest protected one are gone"
    assert {4, 8} <= left and result["removed_versions"] == 3 and result["limited_by_tag"] == "champion-build-v4"
    assert _rows_at(table, "champion-build-v4") == 4 and _rows_at(table, "docs-c-v8") == 8
    assert table.count_rows() == 8

    # the champion moves on: v4 is no longer protected, its tag goes, and so do versions 4..7
    time.sleep(GAP)
    result = cleanup_versions(table, keep_last=1, older_than=timedelta(milliseconds=1), protected_versions={8})
    assert result["deleted_tags"] == ["champion-build-v4"]
    assert min(_versions(table)) == 8 and _rows_at(table, "docs-c-v8") == 8


def test_policy_keeps_young_versions_and_the_newest_tags(table):
    for version in (2, 5, 7):
        table.tags.create(f"docs-v{version}", version)
    result = cleanup_versions(table, keep_last=2, older_than=timedelta(days=7), protected_versions=set())
    assert result["deleted_tags"] == [] and result["removed_versions"] == 0  # everything is younger than a week
    time.sleep(GAP)
    result = cleanup_versions(table, keep_last=2, older_than=timedelta(milliseconds=1), protected_versions=set())
    assert result["deleted_tags"] == ["docs-v2"] and set(table.tags.list()) == {"docs-v5", "docs-v7"}
    assert min(_versions(table)) == 5


def test_a_protected_version_that_lost_its_tag_is_tagged_again(table):
    time.sleep(GAP)
    result = cleanup_versions(table, keep_last=1, older_than=timedelta(milliseconds=1), protected_versions={3})
    assert result["created_tags"] == ["retained-v3"] and min(_versions(table)) == 3
    assert _rows_at(table, "retained-v3") == 3
    # a pinned build tag is resolved to its version even after the tag is gone (the -vN suffix)
    assert tag_versions(table, {"docs-20260101T000000-v3", "retained-v3", "unknown"}) == {3}


def _tracker(root: Path) -> Tracker:
    return Tracker(f"sqlite:///{root / 'mlflow' / 'mlflow.db'}", (root / "mlflow" / "artifacts").as_uri())


def test_protected_tags_without_an_mlflow_store_is_empty(tmp_path):
    assert _tracker(tmp_path).protected_tags() == set()
    assert not (tmp_path / "mlflow").exists()  # and it did not create one


def test_protected_tags_reads_aliases_and_the_rollback_target(tmp_path):
    import json

    tracker = _tracker(tmp_path)
    client = tracker.client
    name = "retention-test"
    client.create_registered_model(name)
    tags = {}
    for n in range(1, 5):
        run = client.create_run(tracker.experiment_id)
        config = {"tag": f"docs-t{n}-v{n}", "table": "chunks" if n != 4 else "other", "uri": "/x"}
        version = client.create_model_version(name, source=f"runs:/{run.info.run_id}/m", run_id=run.info.run_id,
                                              tags={"serving_config": json.dumps(config)})
        tags[n] = version.version
    client.set_model_version_tag(name, tags[3], "previous_champion", tags[2])
    client.set_registered_model_alias(name, "champion", tags[3])
    client.set_registered_model_alias(name, "other-table", tags[4])
    assert tracker.protected_tags() == {"docs-t2-v2", "docs-t3-v3", "docs-t4-v4"}
    assert tracker.protected_tags(table="chunks", uri="/x") == {"docs-t2-v2", "docs-t3-v3"}
    assert tracker.protected_tags(table="chunks", uri="/elsewhere") == set()
