"""Which table and model answer queries for a logical table: the champion's, else the configuration's."""

from __future__ import annotations

from dataclasses import dataclass

from ragindex.config import ProjectConfig


@dataclass(frozen=True)
class ServingTarget:
    table: str
    model: str
    tag: str | None
    origin: str  # "champion vN of <model>" or "config"


def registered_name(project: ProjectConfig, logical: str) -> str:
    """The registered retriever of a logical table (the configured table owns serving.model_name)."""
    base = project.serving.model_name
    return base if logical == project.index.table else f"{base}-{logical}"


def serving_target(project: ProjectConfig, logical: str | None = None) -> ServingTarget:
    """The champion of the logical table if there is one (blue/green keeps serving it until a green table is
    promoted), otherwise the logical table with the configured model."""
    logical = logical or project.index.table
    fallback = ServingTarget(logical, project.embedder.model, None, "config")
    try:
        from ragindex import tracking

        name = registered_name(project, logical)
        current = tracking.champion(name)
        if current is None:
            return fallback
        config = tracking.model_config(current)
    except Exception:  # noqa: BLE001 - no MLflow store yet, or unreachable: serve from the configuration
        return fallback
    table = config.get("table", "")
    if table != logical and not table.startswith(f"{logical}-"):
        return fallback
    return ServingTarget(table, config["model"], None, f"champion v{current.version} of {name}")
