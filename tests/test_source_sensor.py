"""The source sensor and the verification schedule, evaluated against a real Dagster instance, and the runs they
request executed: a file dropped into a watched directory ends up searchable."""

from __future__ import annotations

import os
from datetime import UTC, datetime

import pytest
import yaml
from dagster import (
    AddDynamicPartitionsRequest,
    AssetKey,
    build_schedule_context,
    build_sensor_context,
    instance_for_test,
    partition_loading_context,
)
from pipeline_helpers import output

from ragindex.config import load_config
from ragindex.embedding import load_embedder
from ragindex.index_store import IndexStore
from ragindex.search import Retriever
from ragindex_app.pipelines.factory import build_definitions
from ragindex_app.pipelines.runner import failure_message

DROPPED = "The harbour pilot boards the tanker at the breakwater before dawn."


@pytest.fixture
def watched(tmp_path):
    corpus = tmp_path / "watched"
    (corpus / "guide").mkdir(parents=True)
    for i, topic in enumerate(["tables", "indexes", "search", "versions", "tags", "schemas"]):
        (corpus / "guide" / f"{topic}.md").write_text(
            f"# {topic.title()}\n\n## Overview\n\nNotes number {i} about {topic} in a vector database.\n",
            encoding="utf-8")
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "sources": [{"name": "docs", "type": "directory", "path": str(corpus)}],
        "chunker": {"max_tokens": 64, "overlap_tokens": 8},
        "index": {"uri": str(tmp_path / "lancedb"), "table": "chunks"},
        "quality": {"data_docs": False},
        "datasets": {"n": 5},
    }))
    (tmp_path / "dagster").mkdir()
    with instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        yield config, corpus, instance


def _tick(defs, instance, cursor: str | None):
    """One sensor tick as the daemon runs it: evaluate, apply the partition requests, return runs and cursor."""
    sensor = defs.resolve_sensor_def("source_change_sensor")
    # like the daemon, hand the context an instance ref: run requests may then name partitions the same tick adds
    with build_sensor_context(instance_ref=instance.get_ref(), cursor=cursor, definitions=defs,
                              resources=defs.resources) as context, \
            partition_loading_context(dynamic_partitions_store=instance):
        data = sensor.evaluate_tick(context)
    for request in data.dynamic_partitions_requests or []:
        if isinstance(request, AddDynamicPartitionsRequest):
            instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    return list(data.run_requests or []), data.cursor


def _schedule_tick(defs, instance, when: datetime):
    """One tick of the verification schedule at `when`, as the scheduler daemon evaluates it."""
    schedule = defs.resolve_schedule_def("verify_schedule")
    with build_schedule_context(instance=instance, scheduled_execution_time=when,
                                repository_def=defs.get_repository_def(), resources=defs.resources) as context, \
            partition_loading_context(dynamic_partitions_store=instance):
        return schedule.evaluate_tick(context)


def _execute(defs, instance, request, succeed: bool = True):
    """Launch a requested run in-process, with the request's partition and tags (and its run key, as the daemon
    tags the runs it launches)."""
    tags = {k: v for k, v in (request.tags or {}).items() if not k.startswith("dagster/")}
    if request.run_key:
        tags["dagster/run_key"] = request.run_key
    result = defs.resolve_job_def("index_job").execute_in_process(
        instance=instance, partition_key=request.partition_key, tags=tags, raise_on_error=False)
    assert result.success == succeed, failure_message(result)
    return result


def _metadata(instance, asset: str) -> dict:
    event = instance.get_latest_materialization_event(AssetKey(asset))
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


def test_sensor_requests_runs_for_changed_sources_and_the_dropped_file_becomes_searchable(watched):
    config, corpus, instance = watched
    defs = build_definitions(config)

    # first tick: the source becomes a partition and gets its first build
    assert instance.get_dynamic_partitions("sources") == []
    requests, cursor = _tick(defs, instance, None)
    assert instance.get_dynamic_partitions("sources") == ["docs"]
    assert instance.get_dynamic_partitions("tables") == ["chunks"]
    assert [str(r.partition_key) for r in requests] == ["docs|chunks"]
    assert requests[0].tags["trigger"] == "source_change"
    first_key = requests[0].run_key
    _execute(defs, instance, requests[0])
    assert output(config, "documents").counts()["added"] == 6

    # nothing changed: nothing requested
    requests, cursor = _tick(defs, instance, cursor)
    assert requests == []

    # a file dropped into the watched directory: a run for that source, under a new run key
    (corpus / "guide" / "harbour.md").write_text(f"# Harbour\n\n## Pilots\n\n{DROPPED}\n", encoding="utf-8")
    requests, cursor = _tick(defs, instance, cursor)
    assert [str(r.partition_key) for r in requests] == ["docs|chunks"] and requests[0].run_key != first_key
    second_key = requests[0].run_key
    _execute(defs, instance, requests[0])
    assert output(config, "documents").counts() == {"added": 1, "modified": 0, "deleted": 0, "unchanged": 6}
    assert output(config, "embeddings").embedded == 1

    project = load_config(config)
    store = IndexStore.at(project.index)

    rows = store.open().to_arrow().to_pylist()
    assert [r["text"] for r in rows if r["doc_id"] == "guide/harbour.md"] == [f"Harbour > Pilots\n\n{DROPPED}"]
    retriever = Retriever(store, load_embedder(), project.search)
    for mode in ("dense", "fts", "hybrid"):
        top = retriever.search("who boards the tanker at the breakwater?", mode, 3)[0]
        assert top.doc_id == "guide/harbour.md", mode

    # the run changed nothing on disk: the next tick is quiet again
    requests, cursor = _tick(defs, instance, cursor)
    assert requests == []

    # a deleted file: requested again, under yet another run key
    (corpus / "guide" / "tags.md").unlink()
    requests, cursor = _tick(defs, instance, cursor)
    assert [str(r.partition_key) for r in requests] == ["docs|chunks"]
    assert requests[0].run_key not in (first_key, second_key)

    # an edit that keeps size and mtime is invisible to the sensor's cheap signature ...
    page = corpus / "guide" / "search.md"
    before = page.stat()
    text = page.read_text(encoding="utf-8")
    page.write_text(text.replace("search", "SEARCH"), encoding="utf-8")
    os.utime(page, ns=(before.st_atime_ns, before.st_mtime_ns))
    requests, cursor = _tick(defs, instance, cursor)
    assert requests == []

    # ... and the daily verification, which re-hashes every file, catches it (and the pending deletion)
    data = _schedule_tick(defs, instance, datetime(2026, 11, 26, 3, tzinfo=UTC))
    assert [(str(r.partition_key), r.tags["verify"]) for r in data.run_requests] == [("docs|chunks", "full")]
    _execute(defs, instance, data.run_requests[0])
    assert output(config, "documents").counts() == {"added": 0, "modified": 1, "deleted": 1, "unchanged": 5}
    assert _metadata(instance, "documents")["source"]["always_hash"] is True
    texts = {r["doc_id"]: r["text"] for r in store.open().to_arrow().to_pylist()}
    assert "guide/tags.md" not in texts and "SEARCH" in texts["guide/search.md"]


def test_verify_schedule_requests_one_full_run_per_registered_source(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"sources": [{"name": "docs", "type": "directory", "path": str(tmp_path)}]}))
    defs = build_definitions(config)
    schedule = defs.resolve_schedule_def("verify_schedule")
    assert schedule.cron_schedule == "0 3 * * *" and schedule.job_name == "index_job"
    (tmp_path / "dagster").mkdir()
    with instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        when = datetime(2026, 11, 26, 3, tzinfo=UTC)
        empty = _schedule_tick(defs, instance, when)
        assert not empty.run_requests and "no source partitions" in empty.skip_message
        instance.add_dynamic_partitions("sources", ["docs", "msmarco", "pydoc"])
        instance.add_dynamic_partitions("tables", ["chunks"])
        data = _schedule_tick(defs, instance, when)
        assert [str(r.partition_key) for r in data.run_requests] == ["docs|chunks", "msmarco|chunks", "pydoc|chunks"]
        assert all(r.tags["verify"] == "full" for r in data.run_requests)
        assert len({r.run_key for r in data.run_requests}) == 3
        later = _schedule_tick(defs, instance, datetime(2026, 11, 27, 3, tzinfo=UTC))
        assert not {r.run_key for r in later.run_requests} & {r.run_key for r in data.run_requests}


def test_sources_registered_by_the_cli_are_watched(watched, tmp_path):
    """A folder indexed ad hoc (`ragindex index --source DIR`) is registered and the sensor watches it too."""
    from ragindex.source_registry import SourceRegistry, adhoc_source

    config, _, instance = watched
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "a.md").write_text("# A\n\nAn ad-hoc page.\n", encoding="utf-8")
    registered = SourceRegistry().register(adhoc_source(extra))
    requests, _ = _tick(build_definitions(config), instance, None)
    assert sorted(str(r.partition_key) for r in requests) == sorted(["docs|chunks", f"{registered.name}|chunks"])


def test_the_cursor_counts_a_change_as_indexed_only_once_its_run_succeeded(watched):
    import json

    config, corpus, instance = watched
    defs = build_definitions(config)
    requests, cursor = _tick(defs, instance, None)
    _execute(defs, instance, requests[0])
    good = json.loads(_tick(defs, instance, cursor)[1])["done"]["docs"]

    # most of the source vanishes (an unmounted share): requested once, and nothing more while it is in flight
    gone = sorted((corpus / "guide").glob("*.md"))[:5]
    for page in gone:
        page.unlink()
    requests, cursor = _tick(defs, instance, cursor)
    assert len(requests) == 1
    assert _tick(defs, instance, cursor)[0] == []
    _execute(defs, instance, requests[0], succeed=False)  # the deletion guard stops the run

    # the failed run did not advance the cursor, and the same files are not requested again
    requests, cursor = _tick(defs, instance, cursor)
    state = json.loads(cursor)
    assert requests == [] and state["done"]["docs"] == good and state["failed"]["docs"] != good
    assert state["pending"] == {}

    # the share is back: requested, and once that run succeeds the cursor moves on
    for page in gone:
        page.write_text(f"# {page.stem.title()}\n\n## Overview\n\nBack again.\n", encoding="utf-8")
    requests, cursor = _tick(defs, instance, cursor)
    assert len(requests) == 1
    _execute(defs, instance, requests[0])
    requests, cursor = _tick(defs, instance, cursor)
    assert requests == [] and json.loads(cursor)["done"]["docs"] not in (good, state["failed"]["docs"])
