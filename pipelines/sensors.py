"""Sensors: request a build for every watched source whose files were added, modified or deleted.

The cursor holds, per source, the signature its last successful run indexed (`done`) and the run requested for a
newer one (`pending`: signature and run key). A pending signature becomes `done` only once its run succeeded; a
run that failed is not requested again for the same signature (`failed`): the source is retried when its files
change again, or by the daily verification.
"""

from __future__ import annotations

import json
import time

from dagster import DagsterRunStatus, RunRequest, RunsFilter, SensorEvaluationContext, SensorResult, sensor

from ragindex.source_watch import source_signature
from ragindex_app.pipelines.jobs import index_job
from ragindex_app.pipelines.run_health import fail_dead_runs
from ragindex_app.pipelines.targets import add_requests, partition_for
from ragindex_app.resources.lancedb import LanceDBResource
from ragindex_app.resources.project import ProjectResource

RUN_KEY_TAG = "dagster/run_key"
ENDED_BADLY = (DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED)


def _status(instance, run_key: str) -> DagsterRunStatus | None:
    runs = instance.get_runs(RunsFilter(tags={RUN_KEY_TAG: run_key}), limit=1)
    return runs[0].status if runs else None


def _state(cursor: str | None) -> dict[str, dict]:
    raw = json.loads(cursor) if cursor else {}
    if raw and "done" not in raw:  # a cursor of the old form: {source: signature}
        raw = {"done": raw}
    return {part: dict(raw.get(part, {})) for part in ("done", "pending", "failed")}


@sensor(job=index_job, minimum_interval_seconds=30, description="Watches the configured sources and those "
        "registered by the CLI; requests an index run for each source whose files were added, modified or deleted. "
        "A source's change counts as indexed only once its run succeeded.")
def source_change_sensor(context: SensorEvaluationContext, project: ProjectResource,
                         lancedb: LanceDBResource) -> SensorResult:
    state = _state(context.cursor)
    done, pending, failed = state["done"], state["pending"], state["failed"]
    fail_dead_runs(context.instance)
    partitions, requests = [], []
    for source in project.watched():
        signature = source_signature(source)
        partition = partition_for(source.name, project, lancedb)
        partitions.append(partition)
        if source.name in pending:
            asked, run_key = pending[source.name]
            status = _status(context.instance, run_key)
            if status == DagsterRunStatus.SUCCESS:
                done[source.name] = asked
            elif status in ENDED_BADLY:
                failed[source.name] = asked
            else:
                continue  # queued, running, or not created yet: one run at a time per source
            del pending[source.name]
        if signature in (done.get(source.name), failed.get(source.name)):
            continue
        run_key = f"{source.name}:{signature}:{time.time_ns()}"  # unique: a signature may come back
        pending[source.name] = [signature, run_key]
        requests.append(RunRequest(partition_key=partition.key, run_key=run_key, tags={"trigger": "source_change"}))
    return SensorResult(run_requests=requests, dynamic_partitions_requests=add_requests(partitions, context.instance),
                        cursor=json.dumps(state, sort_keys=True))
