"""MLflow as a resource: a tracking URI (SQLite in the data directory unless MLFLOW_TRACKING_URI is set)."""

import os

from dagster import ConfigurableResource


class MlflowResource(ConfigurableResource):
    """Runs, the model registry and the `champion` alias live at this tracking URI."""

    tracking_uri: str | None = None

    def setup_for_execution(self, context) -> None:
        if self.tracking_uri:
            os.environ["MLFLOW_TRACKING_URI"] = self.tracking_uri
