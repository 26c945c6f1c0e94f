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

from ragindex.config import SourceConfig, load_config
from ragindex.errors import ConfigError, RunFailed
from ragindex.locks import file_lock, writer_lock
from ragindex.paths import DataLayout, default_config_path
from ragindex.source_registry import SourceRegistry, adhoc_source, resolve_source
from ragindex.sources import has_input
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


def resolve_cli_source(config_path: str | None, source: str) -> tuple[SourceConfig, bool]:
    """(the source, whether it is new): a configured or registered source by name, else a directory / BEIR folder
    under a derived name, not yet registered."""
    project = load_config(config_path)
    try:
        return resolve_source(project, source), False
    except ConfigError:
        if not Path(source).exists():
            raise
        return adhoc_source(source), True


def source_name(config_path: str | None, source: str) -> str:
    """The name a source (a configured or registered name, or a folder) is built under; registers nothing."""
    return resolve_cli_source(config_path, source)[0].name


def run_index(config_path: str | None, source: str, table: str | None = None, verbose: bool = False,
              tags: dict | None = None) -> RunSummary:
    """Materialize the index job for one source (and logical table) against the project's Dagster instance. A
    source with nothing to index and nothing indexed stops before any work; a folder is registered as a source
    only for the run, and stays registered only if the run succeeds."""
    path = str(Path(config_path or default_config_path()).resolve())
    resolved, new = resolve_cli_source(path, source)
    config = load_config(path)
    lancedb = build_resources(config, DataLayout.current())["lancedb"]
    partition = BuildPartition(resolved.name, lancedb.physical_table(table or config.index.table))
    if not has_input(resolved) and not lancedb.store(partition.table).count(resolved.name):
        raise ConfigError(f"source '{resolved.name}': nothing to index under {resolved.resolved_path()} (include: "
                          f"{', '.join(resolved.include)}); a failed run would leave an empty table behind")
    registry = SourceRegistry()
    if new:
        registry.register(resolved)
    with file_lock(DataLayout.current().locks / "dagster-instance.lock", "the Dagster instance"):
        instance = DagsterInstance.get()  # two processes creating its SQLite schema at once collide
        fail_dead_runs(instance)
        partition.register(instance)
    job = build_definitions(path).resolve_job_def("index_job")
    start = time.perf_counter()
    run_id = str(uuid.uuid4())
    succeeded = False
    try:
        with writer_lock(partition.table, resolved.name, run_id, config.index.lock_timeout_s):
            result = job.execute_in_process(instance=instance, partition_key=partition.key, raise_on_error=False,
                                            run_id=run_id, tags={"trigger": "cli", **(tags or {}), **process_tags()},
                                            run_config=_console(verbose))
        succeeded = result.success
    finally:
        if new and not succeeded:
            registry.unregister(resolved.name)
    if not result.success:
        raise RunFailed(f"{failure_message(result)} (Dagster run {result.run_id})")
    summary = RunSummary(result.run_id, resolved.name, partition.table, round(time.perf_counter() - start, 2))
    for event in result.get_asset_materialization_events():
        materialization = event.event_specific_data.materialization
        summary.assets[materialization.asset_key.to_user_string()] = {
            k: getattr(v, "value", v) for k, v in materialization.metadata.items()}
    summary.steps = [(e.step_key, e.event_specific_data.duration_ms / 1000)
                     for e in result.all_events if e.event_type_value == "STEP_SUCCESS"]
    return summary
