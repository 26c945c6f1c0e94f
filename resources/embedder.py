"""The embedding model as a resource: loaded once per process, fingerprinted."""

from __future__ import annotations

from dagster import ConfigurableResource

from ragindex.embedding import Embedder, load_embedder


class EmbedderResource(ConfigurableResource):
    """A packaged model name or a local model directory; GPU when present."""

    model: str = "all-MiniLM-L6-v2"
    batch_size: int = 64
    device: str = "auto"

    def get(self) -> Embedder:
        return load_embedder(self.model, self.batch_size, self.device)
