"""Sensors: register configured sources as partitions and request builds for sources that changed."""

from __future__ import annotations

import json

from dagster import RunRequest, SensorEvaluationContext, SensorResult, sensor

from assets.partitions import sources_partitions
from pipelines.jobs import index_job
from ragindex.config import load_config
from ragindex.source_watch import source_signature


def make_source_sensor(config_path: str):
    @sensor(job=index_job, minimum_interval_seconds=30, description="Watches the configured sources; "
            "requests an index run for each source whose files were added, modified or deleted.")
    def source_change_sensor(context: SensorEvaluationContext) -> SensorResult:
        config = load_config(config_path)
        previous = json.loads(context.cursor) if context.cursor else {}
        current: dict[str, str] = {}
        requests = []
        known = set(context.instance.get_dynamic_partitions(sources_partitions.name))
        new_partitions = [s.name for s in config.sources if s.name not in known]
        for source in config.sources:
            current[source.name] = source_signature(source)
            if previous.get(source.name) != current[source.name]:
                requests.append(RunRequest(partition_key=source.name,
                                           run_key=f"{source.name}:{current[source.name]}",
                                           tags={"trigger": "source_change"}))
        return SensorResult(
            run_requests=requests,
            dynamic_partitions_requests=[sources_partitions.build_add_request(new_partitions)]
            if new_partitions else [],
            cursor=json.dumps(current, sort_keys=True),
        )

    return source_change_sensor
