"""The LanceDB store as a resource: which URI and table the assets write and read."""

from __future__ import annotations

from dagster import ConfigurableResource

from ragindex.config import load_config
from ragindex.embedding_cache import EmbeddingCache
from ragindex.index_store import IndexStore
from ragindex.paths import data_dir


class LanceStoreResource(ConfigurableResource):
    """Index settings come from the config file; `table` overrides the configured table name."""

    config_path: str
    table: str | None = None

    def store(self) -> IndexStore:
        return IndexStore(load_config(self.config_path).index, self.table)

    def cache(self, fingerprint_id: str, dimension: int) -> EmbeddingCache:
        """The embedding cache is local and shared by every table built with the same model."""
        return EmbeddingCache(str(data_dir() / "cache"), fingerprint_id, dimension)
