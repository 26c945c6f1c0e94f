"""Sensors: request a build for every watched source whose files were added, modified or deleted."""

from __future__ import annotations

import json

from dagster import RunRequest, SensorEvaluationContext, SensorResult, sensor

from ragindex.source_watch import source_signature
from ragindex_app.pipelines.jobs import index_job
from ragindex_app.pipelines.targets import add_requests, partition_for
from ragindex_app.resources.lancedb import LanceDBResource
from ragindex_app.resources.project import ProjectResource


@sensor(job=index_job, minimum_interval_seconds=30, description="Watches the configured sources and those "
        "registered by the CLI; requests an index run for each source whose files were added, modified or deleted.")
def source_change_sensor(context: SensorEvaluationContext, project: ProjectResource,
                         lancedb: LanceDBResource) -> SensorResult:
    previous = json.loads(context.cursor) if context.cursor else {}
    current: dict[str, str] = {}
    partitions, requests = [], []
    for source in project.watched():
        current[source.name] = source_signature(source)
        partition = partition_for(source.name, project, lancedb)
        partitions.append(partition)
        if previous.get(source.name) != current[source.name]:
            requests.append(RunRequest(partition_key=partition.key, run_key=f"{source.name}:{current[source.name]}",
                                       tags={"trigger": "source_change"}))
    return SensorResult(run_requests=requests, dynamic_partitions_requests=add_requests(partitions, context.instance),
                        cursor=json.dumps(current, sort_keys=True))
