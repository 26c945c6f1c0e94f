"""Ray as a resource: the only door to the cluster; it connects (or starts a local head) once, on first use."""

from collections.abc import Callable

from dagster import ConfigurableResource, ResourceDependency
from pydantic import PrivateAttr

from ragindex.config import ComputeConfig, EmbedderConfig
from ragindex_app.resources.embedder import EmbedderResource


class RayResource(ConfigurableResource):
    """`compute:` of the config. With engine `local` Ray is never imported; with `ray` the embed step fans out
    over the cluster's actor pool (ragindex/compute/ray_embed.py)."""

    compute: ResourceDependency[ComputeConfig]
    embedder_config: ResourceDependency[EmbedderConfig]

    _how: str | None = PrivateAttr(default=None)

    def connect(self) -> str:
        """Join or start the cluster (once per process); returns how, in words."""
        if self._how is None:
            from ragindex.compute.ray_embed import connect

            self._how = connect(self.compute)
        return self._how

    def describe(self) -> str:
        if self.compute.engine == "local":
            return "in-process"
        return f"ray: {self._how or 'not connected (nothing to embed)'}, {self.compute.num_actors} actors"

    def embedder_factory(self, embedder: EmbedderResource) -> Callable[[], object]:
        """What the embed step embeds with: the in-process model, or the cluster's actor pool (connected only
        when a text is missing from the cache)."""
        if self.compute.engine == "local":
            return embedder.embedder

        def on_ray():
            from ragindex.compute.ray_embed import RayEmbedder

            self.connect()
            return RayEmbedder(self.compute, self.embedder_config)

        return on_ray
