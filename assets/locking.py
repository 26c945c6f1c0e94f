"""The write steps of a partition hold its (table, source) writer lock, whichever process runs them."""

from dagster import AssetExecutionContext

from ragindex.locks import writer_lock
from ragindex_app.assets.partitions import BuildPartition
from ragindex_app.resources.project import ProjectResource


def step_lock(context: AssetExecutionContext, project: ProjectResource):
    """Held by this step; free when the CLI's runner holds it already in this process."""
    part = BuildPartition.of(context)
    return writer_lock(part.table, part.source, context.run.run_id, project.config.index.lock_timeout_s)
