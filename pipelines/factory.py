"""Build the Definitions from one config file: parsed and validated once, handed to typed resources."""

from __future__ import annotations

from pathlib import Path

from dagster import Definitions, load_asset_checks_from_modules, load_assets_from_modules

from ragindex.config import load_config
from ragindex.paths import default_config_path
from ragindex_app.assets import chunk, datasets, drift, embed, evaluate, images, index, ingest, quality, upkeep
from ragindex_app.pipelines.drift_sensor import DRIFT_SENSORS
from ragindex_app.pipelines.executor import step_executor
from ragindex_app.pipelines.jobs import index_job, upkeep_job
from ragindex_app.pipelines.resources import build_resources
from ragindex_app.pipelines.schedules import verify_schedule
from ragindex_app.pipelines.sensors import source_change_sensor
from ragindex_app.pipelines.upkeep_schedule import upkeep_schedule


def build_definitions(config_path: str | Path | None = None) -> Definitions:
    """Assets, checks, jobs, sensors, resources and the executor. Runs launched by `dagster dev`, the daemon or
    `dagster asset materialize` run a process per step, forked from a server that imported the code once per run
    (pipelines/executor.py; only steps that embed load the model); the CLI runs in-process."""
    config = load_config(Path(config_path or default_config_path()).resolve())
    return Definitions(
        assets=load_assets_from_modules([ingest, chunk, embed, index, images, evaluate, datasets, drift, upkeep]),
        asset_checks=load_asset_checks_from_modules([quality, images, drift]),
        jobs=[index_job, upkeep_job],
        schedules=[verify_schedule, upkeep_schedule],
        sensors=[source_change_sensor, *DRIFT_SENSORS],
        resources=build_resources(config),
        executor=step_executor,
    )
