"""Jobs: the per-source index build."""

from dagster import AssetSelection, define_asset_job

INDEX_GROUPS = ("ingest", "chunk", "embed", "index", "evaluate")

index_job = define_asset_job(
    "index_job",
    selection=AssetSelection.groups(*INDEX_GROUPS),
    description="Read a source, chunk what changed, embed what the cache lacks, commit to LanceDB, evaluate, gate.",
)
