"""Run the index job for one source in-process against the project's Dagster instance (used by the CLI).

What a run did is read back from its materialization metadata, the same record the UI shows: the CLI never
re-derives a figure.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from dagster import DagsterInstance, ExecuteInProcessResult

from ragindex.config import load_config
from ragindex.errors import ConfigError, RunFailed
from ragindex.locks import file_lock, writer_lock
from ragindex.paths import DataLayout, default_config_path
from ragindex.source_registry import SourceRegistry, adhoc_source, resolve_source
from ragindex_app.assets.partitions import BuildPartition
from ragindex_app.pipelines.factory import build_definitions
from ragindex_app.pipelines.resources import build_resources
from ragindex_app.pipelines.run_health import fail_dead_runs, process_tags


def _console(verbose: bool) -> dict:
    """Dagster's step logs on the console only with --verbose; otherwise errors alone."""
    return {"loggers": {"console": {"config": {"log_level": "INFO" if verbose else "CRITICAL"}}}}


def failure_message(result: ExecuteInProcessResult) -> str:
    """The root cause of the first failed step or check, in one line."""
    for event in result.get_step_failure_events():
        error = event.event_specific_data.error
        while error.cause is not None:
            error = error.cause
        return f"step {event.step_key}: {error.message.strip().splitlines()[-1]}"
    return "run failed"


@dataclass
class RunSummary:
    """A finished run: its partition and, per asset, the metadata of its materialization."""

    run_id: str
    source: str
    table: str
    seconds: float
    assets: dict[str, dict] = field(default_factory=dict)
    steps: list[tuple[str, float]] = field(default_factory=list)  # (step, seconds) in order

    def __getitem__(self, asset: str) -> dict:
        return self.assets.get(asset, {})


def source_name(config_path: str | None, source: str) -> str:
    """A configured or registered source name, else a directory / BEIR folder registered under a derived name."""
    project = load_config(config_path)
    try:
        return resolve_source(project, source).name
    except ConfigError:
        if not Path(source).exists():
            raise
        return SourceRegistry().register(adhoc_source(source)).name


def run_index(config_path: str | None, source: str, table: str | None = None, verbose: bool = False,
              tags: dict | None = None) -> RunSummary:
    """Materialize the index job for one source (and logical table) against the project's Dagster instance."""
    path = str(Path(config_path or default_config_path()).resolve())
    name = source_name(path, source)
    config = load_config(path)
    lancedb = build_resources(config, DataLayout.current())["lancedb"]
    partition = BuildPartition(name, lancedb.physical_table(table or config.index.table))
    with file_lock(DataLayout.current().locks / "dagster-instance.lock", "the Dagster instance"):
        instance = DagsterInstance.get()  # two processes creating its SQLite schema at once collide
        fail_dead_runs(instance)
        partition.register(instance)
    job = build_definitions(path).resolve_job_def("index_job")
    start = time.perf_counter()
    run_id = str(uuid.uuid4())
    with writer_lock(partition.table, name, run_id, config.index.lock_timeout_s):
        result = job.execute_in_process(instance=instance, partition_key=partition.key, raise_on_error=False,
                                        run_id=run_id, tags={"trigger": "cli", **(tags or {}), **process_tags()},
                                        run_config=_console(verbose))
    if not result.success:
        raise RunFailed(f"{failure_message(result)} (Dagster run {result.run_id})")
    summary = RunSummary(result.run_id, name, partition.table, round(time.perf_counter() - start, 2))
    for event in result.get_asset_materialization_events():
        materialization = event.event_specific_data.materialization
        summary.assets[materialization.asset_key.to_user_string()] = {
            k: getattr(v, "value", v) for k, v in materialization.metadata.items()}
    summary.steps = [(e.step_key, e.event_specific_data.duration_ms / 1000)
                     for e in result.all_events if e.event_type_value == "STEP_SUCCESS"]
    return summary
