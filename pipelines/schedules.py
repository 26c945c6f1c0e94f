"""Schedules: a daily full verification of every registered source."""

from __future__ import annotations

from dagster import DefaultScheduleStatus, RunRequest, ScheduleEvaluationContext, SkipReason, schedule

from assets.partitions import sources_partitions
from pipelines.jobs import index_job

VERIFY_TAGS = {"verify": "full", "trigger": "verify_schedule"}


@schedule(job=index_job, cron_schedule="0 3 * * *", execution_timezone="UTC", name="verify_schedule",
          default_status=DefaultScheduleStatus.RUNNING,
          description="Daily full verification: one run per registered source that re-hashes every file instead of "
          "trusting size and mtime (run tag verify=full), so changes the sensor's cheap signature missed are "
          "indexed too.")
def verify_schedule(context: ScheduleEvaluationContext):
    keys = sorted(context.instance.get_dynamic_partitions(sources_partitions.name))
    if not keys:
        return SkipReason("no source partitions registered yet (the source sensor registers them)")
    when = context.scheduled_execution_time
    stamp = when.strftime("%Y%m%dT%H%M") if when else "now"
    return [RunRequest(partition_key=key, run_key=f"verify:{key}:{stamp}", tags=dict(VERIFY_TAGS)) for key in keys]


SCHEDULES: list = [verify_schedule]
