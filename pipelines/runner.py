"""Run the index job for one source in-process against the project's Dagster instance (used by the CLI)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from dagster import DagsterInstance, ExecuteInProcessResult

from assets.partitions import sources_partitions
from pipelines.factory import build_definitions
from ragindex.config import load_config
from ragindex.errors import ConfigError, RunFailed
from ragindex.index_store import IndexStore
from ragindex.source_registry import register_directory, resolve_source

QUIET = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


def failure_message(result: ExecuteInProcessResult) -> str:
    """The root cause of the first failed step, in one line."""
    for event in result.get_step_failure_events():
        error = event.event_specific_data.error
        while error.cause is not None:
            error = error.cause
        return error.message.strip().splitlines()[-1]
    return "run failed"


def source_name(project, source: str) -> str:
    """A configured source name, or a directory / BEIR folder registered under a derived name."""
    try:
        return resolve_source(project, source).name
    except ConfigError:
        if not (os.sep in source or Path(source).exists()):
            raise
        return register_directory(source).name


def run_index(config: str | None, source: str, table: str | None) -> dict:
    """Materialize the index job for one source against the project's Dagster instance."""
    project = load_config(config)
    name = source_name(project, source)
    defs = build_definitions(config, table)
    instance = DagsterInstance.get()
    if not instance.has_dynamic_partition(sources_partitions.name, name):
        instance.add_dynamic_partitions(sources_partitions.name, [name])
    start = time.perf_counter()
    result = defs.resolve_job_def("index_job").execute_in_process(
        instance=instance, partition_key=name, raise_on_error=False, tags={"trigger": "cli"}, run_config=QUIET)
    if not result.success:
        raise RunFailed(f"{failure_message(result)} (Dagster run {result.run_id})")
    docs = result.output_for_node("documents")
    chunks = result.output_for_node("chunks")
    vectors = result.output_for_node("embeddings")
    build = result.output_for_node("search_index")
    store = IndexStore(project.index, table)
    return {
        "source": name,
        "documents": {**docs.changes.counts(), "total": docs.total},
        "chunks": {"total": store.source_count(name), "new": chunks.chunks, "embedded": vectors.embedded,
                   "reused": vectors.reused, "deleted": build.deleted},
        "tokens": chunks.tokens,
        "skipped": [{"path": s.path, "reason": s.reason} for s in docs.skipped],
        "model_fingerprint": vectors.fingerprint,
        "table": build.table,
        "uri": build.uri,
        "version": build.version,
        "tag": build.tag,
        "indexes": build.indexes,
        "rows": build.rows,
        "dagster_run_id": result.run_id,
        "mlflow_run_id": build.mlflow_run_id,
        "evaluation": result.output_for_node("evaluation").payload,
        "promotion": result.output_for_node("champion"),
        "dataset": result.output_for_node("rag_dataset"),
        "seconds": round(time.perf_counter() - start, 2),
    }
