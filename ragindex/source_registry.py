"""Sources named in the config, plus directories registered ad hoc from the command line."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from ragindex.config import ProjectConfig, SourceConfig
from ragindex.errors import ConfigError
from ragindex.paths import data_dir


def _registry_file() -> Path:
    return data_dir() / "registered_sources.json"


def registered_sources() -> dict[str, SourceConfig]:
    file = _registry_file()
    if not file.is_file():
        return {}
    return {name: SourceConfig.model_validate(raw) for name, raw in json.loads(file.read_text()).items()}


def register_directory(path: str | Path) -> SourceConfig:
    """Register a directory (or BEIR folder) as a source named after it; the same path, the same name."""
    resolved = Path(path).expanduser().resolve()
    if not resolved.exists():
        raise ConfigError(f"--source: {path} is neither a configured source name nor an existing path")
    kind = "beir" if (resolved / "corpus.jsonl").is_file() else "directory"
    label = f"{resolved.parent.name}-{resolved.name}" if resolved.name.startswith("v-") else resolved.name
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", label).strip("-.")[:40] or "source"
    name = f"{slug}-{hashlib.sha256(str(resolved).encode()).hexdigest()[:6]}"
    source = SourceConfig(name=name, type=kind, path=str(resolved))
    sources = {n: s.model_dump() for n, s in registered_sources().items()}
    sources[name] = source.model_dump()
    _registry_file().write_text(json.dumps(sources, indent=2, sort_keys=True))
    return source


def resolve_source(config: ProjectConfig, name: str) -> SourceConfig:
    """A configured source by name, else a registered one; unknown names stop with one line."""
    for source in config.sources:
        if source.name == name:
            return source
    registered = registered_sources()
    if name in registered:
        return registered[name]
    return config.source(name)  # raises ConfigError naming the configured sources
