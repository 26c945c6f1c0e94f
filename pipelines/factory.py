"""Build the Definitions from one config file (and an optional table override for the CLI)."""

from __future__ import annotations

from pathlib import Path

from dagster import Definitions, in_process_executor, load_asset_checks_from_modules, load_assets_from_modules

from assets import chunk, datasets, drift, embed, evaluate, index, ingest, quality
from pipelines.drift_sensor import DRIFT_SENSORS
from pipelines.jobs import index_job
from pipelines.schedules import SCHEDULES
from pipelines.sensors import make_source_sensor
from ragindex.config import load_config
from ragindex.paths import default_config_path
from resources.corpus import CorpusResource
from resources.embedder import EmbedderResource
from resources.lancedb_store import LanceStoreResource
from resources.mlflow_tracker import MlflowResource


def build_definitions(config_path: str | Path | None = None, table: str | None = None) -> Definitions:
    """Assets, jobs, sensors and resources; all steps of a run share one process (one model load)."""
    path = str(Path(config_path or default_config_path()).resolve())
    config = load_config(path)
    return Definitions(
        assets=load_assets_from_modules([ingest, chunk, embed, index, evaluate, datasets, drift]),
        asset_checks=load_asset_checks_from_modules([quality, drift]),
        jobs=[index_job],
        schedules=SCHEDULES,
        sensors=[make_source_sensor(path), *DRIFT_SENSORS],
        resources={
            "corpus": CorpusResource(config_path=path),
            "embedder": EmbedderResource(model=config.embedder.model, batch_size=config.embedder.batch_size,
                                         device=config.embedder.device),
            "lancedb": LanceStoreResource(config_path=path, table=table),
            "mlflow": MlflowResource(),
        },
        executor=in_process_executor,
    )
