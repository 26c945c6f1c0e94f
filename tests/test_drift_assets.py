"""Drift in Dagster: a flagged corpus (and query) drift fails its check with the configured severity and the
drift sensor requests exactly one re-indexing run for the source, against a real instance."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from dagster import AssetCheckSeverity, AssetKey, DagsterInstance, build_sensor_context, instance_for_test

from ragindex.config import load_config
from ragindex.drift.history import DriftHistory
from ragindex.embedding import load_embedder
from ragindex.index_store import IndexStore
from ragindex.paths import DataLayout
from ragindex.query_log import QueryLog
from ragindex.search import Retriever
from ragindex_app.assets.partitions import BuildPartition
from ragindex_app.pipelines.factory import build_definitions

GARDEN = (["tomatoes", "carrots", "lettuce", "peppers", "beans", "onions", "squash", "basil"],
          ["Water the {a} early in the morning and mulch the bed so the soil keeps its moisture.",
           "Sow {a} in spring after the last frost and thin the seedlings once they show true leaves.",
           "Compost from kitchen scraps feeds the {a}; turn the heap every week in the garden.",
           "Harvest the {a} when ripe and save some seeds for next season's vegetable patch."],
          ["how do I grow {a}", "when should I water my {a}", "why do my {a} wilt in summer"])
NETWORK = (["TCP", "UDP", "QUIC", "BGP", "DNS", "TLS", "HTTP/2", "IPv6"],
           ["The {a} handshake negotiates parameters before packets flow between client and server.",
            "Routers forward {a} traffic by looking up the destination prefix in the routing table.",
            "Congestion control in {a} backs off when packet loss signals a saturated link.",
            "Configure the firewall to allow {a} on the port the service listens to."],
           ["how do I configure {a}", "why does {a} drop packets", "how to debug {a} timeouts"])


def write_topic(folder: Path, topic: tuple, prefix: str) -> None:
    """32 short Markdown documents of one topic, two sections (two chunks) each."""
    subjects, templates, _ = topic
    folder.mkdir(parents=True, exist_ok=True)
    for subject in subjects:
        name = subject.replace("/", "").lower()
        for i, template in enumerate(templates):
            tip = templates[(i + 1) % len(templates)]
            (folder / f"{prefix}-{name}-{i}.md").write_text(
                f"# {subject} {i}\n\n## Note\n\n{template.format(a=subject)}\n\n## Tip\n\n{tip.format(a=subject)}\n",
                encoding="utf-8")


def queries(topic: tuple) -> list[str]:
    """24 questions about a topic."""
    subjects, _, stems = topic
    return [stem.format(a=a) for a in subjects for stem in stems]


@pytest.fixture
def project(tmp_path):
    corpus = tmp_path / "corpus"
    write_topic(corpus, GARDEN, "garden")
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "sources": [{"name": "docs", "type": "directory", "path": str(corpus)}],
        "chunker": {"max_tokens": 64, "overlap_tokens": 8},
        "index": {"uri": str(tmp_path / "lancedb"), "table": "chunks"},
        "datasets": {"n": 5},
        "drift": {"alpha": 0.01, "warn_p": 0.01, "error_p": 1e-4, "reindex_on_drift": True,
                  "query_window_hours": 24, "min_rows": 20},
    }))
    (tmp_path / "dagster").mkdir()
    with instance_for_test(temp_dir=str(tmp_path / "dagster")) as instance:
        BuildPartition("docs", "chunks").register(instance)
        yield config, corpus, instance


def _metadata(instance: DagsterInstance, asset: str) -> dict:
    event = instance.get_latest_materialization_event(AssetKey(asset))
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


def _check(result, name: str):
    found = [e for e in result.get_asset_check_evaluations() if e.check_name == name]
    assert len(found) == 1, [e.check_name for e in result.get_asset_check_evaluations()]
    return found[0]


PARTITION = BuildPartition("docs", "chunks").key


def test_flagged_drift_fails_checks_and_triggers_one_reindex_run(project):
    config, corpus, instance = project
    defs = build_definitions(config)
    job = defs.resolve_job_def("index_job")

    first = job.execute_in_process(instance=instance, partition_key=PARTITION, raise_on_error=False)
    assert first.success
    meta = _metadata(instance, "corpus_drift")
    assert meta["status"].startswith("too few rows to test") and meta["drifted"] is False
    assert _check(first, "corpus_drift_threshold").passed
    assert _metadata(instance, "query_drift")["status"].startswith("nothing to test: no query logged")

    # queries: gardening ones logged 30 h ago (the previous window), networking ones now through the retriever
    model = load_embedder()
    project_config = load_config(config)
    earlier = queries(GARDEN)
    QueryLog().append(earlier, "dense", "chunks", model.fingerprint.id, model.embed(earlier),
                      time=datetime.now(UTC) - timedelta(hours=30))
    retriever = Retriever(IndexStore.at(project_config.index), model, project_config.search, log_queries=True)
    for i, text in enumerate(queries(NETWORK)):
        retriever.search(text, "fts" if i % 3 == 0 else "dense", 3)  # fts ones are logged without a vector
    assert QueryLog().count() == len(earlier) + len(queries(NETWORK))

    # the source moves to another domain: 32 new networking documents against 32 served gardening ones
    write_topic(corpus, NETWORK, "network")
    second = job.execute_in_process(instance=instance, partition_key=PARTITION, raise_on_error=False)
    assert second.success  # drift checks never block or fail the run
    meta = _metadata(instance, "corpus_drift")
    assert meta["status"] == "tested" and meta["drifted"] is True
    assert meta["p_value"] < 1e-4 and meta["effect_classifier"] > 0.9
    assert Path(meta["plot"]).stat().st_size > 0 and "data:image/png;base64," in meta["plot_inline"]
    assert "Drift detected" in meta["summary"] and "| Time (UTC) |" in meta["history"]
    check = _check(second, "corpus_drift_threshold")
    assert not check.passed and check.severity == AssetCheckSeverity.ERROR
    query_meta = _metadata(instance, "query_drift")
    assert query_meta["drifted"] is True and query_meta["status"] == "tested"
    assert query_meta["corpus_auc"] > 0.5
    assert not _check(second, "query_drift_threshold").passed

    history = DriftHistory(DataLayout.current().drift).records("chunks", "docs", "corpus")
    assert [r["drifted"] for r in history] == [False, True] and history[1]["tests"].keys() == {
        "classifier", "mmd_rff", "pca_ks"}

    # MLflow holds the reports on the build's run
    from pipeline_helpers import output

    from ragindex.tracking import Tracker

    layout = DataLayout.current()
    client = Tracker(layout.mlflow_uri, layout.mlflow_artifacts.as_uri()).client
    build = output(config, "search_index")
    logged = {a.path for a in client.list_artifacts(build.mlflow_run_id, "drift/corpus")}
    assert {"drift/corpus/corpus_drift.md", "drift/corpus/corpus_drift.png", "drift/corpus/corpus_drift.json"} <= logged

    # the sensor requests one re-indexing run for the source (both drift assets flagged it)
    sensor = defs.resolve_sensor_def("drift_reindex_sensor")
    tick = sensor(build_sensor_context(instance=instance, definitions=defs))
    assert len(tick.run_requests) == 1
    request = tick.run_requests[0]
    assert str(request.partition_key) == "docs|chunks"
    assert request.tags["trigger"] == "drift" and request.tags["verify"] == "full"

    rerun = job.execute_in_process(instance=instance, partition_key=request.partition_key, tags=request.tags,
                                   raise_on_error=False)
    assert rerun.success
    assert instance.get_run_by_id(rerun.run_id).tags["trigger"] == "drift"
    assert _metadata(instance, "corpus_drift")["status"].startswith("nothing to test")  # nothing changed

    # the next tick requests nothing: the flag was handled, and the rerun's own query flag never loops
    again = sensor(build_sensor_context(instance=instance, definitions=defs, cursor=tick.cursor))
    assert not again.run_requests
