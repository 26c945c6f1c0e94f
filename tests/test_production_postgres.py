"""The production profile's storage with real servers on 127.0.0.1: a full index run whose Dagster instance is
deploy/dagster-production.yaml on PostgreSQL, with MLflow tracking on PostgreSQL and its artifacts on S3 (moto)."""

from __future__ import annotations

import shutil

import pytest
import yaml
from conftest import write_small_corpus
from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus
from services import postgres_server, s3_server

from ragindex.paths import PROJECT_ROOT

pytestmark = pytest.mark.slow


def test_index_run_on_postgres_dagster_and_mlflow(tmp_path, monkeypatch):
    from dagster._core.run_coordinator import QueuedRunCoordinator
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage
    from mlflow import MlflowClient

    from ragindex_app.pipelines.runner import run_index

    corpus = write_small_corpus(tmp_path)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "sources": [{"name": "docs", "type": "directory", "path": str(corpus), "max_file_bytes": 1_000_000}],
        "chunker": {"max_tokens": 64, "overlap_tokens": 8},
        "quality": {"data_docs": False},
        "datasets": {"n": 5},
    }))
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(PROJECT_ROOT / "deploy" / "dagster-production.yaml", home / "dagster.yaml")
    with postgres_server() as pg, s3_server() as s3:
        for name, value in {**s3.env, "MLFLOW_S3_ENDPOINT_URL": s3.url, "DAGSTER_HOME": str(home),
                            "DAGSTER_PG_URL": pg.url("dagster"), "MLFLOW_TRACKING_URI": pg.url("mlflow"),
                            "RAGINDEX_MLFLOW_ARTIFACTS": f"s3://{s3.bucket}/mlflow"}.items():
            monkeypatch.setenv(name, value)
        summary = run_index(str(config), "docs")

        instance = DagsterInstance.get()
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
        coordinator = instance.run_coordinator
        assert isinstance(coordinator, QueuedRunCoordinator)
        limit = coordinator.get_run_queue_config().tag_concurrency_limits[0]
        assert (limit["key"], limit["limit"], limit["value"]) == (
            "dagster/partition/source", 1, {"applyLimitPerUniqueValue": True})

        run = instance.get_run_by_id(summary.run_id)
        assert run.status == DagsterRunStatus.SUCCESS
        assert run.tags["dagster/partition/source"] == "docs"  # the tag the queue's limit keys on
        assert run.tags["trigger"] == "cli"
        materialized = instance.all_logs(summary.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION)
        assert {e.dagster_event.asset_key.to_user_string() for e in materialized} >= {
            "documents", "chunks", "embeddings", "search_index", "evaluation"}

        client = MlflowClient(tracking_uri=pg.url("mlflow"))
        mlflow_run = client.get_run(summary["search_index"]["mlflow_run_id"])
        assert mlflow_run.data.tags["dagster.run_id"] == summary.run_id
        assert mlflow_run.data.tags["lancedb.tag"] == summary["search_index"]["tag"]
        assert mlflow_run.info.artifact_uri.startswith(f"s3://{s3.bucket}/mlflow/")
        assert any(key.startswith("mlflow/") for key in s3.keys("mlflow/"))
        instance.dispose()
