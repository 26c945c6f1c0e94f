"""The LanceDB store as a resource: which URI and table the assets write and read."""

from __future__ import annotations

from dagster import ConfigurableResource

from ragindex.config import load_config
from ragindex.embedding import load_embedder
from ragindex.embedding_cache import EmbeddingCache
from ragindex.index_store import IndexStore
from ragindex.paths import data_dir


class LanceStoreResource(ConfigurableResource):
    """Index settings come from the config file; `table` overrides the configured table name."""

    config_path: str
    table: str | None = None

    def store(self) -> IndexStore:
        """The table the configured model writes and evaluates (a green table after a model change)."""
        project = load_config(self.config_path)
        embedder = load_embedder(project.embedder.model, project.embedder.batch_size, project.embedder.device)
        return IndexStore.for_model(project.index, self.table, embedder.fingerprint.id)

    def cache(self, fingerprint_id: str, dimension: int) -> EmbeddingCache:
        """The embedding cache is local and shared by every table built with the same model."""
        return EmbeddingCache(str(data_dir() / "cache"), fingerprint_id, dimension)
