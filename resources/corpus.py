"""The configured sources and chunker, read from the YAML in configs/."""

from __future__ import annotations

from dagster import ConfigurableResource

from ragindex.config import ChunkerConfig, ProjectConfig, SourceConfig, load_config
from ragindex.source_registry import resolve_source


class CorpusResource(ConfigurableResource):
    """Where documents come from (one Dagster partition per source) and how they are cut."""

    config_path: str

    def project(self) -> ProjectConfig:
        return load_config(self.config_path)

    def source(self, name: str) -> SourceConfig:
        return resolve_source(self.project(), name)

    def chunker(self) -> ChunkerConfig:
        return self.project().chunker
