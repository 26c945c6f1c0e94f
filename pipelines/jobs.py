"""Jobs: the per-(source, table) index build, and the upkeep of a partition's tables."""

from dagster import AssetSelection, define_asset_job

UPKEEP = AssetSelection.groups("operations")

index_job = define_asset_job(
    "index_job",
    selection=AssetSelection.all() - UPKEEP,
    description="Per source and table: read, chunk what changed, embed what the cache lacks, commit to LanceDB, "
    "check quality, evaluate, gate the champion, publish and measure an evaluation set, measure drift.",
)

upkeep_job = define_asset_job(
    "upkeep_job",
    selection=UPKEEP,
    description="Per source and table: compaction, index folding and version cleanup of the index table, the "
    "staging tables and the embedding cache; checks warn past the `upkeep:` limits.",
)
