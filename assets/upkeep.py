"""Group operations: daily upkeep of a partition's tables (index, staging, embedding cache), with health checks."""

from datetime import timedelta

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    MetadataValue,
    Output,
    asset,
)

from ragindex.lance_tables import table_names
from ragindex.retention import tag_versions
from ragindex.storage import JsonStore
from ragindex.upkeep import HEALTH_LIMITS, over_limits, upkeep_table
from ragindex_app.assets.locking import step_lock
from ragindex_app.assets.partitions import BuildPartition, build_partitions
from ragindex_app.resources.lancedb import LanceDBResource
from ragindex_app.resources.mlflow import MlflowResource
from ragindex_app.resources.project import ProjectResource
from ragindex_app.resources.staging import StagingResource

CHECKS = tuple(HEALTH_LIMITS)


def _staged_versions(uri: str, part: BuildPartition) -> dict[str, set[int]]:
    """The staging versions the stored step records name: kept, so any step can still be re-materialized alone."""
    store, kept = JsonStore(uri), {"documents": set(), "chunks": set()}
    for step, fields in (("documents", {"version": "documents"}),
                         ("chunks", {"version": "chunks", "documents_version": "documents"})):
        values = (store.read(f"_outputs/{step}/{part.source}/{part.table}.json") or {}).get("value") or {}
        for name, stage in fields.items():
            if isinstance(values.get(name), int):
                kept[stage].add(values[name])
    return kept


@asset(group_name="operations", partitions_def=build_partitions, kinds={"lancedb"}, deps=["search_index"],
       check_specs=[AssetCheckSpec(name, asset="upkeep", description=f"WARN past upkeep.{HEALTH_LIMITS[name]}")
                    for name in CHECKS])
def upkeep(context: AssetExecutionContext, project: ProjectResource, lancedb: LanceDBResource,
           staging: StagingResource, mlflow: MlflowResource):
    """Compaction, index folding and version cleanup (index.retention; MLflow-pinned and kept tags survive) of the
    index table, the partition's staging tables and the embedding cache; checks WARN when the index table still has
    more fragments, versions or unindexed rows than `upkeep:` allows."""
    part = BuildPartition.of(context)
    policy = project.config.index.retention
    older_than = timedelta(days=policy.older_than_days)
    store = lancedb.store(part.table)
    results: dict[str, dict] = {}
    with step_lock(context, project):
        if store.exists():
            table = store.open()
            pinned = mlflow.tracker.protected_tags(table=store.name, uri=store.uri)
            rebuilt = store.rebuild_ann()  # before compaction: delta segments keep their fragments apart
            results["index"] = upkeep_table(table, policy.keep_last_tags, older_than, tag_versions(table, pinned))
            results["index"]["ann"] = rebuilt or "one segment: kept"
        kept = _staged_versions(staging.uri, part)
        for kind, stage in (("documents", staging.documents(part.table, part.source)),
                            ("chunks", staging.chunks(part.table, part.source))):
            if stage.exists():
                results[kind] = upkeep_table(stage.open(), 1, older_than, kept[kind])
    cache = lancedb.cache()
    if cache.name in table_names(cache.db):
        results["embedding_cache"] = upkeep_table(cache.db.open_table(cache.name), 1, older_than, set())
    for name, result in results.items():
        context.log.info(f"{name}: {result['before']} -> {result['after']}, {result['removed_versions']} versions "
                         "removed")
    yield Output(results, metadata={
        **{f"{name}_{figure}": value for name, result in results.items() for figure, value in result["after"].items()},
        "upkeep": MetadataValue.json(results)})
    figures = results.get("index", {}).get("after")
    over = over_limits(figures, project.config.upkeep) if figures else {}
    for name in CHECKS:
        yield AssetCheckResult(check_name=name, asset_key="upkeep", passed=name not in over,
                               severity=AssetCheckSeverity.WARN,
                               metadata={"value": figures[name] if figures else 0,
                                         "limit": getattr(project.config.upkeep, HEALTH_LIMITS[name]),
                                         "reason": over.get(name, "within the limit")})
