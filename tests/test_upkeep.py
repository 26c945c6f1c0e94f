"""Upkeep: 30 small incremental builds pile up versions; the upkeep job (a Dagster run of the `upkeep` asset)
brings versions and fragments of the index, staging and cache tables under the limits, its checks pass, and the
row added by the last build is found by full-text and ANN search at once."""

from __future__ import annotations

import pytest
import yaml
from dagster import AssetCheckSeverity, instance_for_test

from ragindex.build import build_source
from ragindex.config import load_config
from ragindex.lance_tables import table_names
from ragindex.search import Retriever
from ragindex.upkeep import health, over_limits
from ragindex_app.assets.partitions import BuildPartition
from ragindex_app.pipelines.factory import build_definitions
from ragindex_app.pipelines.resources import build_resources

pytestmark = pytest.mark.slow
WORDS = "amber basalt cedar delta ember fjord garnet harbor indigo juniper kelp lagoon marble nectar onyx".split()
# 30 builds leave over 60 table versions, 30+ fragments and 30 tags: far past every limit below (12 versions,
# 4 fragments, 3 tags), which is what upkeep has to bring back; more builds only repeat the same growth.
BUILDS = 30


def _page(i: int) -> str:
    words = " ".join(WORDS[(i * 7 + k) % len(WORDS)] for k in range(6))
    return f"# Page {i}\n\nEntry {i}: {words}.\n"


def test_upkeep_after_many_incremental_builds(tmp_path, isolated_data_dir, embedder):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i in range(300):
        (corpus / f"p{i:04d}.md").write_text(_page(i), encoding="utf-8")
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "sources": [{"name": "docs", "type": "directory", "path": str(corpus)}],
        "index": {"uri": str(isolated_data_dir / "lancedb"), "ann": {"min_rows": 256},
                  "retention": {"keep_last_tags": 3, "older_than_days": 0}},
        "upkeep": {"max_fragments": 4, "max_versions": 12, "max_unindexed_rows": 0}}))
    project = load_config(config)
    resources = build_resources(project)
    lancedb, staging, model = resources["lancedb"], resources["staging"], resources["embedder"]
    store = lancedb.store("chunks")
    source = project.sources[0]

    def build(n: int):
        return build_source(source, staging.store, store, model.chunker(project.chunker), lancedb.cache(),
                            lambda: embedder, model.fingerprint(), f"run-{n}")

    build(0)
    for n in range(1, BUILDS + 1):
        (corpus / f"new{n:03d}.md").write_text(f"# Added {n}\n\nLate addition number {n} about zephyr{n}.\n",
                                               encoding="utf-8")
        result = build(n)
        assert result.inserted == 1
    last = "The final note: the xylophonist tunes quokka bells at noon."
    (corpus / "last.md").write_text(f"# Last\n\n{last}\n", encoding="utf-8")
    build(BUILDS + 1)

    def found_at_once():
        retriever = Retriever(store, embedder, project.search)
        assert retriever.has_ann
        for mode in ("fts", "dense"):
            assert retriever.search(last, mode, 3)[0].doc_id == "last.md", mode

    found_at_once()
    before = health(store.open())
    assert before["versions"] > 2 * BUILDS
    # the builds went past every limit upkeep enforces, so the limits below are upkeep's doing
    assert before["fragments"] > project.upkeep.max_fragments
    assert len(store.tags()) > project.index.retention.keep_last_tags
    assert set(over_limits(before, project.upkeep)) >= {"versions"}
    stages = [staging.documents("chunks", "docs"), staging.chunks("chunks", "docs")]
    stage_versions = [len(s.open().list_versions()) for s in stages]
    assert min(stage_versions) > BUILDS

    (tmp_path / "dagster").mkdir()
    with instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        partition = BuildPartition("docs", "chunks")
        partition.register(instance)
        result = build_definitions(config).resolve_job_def("upkeep_job").execute_in_process(
            instance=instance, partition_key=partition.key, raise_on_error=False)
        assert result.success
        checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert set(checks) == {"fragments", "versions", "unindexed_rows"}
    assert all(c.passed and c.severity == AssetCheckSeverity.WARN for c in checks.values())

    after = health(store.open())
    assert after["versions"] <= project.upkeep.max_versions and after["fragments"] <= project.upkeep.max_fragments
    assert after["unindexed_rows"] == 0 and not over_limits(after, project.upkeep)
    assert len(store.tags()) <= project.index.retention.keep_last_tags
    assert all(len(s.open().list_versions()) <= 3 for s in stages)
    cache = lancedb.cache()
    assert cache.name in table_names(cache.db) and len(cache.db.open_table(cache.name).list_versions()) <= 3
    assert store.count() == 300 + BUILDS + 1
    found_at_once()
