"""The code location Dagster loads (`dagster dev`, `dagster asset materialize -m pipelines.definitions`)."""

from pipelines.factory import build_definitions

defs = build_definitions()
