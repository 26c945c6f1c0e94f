"""Every path under the data directory, named in one place (overridable by RAGINDEX_DATA_DIR).

Nothing else in the project builds a path below the data directory by hand: it asks `DataLayout`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def default_config_path() -> Path:
    return Path(os.environ.get("RAGINDEX_CONFIG", PROJECT_ROOT / "configs" / "default.yaml"))


@dataclass(frozen=True)
class DataLayout:
    """The data directory and what lives in it: one attribute or method per kind of state."""

    root: Path

    @classmethod
    def current(cls) -> DataLayout:
        """The data directory of this process: $RAGINDEX_DATA_DIR, else data/ in the repository."""
        return cls(Path(os.environ.get("RAGINDEX_DATA_DIR", PROJECT_ROOT / "data")).resolve())

    @property
    def lancedb(self) -> Path:
        """Index tables (the default `index.uri`)."""
        return self.root / "lancedb"

    @property
    def staging(self) -> Path:
        """Intermediate data of builds: documents and chunks tables, step outputs (the default `storage.uri`)."""
        return self.root / "staging"

    @property
    def embedding_cache(self) -> Path:
        """Embedding cache tables, one per model fingerprint."""
        return self.root / "cache"

    @property
    def model_cache(self) -> Path:
        """Weights hashes (by size and mtime) and exported inference graphs of the embedding models."""
        return self.root / "models"

    @property
    def weights_hashes(self) -> Path:
        """sha256 of model weights, cached by (path, size, mtime): a fingerprint costs no weight read."""
        return self.model_cache / "weights-sha256.json"

    @property
    def onnx_exports(self) -> Path:
        """ONNX graphs exported once per model fingerprint (the single-query and fp32 ONNX Runtime paths):
        `{id}-fp32.onnx` (onnx_session.fp32_export), its weights beside it (bert_onnx.weights_file) and
        `{id}-int8.onnx`."""
        return self.model_cache / "onnx"

    @property
    def mlflow(self) -> Path:
        return self.root / "mlflow"

    @property
    def mlflow_uri(self) -> str:
        return f"sqlite:///{self.mlflow / 'mlflow.db'}"

    @property
    def mlflow_artifacts(self) -> Path:
        return self.mlflow / "artifacts"

    @property
    def champion_cache(self) -> Path:
        """The champions' serving configs as last read from the local MLflow store, valid while its files are
        unchanged (a search starts without importing MLflow)."""
        return self.mlflow / "champions.json"

    @property
    def dagster(self) -> Path:
        """The Dagster instance's storage (dagster.yaml points here)."""
        return self.root / "dagster"

    @property
    def query_log(self) -> Path:
        return self.root / "query_log"

    @property
    def drift(self) -> Path:
        """Drift history (history.jsonl) and reports per table and source."""
        return self.root / "drift"

    @property
    def datasets(self) -> Path:
        """Published evaluation sets (the default `datasets.out`)."""
        return self.root / "datasets"

    def evaluation(self, table: str, tag: str) -> Path:
        """Reports, per-query scores and run files of one evaluation of a table version."""
        return self.root / "evaluations" / table / tag

    def quality(self, table: str, source: str, run_id: str) -> Path:
        """Validation results and Data Docs of one run's quality checks."""
        return self.root / "quality" / table / source / run_id

    @property
    def llm_cache(self) -> Path:
        return self.root / "llm_cache"

    @property
    def judgements(self) -> Path:
        return self.root / "judgements.jsonl"

    @property
    def source_registry(self) -> Path:
        """Directories and BEIR folders registered by the CLI as sources (watched by the source sensor)."""
        return self.root / "registered_sources.json"

    @property
    def locks(self) -> Path:
        return self.root / "locks"
