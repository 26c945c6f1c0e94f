"""The validated project configuration (parsed once by the Definitions factory) and the source registry."""

from pathlib import Path

from dagster import ConfigurableResource, ResourceDependency

from ragindex.config import ProjectConfig, SourceConfig
from ragindex.source_registry import SourceRegistry, resolve_source, watched_sources


class ProjectResource(ConfigurableResource):
    """Sources, chunker, evaluation sets and the thresholds of checks, as typed configuration."""

    config: ResourceDependency[ProjectConfig]
    registry_file: str

    @property
    def registry(self) -> SourceRegistry:
        return SourceRegistry(Path(self.registry_file))

    def source(self, name: str) -> SourceConfig:
        return resolve_source(self.config, name, self.registry)

    def watched(self) -> list[SourceConfig]:
        return watched_sources(self.config, self.registry)

    def evaluation_set(self, source_name: str) -> Path | None:
        """The judged queries of a source: configured under evaluation.datasets, or a BEIR source's own."""
        if source_name in self.config.evaluation.datasets:
            return Path(self.config.evaluation.datasets[source_name])
        source = self.source(source_name)
        if source.type == "beir" and (source.resolved_path() / "queries.jsonl").is_file():
            return source.resolved_path()
        return None
