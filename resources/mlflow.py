"""MLflow as a resource: it owns the tracking URI and the client (no global MLflow state)."""

from dagster import ConfigurableResource
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
        if self._tracker is None:
            self._tracker = Tracker(self.tracking_uri, self.artifact_location)
        return self._tracker

    def registered_name(self, logical_table: str) -> str:
        return registered_name(self.model_name, logical_table, self.default_table)
