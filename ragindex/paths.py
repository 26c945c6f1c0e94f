"""Where the project keeps its state: one data directory, overridable by RAGINDEX_DATA_DIR."""

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    """The project's data directory (Dagster instance, LanceDB tables, MLflow store, caches)."""
    path = Path(os.environ.get("RAGINDEX_DATA_DIR", PROJECT_ROOT / "data")).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def default_config_path() -> Path:
    return Path(os.environ.get("RAGINDEX_CONFIG", PROJECT_ROOT / "configs" / "default.yaml"))
