"""MLflow: one run per index build, a registered retriever, and the `champion` alias with its gate."""

from __future__ import annotations

import hashlib
import os
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path

from ragindex.paths import PROJECT_ROOT, data_dir

EXPERIMENT = "ragindex"
CHAMPION = "champion"
MODEL_FILE = Path(__file__).parent / "serving" / "retriever_model.py"


def tracking_uri() -> str:
    """MLFLOW_TRACKING_URI for a real server, else an SQLite store in the project's data directory."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{data_dir() / 'mlflow' / 'mlflow.db'}"


def _mlflow():
    import mlflow

    warnings.filterwarnings("ignore", module=r"mlflow\..*")

    (data_dir() / "mlflow").mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(tracking_uri())
    mlflow.set_registry_uri(tracking_uri())
    if mlflow.get_experiment_by_name(EXPERIMENT) is None:
        mlflow.create_experiment(EXPERIMENT, artifact_location=(data_dir() / "mlflow" / "artifacts").as_uri())
    mlflow.set_experiment(EXPERIMENT)
    return mlflow


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True,
                              timeout=5).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def table_digest(table) -> str:
    """Digest of the table's content identity: its sorted chunk ids (content-addressed)."""
    from ragindex.index_store import scan_columns

    ids = sorted(scan_columns(table, ["chunk_id"]).column("chunk_id").to_pylist())
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()[:16]


def start_build_run(build: dict, fingerprint: dict, chunker: dict, index_params: dict, dagster_run_id: str,
                    table) -> str:
    """Open the MLflow run of an index build: params, tags and the chunk table as a dataset input."""
    mlflow = _mlflow()
    columns = ["chunk_id", "doc_id", "source", "heading_path", "n_tokens"]
    from ragindex.index_store import scan_columns

    frame = scan_columns(table, columns).to_pandas()
    digest = table_digest(table)
    with mlflow.start_run(run_name=f"{build['table']}:{build['tag']}") as run:
        mlflow.log_params({**{f"model.{k}": v for k, v in fingerprint.items()},
                           **{f"chunker.{k}": v for k, v in chunker.items()},
                           **{f"index.{k}": v for k, v in index_params.items()}})
        mlflow.set_tags({"lancedb.uri": build["uri"], "lancedb.table": build["table"],
                         "lancedb.version": build["version"], "lancedb.tag": build["tag"], "source": build["source"],
                         "dagster.run_id": dagster_run_id, "git.commit": git_commit(), "corpus.digest": digest})
        mlflow.log_metrics({"rows": build["rows"], "inserted": build["inserted"], "deleted": build["deleted"]})
        dataset = mlflow.data.from_pandas(frame, source=f"{build['uri']}/{build['table']}", name=build["table"],
                                          digest=digest)
        mlflow.log_input(dataset, context="index")
        return run.info.run_id


def log_evaluation(run_id: str, metrics: dict[str, float], files: list[Path]) -> None:
    mlflow = _mlflow()
    with mlflow.start_run(run_id=run_id):
        mlflow.log_metrics(metrics)
        for file in files:
            mlflow.log_artifact(str(file), artifact_path="evaluation")


def log_files(run_id: str, files: list[Path], artifact_path: str) -> None:
    mlflow = _mlflow()
    with mlflow.start_run(run_id=run_id):
        for file in files:
            mlflow.log_artifact(str(file), artifact_path=artifact_path)


def log_dataset(run_id: str, frame, name: str, source: str, digest: str, context: str) -> None:
    """Attach a table (e.g. a generated evaluation set) to a run as an MLflow dataset input."""
    mlflow = _mlflow()
    with mlflow.start_run(run_id=run_id):
        mlflow.log_input(mlflow.data.from_pandas(frame, source=source, name=name, digest=digest), context=context)


def run_url(run_id: str) -> str:
    """Where the run is found in `mlflow ui` (default port)."""
    mlflow = _mlflow()
    experiment = mlflow.get_experiment_by_name(EXPERIMENT)
    return f"http://127.0.0.1:5000/#/experiments/{experiment.experiment_id}/runs/{run_id}"


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


def register_retriever(run_id: str, model_name: str, model_config: dict) -> str:
    """Log the retriever (models-from-code) in the build's run and register a new model version."""
    mlflow = _mlflow()
    with mlflow.start_run(run_id=run_id):
        info = mlflow.pyfunc.log_model(name="retriever", python_model=str(MODEL_FILE), model_config=model_config,
                                       registered_model_name=model_name,
                                       pip_requirements=["ragindex"])
    return str(info.registered_model_version)


def champion(model_name: str):
    """The champion model version, or None."""
    mlflow = _mlflow()
    client = mlflow.MlflowClient()
    try:
        return client.get_model_version_by_alias(model_name, CHAMPION)
    except mlflow.exceptions.MlflowException:
        return None


def compare_with_champion(model_name: str, per_query: dict, dataset_digest: str) -> dict | None:
    """Paired randomization test (Holm across metrics) of this build's per-query scores against the champion's,
    on the queries both scored; None when there is no champion measured on the same evaluation set."""
    import json

    from ragindex.evaluation.metrics import METRICS
    from ragindex.evaluation.statistics import compare_runs

    current = champion(model_name)
    if current is None or current.tags.get("eval.digest") != dataset_digest:
        return None
    mlflow = _mlflow()
    mode = current.tags.get("gate.mode", "hybrid")
    try:
        path = mlflow.artifacts.download_artifacts(run_id=current.run_id, artifact_path="evaluation/per_query.json")
    except Exception:  # noqa: BLE001 - an old champion without per-query scores: margin-only gate
        return None
    theirs = json.loads(Path(path).read_text()).get(mode, {})
    return compare_runs(theirs, per_query, list(METRICS), n_perm=2000, seed=0)


def model_config(version) -> dict:
    """The model_config a registered retriever version was logged with."""
    mlflow = _mlflow()
    info = mlflow.models.get_model_info(f"models:/{version.name}/{version.version}")
    return dict(info.flavors.get("python_function", {}).get("config") or {})


def promote(model_name: str, version: str, score: float, dataset_digest: str, margin: float,
            significant_loss: bool = False, gate_mode: str = "hybrid") -> Promotion:
    """Gate: take `champion` unless nDCG@10 is worse than the champion's by more than `margin` (on the same
    evaluation set), or a paired test says the loss is significant. The decision is recorded on the version."""
    mlflow = _mlflow()
    client = mlflow.MlflowClient()
    client.set_model_version_tag(model_name, version, "ndcg_at_10", f"{score:.6f}")
    client.set_model_version_tag(model_name, version, "eval.digest", dataset_digest)
    client.set_model_version_tag(model_name, version, "gate.mode", gate_mode)
    current = champion(model_name)
    previous = str(current.version) if current else None
    if current is None:
        promoted, reason = True, "no champion yet"
    else:
        best = float(current.tags.get("ndcg_at_10", "nan"))
        same_set = current.tags.get("eval.digest") == dataset_digest
        if not same_set:
            promoted, reason = True, "champion was measured on another evaluation set; new build promoted"
        elif score < best - margin:
            promoted, reason = False, f"nDCG@10 {score:.4f} < champion v{previous} {best:.4f} - margin {margin}"
        elif significant_loss:
            promoted, reason = False, "paired randomization test: significant loss against the champion"
        else:
            promoted, reason = True, f"nDCG@10 {score:.4f} >= champion v{previous} {best:.4f} - margin {margin}"
    client.set_model_version_tag(model_name, version, "gate", reason)
    if promoted and previous != version:
        if previous:
            client.set_model_version_tag(model_name, version, "previous_champion", previous)
        client.set_registered_model_alias(model_name, CHAMPION, version)
    return Promotion(model_name, version, promoted, reason, previous)


def promote_unmeasured(model_name: str, version: str) -> Promotion:
    """A build with no judged queries: it serves only if nothing serves yet; it never replaces a champion."""
    mlflow = _mlflow()
    client = mlflow.MlflowClient()
    if champion(model_name) is not None:
        reason = "no judged queries to gate on: registered, champion unchanged"
        client.set_model_version_tag(model_name, version, "gate", reason)
        return Promotion(model_name, version, False, reason, None)
    reason = "first build, no judged queries to gate on: champion so that something serves"
    client.set_model_version_tag(model_name, version, "gate", reason)
    client.set_registered_model_alias(model_name, CHAMPION, version)
    return Promotion(model_name, version, True, reason, None)


def rollback(model_name: str) -> Promotion:
    """Move `champion` back to the version it replaced."""
    mlflow = _mlflow()
    client = mlflow.MlflowClient()
    current = champion(model_name)
    if current is None:
        raise ValueError(f"model '{model_name}' has no champion to roll back")
    previous = current.tags.get("previous_champion")
    if not previous:
        raise ValueError(f"champion v{current.version} of '{model_name}' replaced no earlier version")
    client.set_registered_model_alias(model_name, CHAMPION, previous)
    client.set_model_version_tag(model_name, current.version, "rolled_back", "true")
    return Promotion(model_name, previous, True, f"rolled back from v{current.version}", current.version)
