"""LanceDB as a resource: the index tables and the embedding cache, opened once per run."""

from dagster import ConfigurableResource, ResourceDependency
from pydantic import PrivateAttr

from ragindex.config import IndexConfig
from ragindex.embedding_cache import EmbeddingCache
from ragindex.index_store import IndexStore, physical_table
from ragindex.storage import connect
from ragindex_app.resources.embedder import EmbedderResource


class LanceDBResource(ConfigurableResource):
    """Index tables at `index.uri`; the embedding cache of the embedder's model at `cache_uri`."""

    index: ResourceDependency[IndexConfig]
    cache_uri: str
    embedder: ResourceDependency[EmbedderResource]

    _db = PrivateAttr(default=None)
    _stores: dict = PrivateAttr(default_factory=dict)
    _cache: EmbeddingCache | None = PrivateAttr(default=None)

    @property
    def db(self):
        if self._db is None:
            self._db = connect(self.index.resolved_uri())
        return self._db

    def store(self, table: str) -> IndexStore:
        """An index table, opened once for the run."""
        if table not in self._stores:
            self._stores[table] = IndexStore(self.db, self.index, table)
        return self._stores[table]

    def physical_table(self, logical: str) -> str:
        """The table the configured model writes for a logical table (a green one after a model change)."""
        return physical_table(self.db, logical, self.embedder.fingerprint_id())

    def cache(self) -> EmbeddingCache:
        if self._cache is None:
            self._cache = EmbeddingCache(self.cache_uri, self.embedder.fingerprint_id(), self.embedder.dimension())
        return self._cache
