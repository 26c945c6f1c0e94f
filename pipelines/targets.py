"""Which partitions a sensor or schedule asks for: each watched source in the table the configured model writes."""

from __future__ import annotations

from ragindex_app.assets.partitions import BuildPartition, sources, tables
from ragindex_app.resources.lancedb import LanceDBResource
from ragindex_app.resources.project import ProjectResource


def partition_for(source: str, project: ProjectResource, lancedb: LanceDBResource) -> BuildPartition:
    """The source in the configured table, or its green table after a model change."""
    return BuildPartition(source, lancedb.physical_table(project.config.index.table))


def add_requests(partitions: list[BuildPartition], instance) -> list:
    """Dynamic-partition requests for the sources and tables the instance lacks."""
    requests = []
    for definition, names in ((sources, {p.source for p in partitions}), (tables, {p.table for p in partitions})):
        missing = sorted(n for n in names if not instance.has_dynamic_partition(definition.name, n))
        if missing:
            requests.append(definition.build_add_request(missing))
    return requests
