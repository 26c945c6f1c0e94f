"""MLflow through one client: a run per index build, a registered retriever, and the `champion` alias with its gate.

`Tracker` owns its tracking URI and `MlflowClient`; nothing here touches MLflow's global state (active run,
global tracking URI), so two trackers with different stores can live in one process.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

from ragindex.paths import PROJECT_ROOT, DataLayout

EXPERIMENT = "ragindex"
CHAMPION = "champion"
SERVING_CONFIG_TAG = "serving_config"
MODEL_FILE = Path(__file__).parent / "serving" / "retriever_model.py"


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True,
                              timeout=5).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def registered_name(base: str, logical_table: str, default_table: str) -> str:
    """The registered retriever of a logical table: the configured table owns the base name."""
    return base if logical_table == default_table else f"{base}-{logical_table}"


def dataset_digest(payload: dict) -> str:
    """Identity of an evaluation set as measured: its name and the scored query ids."""
    queries = sorted(payload["per_query"].get("dense_exact", {}))
    return hashlib.sha256(f"{payload['dataset']}\n{chr(10).join(queries)}".encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Promotion:
    model_name: str
    version: str
    promoted: bool
    reason: str
    previous_champion: str | None


class Tracker:
    """An MLflow tracking store (SQLite file, or a server's URI) and the project's experiment in it."""

    def __init__(self, tracking_uri: str, artifact_location: str, experiment: str = EXPERIMENT):
        self.tracking_uri = tracking_uri
        self.artifact_location = artifact_location
        self.experiment = experiment
        self._client = None
        self._experiment_id: str | None = None

    @classmethod
    def current(cls, layout: DataLayout | None = None) -> Tracker:
        """This process's store: $MLFLOW_TRACKING_URI, else the data directory's SQLite file; artifacts at
        $RAGINDEX_MLFLOW_ARTIFACTS, else in the data directory."""
        layout = layout or DataLayout.current()
        return cls(os.environ.get("MLFLOW_TRACKING_URI") or layout.mlflow_uri,
                   os.environ.get("RAGINDEX_MLFLOW_ARTIFACTS") or layout.mlflow_artifacts.as_uri())

    @property
    def database(self) -> Path | None:
        """The SQLite file of a local store; None for a tracking server."""
        return Path(self.tracking_uri[len("sqlite:///"):]) if self.tracking_uri.startswith("sqlite:///") else None

    @property
    def client(self):
        if self._client is None:
            import mlflow

            warnings.filterwarnings("ignore", module=r"mlflow\..*")
            for name in ("mlflow", "alembic"):  # schema creation and migrations log at INFO on every new store
                logging.getLogger(name).setLevel(logging.WARNING)
            database = self.database
            if database is None:
                self._client = mlflow.MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)
                return self._client
            from ragindex.locks import file_lock

            # two processes creating (or migrating) one SQLite schema collide: one at a time, beside the database
            with file_lock(database.with_name(database.name + ".lock"), f"MLflow store {database}"):
                client = mlflow.MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)
                client.search_experiments(max_results=1)  # the tracking schema exists once this returns
                client.search_registered_models(max_results=1)  # ... and the registry's
            self._client = client
        return self._client

    def store_exists(self) -> bool:
        """False only when nothing was ever tracked here (a local SQLite file that does not exist yet)."""
        return self.database is None or self.database.is_file()

    @property
    def experiment_id(self) -> str:
        if self._experiment_id is None:
            from mlflow.exceptions import MlflowException

            found = self.client.get_experiment_by_name(self.experiment)
            if found is None:
                try:
                    self._experiment_id = self.client.create_experiment(self.experiment, self.artifact_location)
                except MlflowException:  # created meanwhile by another process
                    found = self.client.get_experiment_by_name(self.experiment)
            if found is not None:
                self._experiment_id = found.experiment_id
        return self._experiment_id

    # --- build runs -------------------------------------------------------------------------------------------

    def start_build_run(self, name: str, params: dict, tags: dict, metrics: dict, dataset=None) -> str:
        """A finished run describing one index build (evaluation metrics and artifacts are added later)."""
        from mlflow.entities import Metric, Param, RunTag

        run = self.client.create_run(self.experiment_id, run_name=name,
                                     tags={k: str(v) for k, v in {**tags, "git.commit": git_commit()}.items()})
        run_id = run.info.run_id
        self.client.log_batch(run_id, params=[Param(k, str(v)[:6000]) for k, v in params.items()],
                              tags=[RunTag(k, str(v)) for k, v in tags.items()],
                              metrics=[Metric(k, float(v), 0, 0) for k, v in metrics.items()])
        if dataset is not None:
            self.log_dataset(run_id, *dataset)
        self.client.set_terminated(run_id, "FINISHED")
        return run_id

    def log_metrics(self, run_id: str, metrics: dict[str, float]) -> None:
        from mlflow.entities import Metric

        self.client.log_batch(run_id, metrics=[Metric(k, float(v), 0, 0) for k, v in metrics.items()])

    def log_files(self, run_id: str, files: list[Path], artifact_path: str) -> None:
        for file in files:
            self.client.log_artifact(run_id, str(file), artifact_path)

    def log_dataset(self, run_id: str, frame, name: str, source: str, digest: str, context: str) -> None:
        """Attach a table (the chunk table, a generated evaluation set) to a run as an MLflow dataset input."""
        import mlflow
        from mlflow.entities import DatasetInput, InputTag

        dataset = mlflow.data.from_pandas(frame, source=source, name=name, digest=digest)
        self.client.log_inputs(run_id, datasets=[DatasetInput(dataset._to_mlflow_entity(),
                                                             tags=[InputTag("mlflow.data.context", context)])])

    def run_url(self, run_id: str) -> str:
        """Where the run is found in `mlflow ui` (default port)."""
        return f"http://127.0.0.1:5000/#/experiments/{self.experiment_id}/runs/{run_id}"

    def download(self, run_id: str, path: str) -> Path | None:
        """An artifact of a run, or None when the run has none at that path."""
        try:
            return Path(self.client.download_artifacts(run_id, path, tempfile.mkdtemp(prefix="ragindex-mlflow-")))
        except Exception:  # noqa: BLE001 - MLflow raises several kinds for a missing artifact
            return None

    # --- the registry -----------------------------------------------------------------------------------------

    def register_retriever(self, run_id: str, model_name: str, model_config: dict) -> str:
        """Log the retriever (models-from-code) in the build's run and register a new version of it."""
        import mlflow
        from mlflow.exceptions import MlflowException
        from mlflow.models import ModelSignature
        from mlflow.types import ColSpec, Schema
        from mlflow.types.schema import Array

        signature = ModelSignature(inputs=Schema([  # the rows ragindex/requests.py validates
            ColSpec("string", "query"), ColSpec("long", "k", required=False), ColSpec("string", "mode", required=False),
            ColSpec("long", "per_doc", required=False), ColSpec("string", "group_by", required=False),
            ColSpec(Array("string"), "groups", required=False)]))
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "retriever"
            mlflow.pyfunc.save_model(str(folder), python_model=str(MODEL_FILE), model_config=model_config,
                                     signature=signature, pip_requirements=["ragindex"])
            self.client.log_artifacts(run_id, str(folder), "retriever")
        try:
            self.client.create_registered_model(model_name)
        except MlflowException:  # exists already
            pass
        source = f"{self.client.get_run(run_id).info.artifact_uri}/retriever"
        version = self.client.create_model_version(model_name, source, run_id=run_id,
                                                   tags={SERVING_CONFIG_TAG: json.dumps(model_config)})
        return str(version.version)

    def champion(self, model_name: str):
        """The champion model version, or None."""
        if not self.store_exists():
            return None
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_model_version_by_alias(model_name, CHAMPION)
        except MlflowException:
            return None

    @staticmethod
    def serving_config(version) -> dict:
        """The configuration a registered retriever version serves with (table, tag, model, search settings)."""
        return json.loads(version.tags.get(SERVING_CONFIG_TAG) or "{}")

    def compare_with_champion(self, model_name: str, per_query: dict, digest: str) -> dict | None:
        """Paired randomization test (Holm across metrics) of this build's per-query scores against the champion's,
        on the queries both scored; None when there is no champion measured on the same evaluation set."""
        from ragindex.evaluation.metrics import METRICS
        from ragindex.evaluation.statistics import compare_runs

        current = self.champion(model_name)
        if current is None or current.tags.get("eval.digest") != digest:
            return None
        path = self.download(current.run_id, "evaluation/per_query.json")
        if path is None:  # an old champion without per-query scores: margin-only gate
            return None
        theirs = json.loads(path.read_text()).get(current.tags.get("gate.mode", "hybrid"), {})
        return compare_runs(theirs, per_query, list(METRICS), n_perm=2000, seed=0)

    def promote(self, model_name: str, version: str, score: float, digest: str, margin: float,
                significant_loss: bool = False, gate_mode: str = "hybrid") -> Promotion:
        """Gate: take `champion` unless nDCG@10 is worse than the champion's by more than `margin` (on the same
        evaluation set), or a paired test says the loss is significant. The decision is recorded on the version."""
        client = self.client
        for key, value in {"ndcg_at_10": f"{score:.6f}", "eval.digest": digest, "gate.mode": gate_mode}.items():
            client.set_model_version_tag(model_name, version, key, value)
        current = self.champion(model_name)
        previous = str(current.version) if current else None
        if current is None:
            promoted, reason = True, "no champion yet"
        else:
            best = float(current.tags.get("ndcg_at_10", "nan"))
            if current.tags.get("eval.digest") != digest:
                promoted, reason = True, "champion was measured on another evaluation set; new build promoted"
            elif score < best - margin:
                promoted, reason = False, f"nDCG@10 {score:.4f} < champion v{previous} {best:.4f} - margin {margin}"
            elif significant_loss:
                promoted, reason = False, "paired randomization test: significant loss against the champion"
            else:
                promoted, reason = True, f"nDCG@10 {score:.4f} >= champion v{previous} {best:.4f} - margin {margin}"
        return self._decide(model_name, version, promoted, reason, previous)

    def promote_unmeasured(self, model_name: str, version: str) -> Promotion:
        """A build with no judged queries: it serves only if nothing serves yet; it never replaces a champion."""
        current = self.champion(model_name)
        if current is not None:
            return self._decide(model_name, version, False,
                                "no judged queries to gate on: registered, champion unchanged", None)
        return self._decide(model_name, version, True,
                            "first build, no judged queries to gate on: champion so that something serves", None)

    def _decide(self, model_name: str, version: str, promoted: bool, reason: str, previous: str | None) -> Promotion:
        self.client.set_model_version_tag(model_name, version, "gate", reason)
        if promoted and previous != version:
            if previous:
                self.client.set_model_version_tag(model_name, version, "previous_champion", previous)
            self.client.set_registered_model_alias(model_name, CHAMPION, version)
        return Promotion(model_name, version, promoted, reason, previous)

    def rollback(self, model_name: str) -> Promotion:
        """Move `champion` back to the version it replaced."""
        current = self.champion(model_name)
        if current is None:
            raise ValueError(f"model '{model_name}' has no champion to roll back")
        previous = current.tags.get("previous_champion")
        if not previous:
            raise ValueError(f"champion v{current.version} of '{model_name}' replaced no earlier version")
        self.client.set_registered_model_alias(model_name, CHAMPION, previous)
        self.client.set_model_version_tag(model_name, current.version, "rolled_back", "true")
        return Promotion(model_name, previous, True, f"rolled back from v{current.version}", current.version)

    def protected_tags(self, table: str | None = None, uri: str | None = None) -> set[str]:
        """LanceDB tags of the builds any MLflow alias points at, plus each aliased version's rollback target
        (`previous_champion`). Filtered to one table / URI when given. No store yet: empty. Errors reading an
        existing store propagate: a caller must not delete versions it could not check."""
        if not self.store_exists():
            return set()
        client = self.client
        found: set[str] = set()
        for model in client.search_registered_models(max_results=1000):
            versions = {str(v) for v in (model.aliases or {}).values()}
            for version in list(versions):
                previous = client.get_model_version(model.name, version).tags.get("previous_champion")
                if previous:
                    versions.add(str(previous))
            for version in versions:
                config = self.serving_config(client.get_model_version(model.name, version))
                if table is not None and config.get("table") != table:
                    continue
                if uri is not None and config.get("uri") != uri:
                    continue
                if config.get("tag"):
                    found.add(config["tag"])
        return found

    # --- serving pins -----------------------------------------------------------------------------------------

    def aliased_versions(self, table: str, uri: str) -> list[tuple[str, object, list[str]]]:
        """(model name, model version, its aliases) of every aliased version whose serving config pins a tag of
        this table at this URI. No store yet: empty."""
        if not self.store_exists():
            return []
        found = []
        for model in self.client.search_registered_models(max_results=1000):
            by_version: dict[str, list[str]] = {}
            for alias, version in (model.aliases or {}).items():
                by_version.setdefault(str(version), []).append(alias)
            for version, aliases in sorted(by_version.items()):
                entity = self.client.get_model_version(model.name, version)
                config = self.serving_config(entity)
                if config.get("table") == table and config.get("uri") == uri and config.get("tag"):
                    found.append((model.name, entity, sorted(aliases)))
        return found

    def repin(self, model_name: str, version, tag: str, table_version: int, reason: str,
              previous: str | None = None) -> str:
        """Register a version's retriever again with the same settings, pinned to another tag of its table (in a
        run of its own); its measurement tags are carried over. Returns the new version (no alias is moved)."""
        config = {**self.serving_config(version), "tag": tag, "version": table_version}
        run_id = self.start_build_run(f"repin:{config['table']}:{tag}", {}, {
            "lancedb.table": config["table"], "lancedb.tag": tag, "repinned_from": f"{model_name} v{version.version}",
            "reason": reason}, {})
        new = self.register_retriever(run_id, model_name, config)
        carried = {k: v for k, v in version.tags.items() if k in ("ndcg_at_10", "eval.digest", "gate.mode")}
        for key, value in {**carried, "repinned_from": str(version.version), "gate": reason}.items():
            self.client.set_model_version_tag(model_name, new, key, value)
        if previous:
            self.client.set_model_version_tag(model_name, new, "previous_champion", previous)
        return new
