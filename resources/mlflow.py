"""MLflow as a resource: it owns the tracking URI and the client (no global MLflow state)."""

from dagster import ConfigurableResource, EnvVar
from pydantic import PrivateAttr

from ragindex.tracking import Tracker, registered_name


class MlflowResource(ConfigurableResource):
    """Runs, the model registry and the `champion` alias of each index table's registered retriever."""

    tracking_uri: str
    artifact_location: str
    model_name: str = "ragindex-retriever"  # serving.model_name: the configured table's registered retriever
    default_table: str = "chunks"

    _tracker: Tracker | None = PrivateAttr(default=None)

    @property
    def tracker(self) -> Tracker:
        if self._tracker is None:  # outside a Dagster run (the CLI) an EnvVar is not resolved yet
            uri = self.tracking_uri.get_value() if isinstance(self.tracking_uri, EnvVar) else self.tracking_uri
            self._tracker = Tracker(uri, self.artifact_location)
        return self._tracker

    def registered_name(self, logical_table: str) -> str:
        return registered_name(self.model_name, logical_table, self.default_table)
