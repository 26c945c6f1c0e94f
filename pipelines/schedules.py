"""Schedules: a daily full verification of every watched source."""

from __future__ import annotations

from dagster import DefaultScheduleStatus, RunRequest, ScheduleEvaluationContext, SkipReason, schedule

from ragindex_app.assets.partitions import sources, tables
from ragindex_app.pipelines.jobs import index_job
from ragindex_app.pipelines.targets import partition_for
from ragindex_app.resources.lancedb import LanceDBResource
from ragindex_app.resources.project import ProjectResource

VERIFY_TAGS = {"verify": "full", "trigger": "verify_schedule"}


@schedule(job=index_job, cron_schedule="0 3 * * *", execution_timezone="UTC", name="verify_schedule",
          default_status=DefaultScheduleStatus.RUNNING,
          description="Daily full verification: one run per registered source that re-hashes every file instead of "
          "trusting size and mtime (run tag verify=full), so changes the sensor's cheap signature missed are "
          "indexed too.")
def verify_schedule(context: ScheduleEvaluationContext, project: ProjectResource, lancedb: LanceDBResource):
    names = sorted(context.instance.get_dynamic_partitions(sources.name))
    if not names:
        return SkipReason("no source partitions registered yet (the source sensor registers them)")
    when = context.scheduled_execution_time
    stamp = when.strftime("%Y%m%dT%H%M") if when else "now"
    partitions = [partition_for(name, project, lancedb) for name in names]
    return [RunRequest(partition_key=p.key, run_key=f"verify:{p.source}:{stamp}", tags=dict(VERIFY_TAGS))
            for p in partitions if context.instance.has_dynamic_partition(tables.name, p.table)]
