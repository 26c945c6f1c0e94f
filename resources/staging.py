"""Staging storage as a resource: the documents and chunk tables of builds at a URI every step process reaches."""

from dagster import ConfigurableResource
from pydantic import PrivateAttr

from ragindex.staging import StageStore, StageTable


class StagingResource(ConfigurableResource):
    """`storage.uri`: a local folder, or `s3://bucket/prefix` with credentials from the environment."""

    uri: str

    _store: StageStore | None = PrivateAttr(default=None)

    @property
    def store(self) -> StageStore:
        if self._store is None:
            self._store = StageStore(self.uri)
        return self._store

    def documents(self, table: str, source: str) -> StageTable:
        return self.store.documents(table, source)

    def chunks(self, table: str, source: str) -> StageTable:
        return self.store.chunks(table, source)
