"""Which table, model and search settings answer queries for a logical table: the champion's, else the config's."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ragindex.config import ProjectConfig
from ragindex.evaluation.fusion import FusionChoice
from ragindex.serving.champion_cache import champion_config
from ragindex.tracking import Tracker, registered_name


@dataclass(frozen=True)
class ServingTarget:
    table: str
    model: str
    tag: str | None
    origin: str  # "champion vN of <model>" or "config"
    fusion: FusionChoice | None = None  # how the champion's hybrid ranks (None: the documented prior)


def serving_target(project: ProjectConfig, tracker: Tracker, logical: str | None = None,
                   cache: Path | None = None) -> ServingTarget:
    """The champion of the logical table if there is one (blue/green keeps serving it until a green table is
    promoted), otherwise the logical table with the configured model; `cache`: the champion cache to use
    (ragindex/serving/champion_cache.py)."""
    logical = logical or project.index.table
    fallback = ServingTarget(logical, project.embedder.model, None, "config")
    name = registered_name(project.serving.model_name, logical, project.index.table)
    try:
        current = champion_config(tracker, name, cache)
    except Exception:  # noqa: BLE001 - an unreachable tracking server: serve from the configuration
        return fallback
    if current is None:
        return fallback
    version, config = current
    table = config.get("table", "")
    if table != logical and not table.startswith(f"{logical}-"):
        return fallback
    fusion = FusionChoice.from_dict(config["fusion"]) if config.get("fusion") else None
    return ServingTarget(table, config["model"], config.get("tag"), f"champion v{version} of {name}", fusion)
