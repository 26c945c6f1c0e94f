"""Group ingest: read a source and stage what changed since the documents it had."""

from dagster import AssetExecutionContext, MetadataValue, Output, asset

from ragindex.build import DocumentsResult, collect_documents
from ragindex_app.assets.locking import step_lock
from ragindex_app.assets.metadata import md
from ragindex_app.assets.partitions import BuildPartition, build_partitions
from ragindex_app.resources.project import ProjectResource
from ragindex_app.resources.staging import StagingResource


@asset(group_name="ingest", partitions_def=build_partitions, kinds={"python"})
def documents(context: AssetExecutionContext, project: ProjectResource,
              staging: StagingResource) -> Output[DocumentsResult]:
    """The documents of one source, staged: added, modified, deleted, unchanged, and skipped inputs with reasons.
    Files whose size and mtime did not change are not read (run tag verify=full re-hashes every file)."""
    part = BuildPartition.of(context)
    source = project.source(part.source)
    if context.run.tags.get("verify") == "full":
        source = source.model_copy(update={"always_hash": True})
    with step_lock(context, project):
        result = collect_documents(source, staging.documents(part.table, part.source), part.table,
                                   context.run.run_id)
    for item in result.skipped:
        context.log.warning(f"skipped {item['path']}: {item['reason']}")
    return Output(result, metadata={
        **{f"documents_{k}": v for k, v in result.counts().items()},
        "documents_total": result.total,
        "staging_version": result.version,
        "skipped": len(result.skipped),
        "skipped_files": md(result.skipped, ["path", "reason"], limit=50),
        "skipped_list": MetadataValue.json(result.skipped),
        "source": MetadataValue.json(source.model_dump()),
        "seconds": round(result.seconds, 2),
    })
