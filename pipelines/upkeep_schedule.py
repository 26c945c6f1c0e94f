"""The daily upkeep: one upkeep run per (source, table) partition that has an index build."""

from __future__ import annotations

from dagster import AssetKey, DefaultScheduleStatus, RunRequest, ScheduleEvaluationContext, SkipReason, schedule

from ragindex_app.pipelines.jobs import upkeep_job

UPKEEP_TAGS = {"trigger": "upkeep_schedule"}


@schedule(job=upkeep_job, cron_schedule="30 4 * * *", execution_timezone="UTC", name="upkeep_schedule",
          default_status=DefaultScheduleStatus.RUNNING,
          description="Daily upkeep of every built partition: compaction, index folding, version cleanup of the "
          "index, staging and cache tables (MLflow-pinned versions kept); checks warn past the `upkeep:` limits.")
def upkeep_schedule(context: ScheduleEvaluationContext):
    built = sorted(context.instance.get_materialized_partitions(AssetKey("search_index")))
    if not built:
        return SkipReason("no partition has an index build yet")
    when = context.scheduled_execution_time
    stamp = when.strftime("%Y%m%dT%H%M") if when else "now"
    return [RunRequest(partition_key=key, run_key=f"upkeep:{key}:{stamp}", tags=dict(UPKEEP_TAGS)) for key in built]
