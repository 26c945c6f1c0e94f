"""The resources of a configuration: built once from the validated config, shared by Definitions and the CLI."""

from __future__ import annotations

import os

from dagster import EnvVar

from ragindex.config import ProjectConfig
from ragindex.paths import DataLayout
from ragindex_app.resources.compute import RayResource
from ragindex_app.resources.embedder import EmbedderResource
from ragindex_app.resources.io_manager import StepOutputIOManager
from ragindex_app.resources.lancedb import LanceDBResource
from ragindex_app.resources.mlflow import MlflowResource
from ragindex_app.resources.project import ProjectResource
from ragindex_app.resources.staging import StagingResource


def build_resources(config: ProjectConfig, layout: DataLayout | None = None) -> dict:
    """Every resource the assets, sensors and schedules take; secrets and endpoints (MLFLOW_TRACKING_URI,
    RAGINDEX_MLFLOW_ARTIFACTS: an s3:// artifact root) from the environment."""
    layout = layout or DataLayout.current()
    embedder = EmbedderResource(model=config.embedder.model, batch_size=config.embedder.batch_size,
                                device=config.embedder.device, precision=config.embedder.precision,
                                weights_hashes=str(layout.weights_hashes), onnx_exports=str(layout.onnx_exports),
                                image_model=config.embedder.image_model)
    staging_uri = config.storage.resolved_uri()
    return {
        "project": ProjectResource(config=config, registry_file=str(layout.source_registry)),
        "embedder": embedder,
        "lancedb": LanceDBResource(index=config.index, cache_uri=str(layout.embedding_cache), embedder=embedder),
        "staging": StagingResource(uri=staging_uri),
        "mlflow": MlflowResource(
            tracking_uri=EnvVar("MLFLOW_TRACKING_URI") if os.environ.get("MLFLOW_TRACKING_URI") else layout.mlflow_uri,
            artifact_location=os.environ.get("RAGINDEX_MLFLOW_ARTIFACTS") or layout.mlflow_artifacts.as_uri(),
            model_name=config.serving.model_name,
            default_table=config.index.table),
        "io_manager": StepOutputIOManager(uri=staging_uri),
        "compute": RayResource(compute=config.compute, embedder_config=config.embedder),
    }
