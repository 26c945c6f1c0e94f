"""Running the index job in tests: a partition, its outputs as the next step would load them, its metadata."""

from __future__ import annotations

from dagster import AssetKey, DagsterInstance, ExecuteInProcessResult

from ragindex.build import StepOutput
from ragindex.config import load_config
from ragindex.index_store import IndexStore
from ragindex.paths import DataLayout
from ragindex.storage import JsonStore, connect
from ragindex_app.assets.partitions import BuildPartition
from ragindex_app.pipelines.factory import build_definitions


def run(config, instance: DagsterInstance, source: str = "docs", table: str | None = None,
        tags: dict | None = None) -> ExecuteInProcessResult:
    """One in-process run of the index job for (source, table) against `instance`."""
    partition = BuildPartition(source, table or load_config(config).index.table)
    partition.register(instance)
    job = build_definitions(config).resolve_job_def("index_job")
    return job.execute_in_process(instance=instance, partition_key=partition.key, raise_on_error=False,
                                  tags=tags or {})


def output(config, asset: str, source: str = "docs", table: str | None = None):
    """The stored output of an asset's latest materialization of a partition (what a downstream step loads)."""
    project = load_config(config)
    key = f"_outputs/{asset}/{source}/{table or project.index.table}.json"
    data = JsonStore(project.storage.resolved_uri()).read(key)
    return data["value"] if data["kind"] == "json" else StepOutput.from_json(data)


def metadata(instance: DagsterInstance, asset: str, run_id: str | None = None) -> dict:
    """Plain metadata values of an asset's latest materialization (of a given run, when named)."""
    if run_id is None:
        event = instance.get_latest_materialization_event(AssetKey(asset))
        materialization = event.asset_materialization
    else:
        events = [e for e in instance.all_logs(run_id) if e.dagster_event and e.dagster_event.is_step_materialization
                  and e.dagster_event.asset_key == AssetKey(asset)]
        materialization = events[-1].dagster_event.event_specific_data.materialization
    return {k: getattr(v, "value", v) for k, v in materialization.metadata.items()}


def store(config, table: str | None = None) -> IndexStore:
    project = load_config(config)
    return IndexStore(connect(project.index.resolved_uri()), project.index, table)


def layout() -> DataLayout:
    return DataLayout.current()
