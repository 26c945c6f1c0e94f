"""The code location Dagster loads (`dagster dev`, `dagster asset materialize -m ragindex_app.pipelines.definitions`).
The config is `$RAGINDEX_CONFIG`, else configs/default.yaml."""

from ragindex_app.pipelines.factory import build_definitions

defs = build_definitions()
