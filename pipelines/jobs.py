"""Jobs: the per-(source, table) index build."""

from dagster import AssetSelection, define_asset_job

index_job = define_asset_job(
    "index_job",
    selection=AssetSelection.all(),
    description="Per source and table: read, chunk what changed, embed what the cache lacks, commit to LanceDB, "
    "check quality, evaluate, gate the champion, publish and measure an evaluation set, measure drift.",
)
