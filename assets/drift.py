"""Group drift: has this build's content, or the queries the index answers, moved away from what came before?

`corpus_drift` compares this run's new and changed chunks (their vectors from the embedding cache) with the same
source's rows as served before this build (the table at the source's previous build tag; without one, the source's
other rows in the table), by default one row per document (`drift.unit`: the mean of its chunk vectors, since chunks
of one document are not independent rows). `query_drift` compares the queries logged in the last
`drift.query_window_hours` with the window before (the decision) and with the table's vectors (a coverage indicator:
questions and passages always differ, so that comparison is reported, never acted on).

Both run three calibrated two-sample tests (ragindex/drift/two_sample.py) combined with Holm's correction, write a
Markdown summary, a PNG (2-D PCA of reference vs current and the p-value history) and the JSON decision under the
data directory's drift folder, attach them to the materialization and log them as MLflow artifacts on the build's
run, and append one record to the drift history. Fewer than `drift.min_rows` rows on a side is a materialization
with a status, never a failure. Non-blocking asset checks turn the combined p-value into WARN / ERROR with the
thresholds of `drift:` in the config; the drift sensor (pipelines/drift_sensor.py) reacts to `drifted`.
"""

import base64
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    MetadataValue,
    Output,
    PreviewWarning,
    asset,
    asset_check,
)

from ragindex.build import ChunksResult, IndexBuild
from ragindex.config import DriftConfig
from ragindex.drift.history import DriftHistory, history_markdown, history_points
from ragindex.drift.outcome import DriftOutcome
from ragindex.drift.report import format_p, markdown_summary, plot_drift
from ragindex.drift.samples import Sample, as_unit, batch_sample, source_filter, table_sample
from ragindex.drift.sides import previous_source_tag
from ragindex.drift.two_sample import DriftDecision, detect_drift
from ragindex.index_store import IndexStore
from ragindex.lance_tables import quote
from ragindex.paths import DataLayout
from ragindex.query_log import QueryLog
from ragindex.tracking import Tracker
from ragindex_app.assets.metadata import previous_metadata
from ragindex_app.assets.partitions import BuildPartition, build_partitions
from ragindex_app.resources.embedder import EmbedderResource
from ragindex_app.resources.lancedb import LanceDBResource
from ragindex_app.resources.mlflow import MlflowResource
from ragindex_app.resources.project import ProjectResource
from ragindex_app.resources.staging import StagingResource

INLINE_PNG_MAX_BYTES = 300_000
HISTORY_SHOWN = 30


def _folder(build: IndexBuild, source: str) -> Path:
    folder = DataLayout.current().drift / build.table / source / build.tag
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _enough(cfg: DriftConfig, *samples: Sample) -> str | None:
    """None when every side has at least min_rows rows, else the status saying which does not."""
    short = [f"{s.label}: {len(s)} {'documents' if s.unit == 'document' else 'rows'}"
             for s in samples if len(s) < cfg.min_rows]
    return f"too few rows to test ({'; '.join(short)}; need {cfg.min_rows} per side)" if short else None


def _test(cfg: DriftConfig, reference: Sample, current: Sample) -> tuple[DriftDecision | None, str]:
    """(decision, "tested") or (None, why not): too few rows, or vectors of two models (never compared)."""
    reason = _enough(cfg, reference, current)
    if reason:
        return None, reason
    try:
        decision = detect_drift(reference.vectors, current.vectors, cfg.alpha, cfg.seed,
                                reference_fingerprint=reference.fingerprint, current_fingerprint=current.fingerprint,
                                max_samples=cfg.max_samples)
    except ValueError as error:
        return None, f"not tested: {error}"
    return decision, "tested"


def _write_reports(folder: Path, name: str, title: str, decision: DriftDecision, reference: Sample,
                   current: Sample, history: list[dict], notes: str = "") -> dict[str, str]:
    """<name>.md (summary + history), <name>.png (PCA + p history) and <name>.json (the decision)."""
    md = folder / f"{name}.md"
    png = folder / f"{name}.png"
    payload = folder / f"{name}.json"
    md.write_text(f"# {title}\n\nReference: {reference.label} ({len(reference)} {reference.unit} rows)  \n"
                  f"Current: {current.label} ({len(current)} {current.unit} rows)\n\n"
                  f"{markdown_summary(decision)}{notes}\n## History\n\n{history_markdown(history)}\n",
                  encoding="utf-8")
    plot_drift(reference.vectors, current.vectors, png, history_points(history) or None, alpha=decision.alpha)
    payload.write_text(json.dumps({**decision.as_dict(), "reference": reference.describe(),
                                   "current": current.describe()}, indent=2))
    return {"summary": str(md), "plot": str(png), "json": str(payload)}


def _log_to_mlflow(context: AssetExecutionContext, tracker: Tracker, build: IndexBuild, files: dict[str, str],
                   path: str) -> None:
    if not build.mlflow_run_id or not files:
        return
    try:
        tracker.log_files(build.mlflow_run_id, [Path(f) for f in files.values()], path)
    except Exception as error:  # noqa: BLE001 - a tracking outage must not lose the drift result
        context.log.warning(f"drift reports not logged to MLflow: {error}")


def _inline_png(path: str) -> str:
    data = Path(path).read_bytes()
    if len(data) > INLINE_PNG_MAX_BYTES:
        return f"PNG too large to inline ({len(data)} bytes): {path}"
    return f"![drift](data:image/png;base64,{base64.b64encode(data).decode()})"


def _metadata(outcome: DriftOutcome, decision: DriftDecision | None, history: list[dict], build: IndexBuild,
              cfg: DriftConfig) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "status": outcome.status,
        "drifted": MetadataValue.bool(outcome.drifted),
        # what the drift sensor acts on: drift flagged and drift.reindex_on_drift on for this run
        "reindex_requested": MetadataValue.bool(outcome.drifted and cfg.reindex_on_drift),
        "reference": MetadataValue.json(outcome.reference),
        "current": MetadataValue.json(outcome.current),
        "history": MetadataValue.md(history_markdown(history)),
    }
    if decision is not None:
        metadata["p_value"] = MetadataValue.float(float(decision.p_value))
        metadata["alpha"] = MetadataValue.float(float(decision.alpha))
        for test in decision.tests:
            metadata[f"p_{test.name}"] = MetadataValue.float(float(test.p_value))
            metadata[f"effect_{test.name}"] = MetadataValue.float(float(test.effect_size))
    if outcome.files:
        metadata["summary"] = MetadataValue.md(Path(outcome.files["summary"]).read_text(encoding="utf-8"))
        metadata["plot"] = MetadataValue.path(outcome.files["plot"])
        metadata["plot_inline"] = MetadataValue.md(_inline_png(outcome.files["plot"]))
        metadata["report_json"] = MetadataValue.path(outcome.files["json"])
    for key, value in outcome.extra.items():
        if isinstance(value, bool):
            metadata[key] = MetadataValue.bool(value)
        elif isinstance(value, int | float):
            metadata[key] = MetadataValue.float(float(value))
        elif isinstance(value, str):
            metadata[key] = MetadataValue.text(value)
    if build.mlflow_run_id:
        metadata["mlflow_run_id"] = build.mlflow_run_id
    return metadata


def corpus_reference(store: IndexStore, build: IndexBuild, source: str, cfg: DriftConfig,
                     current_ids: list[str]) -> Sample:
    """The source's rows as served before this build: the table at the source's previous build tag, else the
    source's rows now minus this batch's chunks (empty on a source's first build)."""
    table = store.open()
    previous = previous_source_tag(table.tags.list(), source, build.version)
    by_document = cfg.unit == "document"
    if previous is not None:
        try:
            return table_sample(store.open(previous), f"{store.name}@{previous}", where=source_filter(source),
                                max_rows=cfg.max_rows, seed=cfg.seed, by_document=by_document)
        except ValueError:  # the tagged version was cleaned up: fall through
            pass
    return table_sample(store.open(build.version), f"{store.name}@{build.version}", where=source_filter(source),
                        exclude_ids=current_ids, max_rows=cfg.max_rows, seed=cfg.seed, by_document=by_document)


@asset(group_name="drift", partitions_def=build_partitions, kinds={"python"})
def corpus_drift(context: AssetExecutionContext, chunks: ChunksResult, search_index: IndexBuild,
                 project: ProjectResource, lancedb: LanceDBResource, staging: StagingResource,
                 mlflow: MlflowResource) -> Output[DriftOutcome]:
    """This run's new and changed chunks against the source's chunks as served before the build: classifier
    AUC, RFF-MMD and PCA/KS tests, Holm-combined; summary, plot and history in the metadata and in MLflow."""
    cfg = project.config.drift
    part = BuildPartition.of(context)
    source = part.source
    store = lancedb.store(part.table)
    if search_index.unchanged or not chunks.chunks:
        status = "nothing to test: this run changed no chunks"
        outcome = DriftOutcome("corpus", part.table, source, search_index.tag, status)
        return Output(outcome, metadata={"status": status, "drifted": MetadataValue.bool(False),
                                         "reindex_requested": MetadataValue.bool(False)})
    rows = staging.chunks(part.table, source).columns(["chunk_id", "doc_id", "text_hash"], chunks.version,
                                                      f"run_id = {quote(chunks.run_id)}")
    chunks_sample = batch_sample(rows, lancedb.cache(), search_index.tag, cfg.max_rows, cfg.seed,
                                 by_document=cfg.unit == "document")
    reference = as_unit(corpus_reference(store, search_index, source, cfg, chunks_sample.ids), cfg.unit)
    current = as_unit(chunks_sample, cfg.unit)
    decision, status = _test(cfg, reference, current)
    history = DriftHistory(DataLayout.current().drift)
    outcome = DriftOutcome("corpus", search_index.table, source, search_index.tag, status,
                           reference=reference.describe(), current=current.describe())
    if decision is not None:
        outcome.drifted, outcome.p_value, outcome.decision = decision.drifted, decision.p_value, decision.as_dict()
    history.append(DriftHistory.record("corpus", search_index.table, source, status, decision, tag=search_index.tag,
                                       run_id=context.run.run_id))
    records = history.records(search_index.table, source, "corpus", HISTORY_SHOWN)
    if decision is not None:
        outcome.files = _write_reports(_folder(search_index, source), "corpus_drift",
                                       f"Corpus drift: {source} in {search_index.table}", decision, reference,
                                       current, records)
        _log_to_mlflow(context, mlflow.tracker, search_index, outcome.files, "drift/corpus")
        context.log.info(markdown_summary(decision).strip().splitlines()[-1])
    else:
        context.log.info(f"corpus drift not tested: {status}")
    return Output(outcome, metadata=_metadata(outcome, decision, records, search_index, cfg))


@asset(group_name="drift", partitions_def=build_partitions, kinds={"python"})
def query_drift(context: AssetExecutionContext, search_index: IndexBuild, project: ProjectResource,
                embedder: EmbedderResource, lancedb: LanceDBResource,
                mlflow: MlflowResource) -> Output[DriftOutcome]:
    """Queries logged in the last `drift.query_window_hours` against the window before (the decision) and
    against the table's vectors (reported for coverage); skipped with a status when too few were logged or
    none since the last test."""
    cfg = project.config.drift
    part = BuildPartition.of(context)
    source = part.source
    store = lancedb.store(part.table)
    log = QueryLog()
    latest = log.latest_time(search_index.table)
    checked = previous_metadata(context).get("latest_query")
    if latest is None or (checked and checked >= latest.isoformat()):
        status = "nothing to test: no query logged since the last test"
        outcome = DriftOutcome("query", part.table, source, search_index.tag, status)
        return Output(outcome, metadata={"status": status, "drifted": MetadataValue.bool(False),
                                         "reindex_requested": MetadataValue.bool(False),
                                         **({"latest_query": checked} if checked else {})})
    model = embedder.embedder()
    now_window, before_window = log.windows(search_index.table, model.fingerprint.id, cfg.query_window_hours,
                                            embedder=model, max_rows=cfg.max_rows, seed=cfg.seed)
    current, previous = (Sample(w.label, w.vectors if len(w) else np.zeros((0, model.dimension), np.float32),
                                model.fingerprint.id, len(w)) for w in (now_window, before_window))
    history = DriftHistory(DataLayout.current().drift)
    outcome = DriftOutcome("query", search_index.table, source, search_index.tag, "", current=current.describe(),
                           reference=previous.describe())
    if len(current) < cfg.min_rows:
        outcome.status = (f"too few queries to test: {len(current)} logged in the last {cfg.query_window_hours:g} h "
                          f"for table {search_index.table} (need {cfg.min_rows})")
        history.append(DriftHistory.record("query", search_index.table, source, outcome.status, None,
                                           tag=search_index.tag, run_id=context.run.run_id))
        records = history.records(search_index.table, source, "query", HISTORY_SHOWN)
        context.log.info(outcome.status)
        return Output(outcome, metadata={**_metadata(outcome, None, records, search_index, cfg),
                                         "latest_query": latest.isoformat()})

    table_vectors = table_sample(store.open(search_index.version), f"{store.name}@{search_index.version}",
                                 max_rows=cfg.max_rows, seed=cfg.seed, by_document=False)  # queries vs chunks
    table_vectors.label = f"table {store.name} v{search_index.version}"
    vs_corpus, corpus_status = _test(cfg, table_vectors, current)
    vs_previous, status = _test(cfg, previous, current)
    outcome.status = status if vs_previous else f"{status}; compared with the corpus only"
    notes = ""
    if vs_corpus is not None:
        auc = next(t.effect_size for t in vs_corpus.tests if t.name == "classifier")
        outcome.extra = {"corpus_p_value": vs_corpus.p_value, "corpus_auc": auc}
        notes = (f"\n## Queries against the corpus (coverage, not a decision)\n\n{markdown_summary(vs_corpus)}\n"
                 "Queries and passages are different kinds of text, so this comparison nearly always finds a "
                 "difference; follow its AUC over time: a rising AUC means queries move away from what the index "
                 "holds.\n")
    else:
        outcome.extra = {"corpus_status": corpus_status}
    if vs_previous is not None:
        outcome.drifted, outcome.p_value, outcome.decision = (vs_previous.drifted, vs_previous.p_value,
                                                              vs_previous.as_dict())
    history.append(DriftHistory.record("query", search_index.table, source, outcome.status, vs_previous,
                                       tag=search_index.tag, run_id=context.run.run_id,
                                       **{k: v for k, v in outcome.extra.items() if not isinstance(v, str)}))
    records = history.records(search_index.table, source, "query", HISTORY_SHOWN)
    folder = _folder(search_index, source)
    if vs_previous is not None:
        outcome.files = _write_reports(folder, "query_drift", f"Query drift: table {search_index.table}",
                                       vs_previous, previous, current, records, notes)
    elif vs_corpus is not None:
        outcome.files = _write_reports(folder, "query_drift", f"Query drift: table {search_index.table} "
                                       "(no earlier window: queries against the corpus only)", vs_corpus,
                                       table_vectors, current, records)
    _log_to_mlflow(context, mlflow.tracker, search_index, outcome.files, "drift/query")
    context.log.info(f"query drift: {outcome.status}" + (f", combined p {format_p(outcome.p_value)}"
                                                         if outcome.p_value is not None else ""))
    return Output(outcome, metadata={**_metadata(outcome, vs_previous, records, search_index, cfg),
                                     "latest_query": latest.isoformat()})


def _drift_check(**kwargs):
    """A non-blocking @asset_check partitioned by source like the assets (partitioned checks are a Dagster
    preview feature: its warning is silenced here)."""

    def decorate(fn):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=PreviewWarning)
            return asset_check(partitions_def=build_partitions, blocking=False, **kwargs)(fn)

    return decorate


def severity_result(outcome: DriftOutcome, cfg: DriftConfig) -> AssetCheckResult:
    """ERROR when the combined p < drift.error_p, WARN when p < drift.warn_p, else passed (also when untested)."""
    metadata: dict[str, Any] = {"status": outcome.status, "warn_p": cfg.warn_p, "error_p": cfg.error_p,
                                "drifted": outcome.drifted}
    if outcome.p_value is None:
        return AssetCheckResult(passed=True, metadata=metadata, description=f"not tested: {outcome.status}")
    p = float(outcome.p_value)
    metadata["p_value"] = p
    if outcome.decision:
        metadata["per_test_p"] = MetadataValue.json({t["name"]: t["p_value"] for t in outcome.decision["tests"]})
    if p < cfg.error_p:
        return AssetCheckResult(passed=False, severity=AssetCheckSeverity.ERROR, metadata=metadata,
                                description=f"{outcome.kind} drift: combined p {format_p(p)} < error_p {cfg.error_p:g}")
    if p < cfg.warn_p:
        return AssetCheckResult(passed=False, severity=AssetCheckSeverity.WARN, metadata=metadata,
                                description=f"{outcome.kind} drift: combined p {format_p(p)} < warn_p {cfg.warn_p:g}")
    return AssetCheckResult(passed=True, metadata=metadata,
                            description=f"no {outcome.kind} drift: combined p {format_p(p)} >= warn_p {cfg.warn_p:g}")


@_drift_check(asset="corpus_drift")
def corpus_drift_threshold(context: AssetCheckExecutionContext, corpus_drift: DriftOutcome,
                           project: ProjectResource) -> AssetCheckResult:
    """Combined p-value of the corpus drift tests against drift.warn_p (WARN) and drift.error_p (ERROR)."""
    return severity_result(corpus_drift, project.config.drift)


@_drift_check(asset="query_drift")
def query_drift_threshold(context: AssetCheckExecutionContext, query_drift: DriftOutcome,
                          project: ProjectResource) -> AssetCheckResult:
    """Combined p-value of this query window against the previous one, against drift.warn_p / drift.error_p."""
    return severity_result(query_drift, project.config.drift)
