"""Sources named in the config, plus directories and BEIR folders registered ad hoc from the command line.

Registered sources are watched by the source sensor like configured ones (`watched_sources`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

from ragindex.config import ProjectConfig, SourceConfig
from ragindex.errors import ConfigError
from ragindex.paths import DataLayout


def adhoc_source(path: str | Path) -> SourceConfig:
    """A directory (or BEIR folder) as a source named after it: the same path always gets the same name."""
    resolved = Path(path).expanduser().resolve()
    if not resolved.is_dir():
        raise ConfigError(f"{path} is neither a configured source name nor an existing directory")
    kind = "beir" if (resolved / "corpus.jsonl").is_file() else "directory"
    label = f"{resolved.parent.name}-{resolved.name}" if resolved.name.startswith("v-") else resolved.name
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", label).strip("-.")[:40] or "source"
    name = f"{slug}-{hashlib.sha256(str(resolved).encode()).hexdigest()[:6]}"
    return SourceConfig(name=name, type=kind, path=str(resolved))


class SourceRegistry:
    """The ad-hoc sources of a data directory (a JSON file named by DataLayout.source_registry)."""

    def __init__(self, file: Path | None = None):
        self.file = file or DataLayout.current().source_registry

    def all(self) -> dict[str, SourceConfig]:
        if not self.file.is_file():
            return {}
        return {name: SourceConfig.model_validate(raw) for name, raw in json.loads(self.file.read_text()).items()}

    def register(self, source: SourceConfig) -> SourceConfig:
        """Add a source; concurrent registrations serialize on a lock and readers never see a half-written file."""
        from ragindex.locks import file_lock

        with file_lock(self.file.with_name(self.file.name + ".lock"), "the source registry"):
            sources = {n: s.model_dump() for n, s in self.all().items()}
            sources[source.name] = source.model_dump()
            partial = self.file.with_name(f"{self.file.name}.{os.getpid()}.tmp")
            partial.write_text(json.dumps(sources, indent=2, sort_keys=True))
            os.replace(partial, self.file)
        return source

    def unregister(self, name: str) -> None:
        """Forget a source registered for a run that failed."""
        sources = {n: s.model_dump() for n, s in self.all().items() if n != name}
        if self.file.is_file():
            self.file.write_text(json.dumps(sources, indent=2, sort_keys=True))


def watched_sources(config: ProjectConfig, registry: SourceRegistry | None = None) -> list[SourceConfig]:
    """What the source sensor watches: the configured sources, then the registered ones."""
    configured = {s.name for s in config.sources}
    extra = [s for n, s in sorted((registry or SourceRegistry()).all().items()) if n not in configured]
    return [*config.sources, *extra]


def resolve_source(config: ProjectConfig, name: str, registry: SourceRegistry | None = None) -> SourceConfig:
    """A configured source by name, else a registered one, with the top-level `access` where it has none of its
    own; unknown names stop with one line."""
    for source in watched_sources(config, registry):
        if source.name == name:
            return source if source.access else source.model_copy(update={"access": config.access})
    return config.source(name)  # raises ConfigError naming the configured sources
