"""Group index (images): with an image model configured, every image of a source gets a pixel vector in the
table `<table>_images`, beside the text table; incremental by image content hash."""

import base64

from dagster import AssetCheckExecutionContext, AssetCheckResult, AssetExecutionContext, MetadataValue, Output, asset

from ragindex.build import IndexBuild
from ragindex.vision.store import ImageStore, image_records
from ragindex.vision.thumbnails import images_markdown, thumbnail_grid
from ragindex_app.assets.metadata import md
from ragindex_app.assets.partitions import BuildPartition, build_partitions
from ragindex_app.assets.quality import _check, _check_result
from ragindex_app.resources.embedder import EmbedderResource
from ragindex_app.resources.lancedb import LanceDBResource
from ragindex_app.resources.project import ProjectResource

INLINE_PNG_MAX_BYTES = 300_000


@asset(group_name="index", partitions_def=build_partitions, kinds={"lancedb"})
def image_index(context: AssetExecutionContext, search_index: IndexBuild, project: ProjectResource,
                embedder: EmbedderResource, lancedb: LanceDBResource) -> Output[dict]:
    """The source's images (files, and those Markdown and HTML pages show) embedded by `embedder.image_model`'s
    image tower; `search --modality image|all` reaches them through its text tower."""
    part = BuildPartition.of(context)
    model = embedder.image_embedder()
    if model is None:
        return Output({"status": "no image model configured"}, metadata={"status": "no image model configured"})
    source = project.source(part.source)
    images = ImageStore(lancedb.index, part.table)
    sync = images.sync(part.source, image_records(lancedb.store(part.table), part.source), model,
                       source.max_image_pixels)
    for item in sync.skipped:
        context.log.warning(f"skipped {item.path}: {item.reason}")
    metadata = {"status": "synced", "table": sync.table, "version": sync.version, "images": sync.images,
                "embedded": sync.embedded, "reused": sync.reused, "deleted": sync.deleted,
                "model_fingerprint": MetadataValue.json(model.fingerprint.as_dict()),
                "skipped_files": md([{"path": s.path, "reason": s.reason} for s in sync.skipped], ["path", "reason"]),
                "images_table": MetadataValue.md(images_markdown(images.rows(part.source, vectors=False).to_pylist())),
                "seconds": round(sync.seconds, 2)}
    grid = thumbnail_grid(sync.added, source.max_image_pixels)
    if grid and len(grid) <= INLINE_PNG_MAX_BYTES:
        metadata["added_thumbnails"] = MetadataValue.md(
            f"![added images](data:image/png;base64,{base64.b64encode(grid).decode()})")
    return Output({"status": "synced", "table": sync.table, "version": sync.version,
                   "fingerprint": model.fingerprint.id}, metadata=metadata)


@_check(asset="image_index", blocking=False)
def images_quality(context: AssetCheckExecutionContext, image_index: dict, project: ProjectResource,
                   embedder: EmbedderResource, lancedb: LanceDBResource) -> AssetCheckResult:
    """Image vectors: one row per image and source, the model's dimension, finite, unit norm, one fingerprint."""
    if image_index["status"] != "synced":
        return AssetCheckResult(passed=True, description=image_index["status"])
    from ragindex.quality.images import validate_images

    part = BuildPartition.of(context)
    model = embedder.image_embedder()
    rows = ImageStore(lancedb.index, part.table).rows(part.source)
    result = validate_images(rows, model.dimension, model.fingerprint.id, project.config.quality.unit_norm_tolerance)
    return _check_result(context, result, project)
