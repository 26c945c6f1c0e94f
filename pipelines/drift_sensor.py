"""Sensors reacting to drift: a flagged drift requests a re-embedding / re-indexing run of that source.

The sensor reads the materializations of `corpus_drift` and `query_drift` recorded since its cursor (the last event
storage id it has seen, per asset). A materialization asks for a run when its metadata says `reindex_requested =
True`: the asset sets it when it flagged drift (`drifted`) and the run's config had `drift.reindex_on_drift: true`,
so the sensor needs no config of its own. For each partition with such a new materialization it requests one
`index_job` run (of that source and table) tagged {"trigger": "drift", "verify": "full"}, with a run key naming the
materialization, so one flag gives one run even if the cursor were lost. Flags raised by a run the sensor itself
requested are not acted on again (a drift-triggered run whose query window still drifts would otherwise re-trigger
every tick). Like the source sensor it is off until turned on in the UI (or `dagster sensor start
drift_reindex_sensor`).
"""


import json

from dagster import (
    AssetKey,
    AssetRecordsFilter,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from ragindex_app.assets.partitions import build_partitions
from ragindex_app.pipelines.jobs import index_job

DRIFT_ASSETS = (AssetKey("corpus_drift"), AssetKey("query_drift"))
DRIFT_TAGS = {"trigger": "drift", "verify": "full"}
PAGE = 100


def _flag(record, name: str) -> bool:
    value = record.asset_materialization.metadata.get(name)
    return bool(getattr(value, "value", value))


@sensor(job=index_job, minimum_interval_seconds=60, description="Requests a re-embedding / re-indexing run "
        "(tags trigger=drift, verify=full) of each source whose corpus_drift or query_drift flags drift.")
def drift_reindex_sensor(context: SensorEvaluationContext) -> SensorResult:
    cursor: dict[str, int] = json.loads(context.cursor) if context.cursor else {}
    instance = context.instance
    flagged: dict[str, tuple[AssetKey, int]] = {}  # partition -> (asset, storage id) of its newest request
    declined: set[str] = set()  # partitions that drifted with drift.reindex_on_drift off
    for key in DRIFT_ASSETS:
        name = key.to_user_string()
        after = cursor.get(name)
        while True:
            page = instance.fetch_materializations(AssetRecordsFilter(asset_key=key, after_storage_id=after),
                                                   limit=PAGE, ascending=True)
            for record in page.records:
                after = record.storage_id
                partition = record.asset_materialization.partition
                if partition is None or not _flag(record, "drifted"):
                    continue
                if not _flag(record, "reindex_requested"):
                    declined.add(partition)
                    continue
                run = instance.get_run_by_id(record.run_id)
                if run is not None and run.tags.get("trigger") == DRIFT_TAGS["trigger"]:
                    continue  # raised by a run this sensor requested: never loop
                if partition not in flagged or flagged[partition][1] < record.storage_id:
                    flagged[partition] = (key, record.storage_id)
            if not page.has_more:
                break
        if after is not None:
            cursor[name] = after
    new_cursor = json.dumps(cursor, sort_keys=True)
    if not flagged:
        reason = (f"drift flagged for {', '.join(sorted(declined))} with drift.reindex_on_drift false"
                  if declined else "no new drift flags")
        return SensorResult(skip_reason=SkipReason(reason), cursor=new_cursor)
    known = set(build_partitions.get_partition_keys(dynamic_partitions_store=instance))
    requests = [RunRequest(partition_key=partition, run_key=f"drift:{key.to_user_string()}:{storage_id}",
                           tags={**DRIFT_TAGS, "drift_asset": key.to_user_string()})
                for partition, (key, storage_id) in sorted(flagged.items()) if partition in known]
    return SensorResult(run_requests=requests, cursor=new_cursor)


DRIFT_SENSORS: list = [drift_reindex_sensor]
