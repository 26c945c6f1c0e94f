"""The `ragindex` command line: build (through Dagster, so runs show in the UI), search, evaluate, roll back."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from ragindex.access import visible_where
from ragindex.config import SEARCH_MODES, ProjectConfig
from ragindex.errors import ConfigError
from ragindex.paths import PROJECT_ROOT
from ragindex_app.cli.checks import caller_groups, check_name, check_request, check_writable_file

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("DAGSTER_HOME", str(PROJECT_ROOT))


GROUPS_HELP = "your access groups, comma-separated (default: none, public chunks only)"


def _parse_filters(pairs: list[str]) -> dict[str, str]:
    filters = {}
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(f"--filter '{pair}': expected field=value")
        name, value = pair.split("=", 1)
        filters[name.strip()] = value
    return filters


def index_summary(run) -> dict:
    """What a build did, from its materialization metadata (the record the Dagster UI shows)."""
    docs, chunks, vectors, index = run["documents"], run["chunks"], run["embeddings"], run["search_index"]
    return {
        "source": run.source,
        "documents": {k: docs.get(f"documents_{k}", 0) for k in ("added", "modified", "deleted", "unchanged",
                                                                    "total")},
        "chunks": {"total": index.get("source_rows", chunks.get("chunks_total")), "new": chunks.get("chunks_written"),
                   "embedded": vectors.get("embedded"), "reused": vectors.get("reused"),
                   "deleted": index.get("deleted", 0)},
        "tokens": chunks.get("tokens"),
        "skipped": docs.get("skipped_list", []),
        "model_fingerprint": vectors.get("model_fingerprint"),
        "precision": vectors.get("precision"),
        "compute": vectors.get("compute"),
        "unchanged": index.get("unchanged"),
        "table": run.table,
        "version": index.get("version"),
        "tag": index.get("tag"),
        "rows": index.get("rows"),
        "dagster_run_id": run.run_id,
        "mlflow_run_id": index.get("mlflow_run_id"),
        "evaluation": run["evaluation"].get("metrics_json"),
        "evaluation_folder": run["evaluation"].get("folder"),
        "promotion": {k: run["champion"].get(k) for k in ("model", "version", "promoted", "reason")},
        "dataset": run["rag_dataset"].get("folder"),
        "dataset_evaluation": run["dataset_evaluation"].get("metrics_json"),
        "steps": [{"step": s, "seconds": round(t, 2)} for s, t in run.steps],
        "seconds": run.seconds,
    }


def _print_summary(summary: dict) -> None:
    d, c = summary["documents"], summary["chunks"]
    print(f"source {summary['source']}: {d['total']} documents "
          f"(added {d['added']}, modified {d['modified']}, deleted {d['deleted']}, unchanged {d['unchanged']})")
    if summary["unchanged"]:
        print(f"  unchanged: table {summary['table']} stays at tag {summary['tag']} (nothing embedded, no new "
              "version, no new model version)")
    else:
        print(f"  chunks: {c['total']} of the source in the table ({c['new']} new or changed, {c['embedded']} "
              f"embedded, {c['reused']} reused from cache, {c['deleted']} deleted); {summary['tokens']} tokens")
        fp = summary["model_fingerprint"] or {}
        if fp:
            print(f"  model: {fp['name']} dim {fp['dimension']} max_len {fp['max_length']} {fp['pooling']} pooling, "
                  f"fingerprint {fp['id']}, precision {summary['precision']}")
        print(f"  table: {summary['table']}, version {summary['version']}, tag {summary['tag']}")
    for step in summary["steps"]:  # one line per stage (assets and their checks), in the order they finished
        print(f"  {step['seconds']:6.1f} s  {step['step']}")
    print(f"  time: {summary['seconds']} s (Dagster run {summary['dagster_run_id']})")


def _print_evaluation(payload: dict, promotion: dict | None = None) -> None:
    print(f"{payload['dataset']}: {payload['n_queries']} queries scored; index {payload['index']['table']} "
          f"v{payload['index']['version']}")
    shown = ("ndcg@10", "recall@10", "recall@100", "mrr@10", "map@100", "hit@10")
    print(f"{'mode':12s}" + "".join(f"{m:>21s}" for m in shown) + f"{'p50 ms':>9s}{'p95 ms':>9s}")
    for mode, values in payload["confidence"].items():
        latency = payload["latency_ms"][mode]
        cells = "".join(f"{values[m]['mean']:7.3f} [{values[m]['ci_low']:.3f},{values[m]['ci_high']:.3f}]"
                        for m in shown)
        print(f"{mode:12s}{cells}{latency['p50']:9.1f}{latency['p95']:9.1f}")
    print(f"(mean [95% bootstrap interval], n = {payload['n_queries']} queries)")
    for mode, groups in (payload.get("by_generator") or {}).items():
        for group, info in groups.items():
            if group == "all" or not info["metrics"]:
                continue
            ndcg = info["metrics"]["ndcg@10"]
            lexical = " (lexical: favours keyword search)" if info["lexical"] else ""
            print(f"  {mode:11s} {group:8s} n={info['n']:3d} nDCG@10 {ndcg['mean']:.3f} "
                  f"[{ndcg['ci_low']:.3f}, {ndcg['ci_high']:.3f}]{lexical}")
    from ragindex.evaluation.fusion import FusionChoice
    from ragindex.evaluation.report import fusion_paragraph

    print(f"ann_recall@10 {payload['ann_recall@10']:.4f}; "
          + fusion_paragraph(FusionChoice.from_dict(payload["fusion"])).replace("**", ""))
    for problem in payload["problems"]:
        print(f"note: {problem}")
    if promotion and promotion.get("model"):
        print(f"MLflow run {payload['mlflow_run_id']}; {promotion['model']} v{promotion['version']}: "
              f"{promotion['reason']}")


def _index(args: argparse.Namespace, source: str, table: str | None = None) -> dict:
    from ragindex_app.pipelines.runner import run_index

    return index_summary(run_index(args.config, source, table, verbose=args.verbose))


def _warm_serving(args: argparse.Namespace, project: ProjectConfig) -> None:
    """Read what the table's champion serves through MLflow, which the build has imported, into the champion
    cache once the store has settled (a second after its last write): the first `ragindex search` after a build
    then imports no MLflow (3.8 s -> 1.8 s on a 2-core machine; ragindex/serving/champion_cache.py)."""
    from ragindex.paths import DataLayout
    from ragindex.serving.champion_cache import settle
    from ragindex.serving.resolve import serving_target
    from ragindex.tracking import Tracker

    layout = DataLayout.current()
    tracker = Tracker.current(layout)
    settle(tracker)
    serving_target(project, tracker, args.name, layout.champion_cache)


def cmd_index(args: argparse.Namespace) -> int:
    from ragindex.config import load_config

    summary = _index(args, args.source, args.name)
    _warm_serving(args, load_config(args.config))
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        _print_summary(summary)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """Build every configured source and print what was done (read from the runs' materializations)."""
    from ragindex.config import load_config

    start = time.perf_counter()
    project = load_config(args.config)
    for source in project.sources:
        summary = _index(args, source.name, args.name)
        _print_summary(summary)
        if summary["evaluation"]:
            _print_evaluation(summary["evaluation"], summary["promotion"])
        if summary["dataset"]:
            print(f"\ngenerated evaluation set: {summary['dataset']}")
        if summary["dataset_evaluation"]:
            _print_evaluation(summary["dataset_evaluation"])
    _warm_serving(args, project)
    print(f"done in {time.perf_counter() - start:.1f} s; try: ragindex search \"how does the with statement work\"")
    return 0


def _engines(args: argparse.Namespace):
    """The validated config and the resources that own the engines (the same the Dagster assets use)."""
    from ragindex.config import load_config
    from ragindex_app.pipelines.resources import build_resources

    project = load_config(args.config)
    return project, build_resources(project)


def retriever_for(args: argparse.Namespace, log_queries: bool = True, project: ProjectConfig | None = None):
    """The serving retriever of a logical table: the champion's table, model and fusion weight. Built from the
    config alone, without the Dagster resources: a search imports neither Dagster nor (champion cached) MLflow."""
    from ragindex.config import load_config
    from ragindex.embedding import configured_embedder
    from ragindex.index_store import IndexStore
    from ragindex.paths import DataLayout
    from ragindex.search import Retriever
    from ragindex.serving.resolve import serving_target
    from ragindex.tracking import Tracker

    project = project or load_config(args.config)
    layout = DataLayout.current()
    target = serving_target(project, Tracker.current(layout), args.name, layout.champion_cache)
    store = IndexStore.at(project.index, target.table)
    embedder = configured_embedder(project.embedder, target.model)
    version = getattr(args, "version", None)
    return Retriever(store, embedder, project.search, version=version, log_queries=log_queries,
                     fusion=target.fusion, groups=caller_groups(args.groups))


def cmd_search(args: argparse.Namespace) -> int:
    from ragindex.config import load_config

    filters = _parse_filters(args.filter)
    project = load_config(args.config)
    check_request(args.query, args.k, project.search.max_k)
    retriever = retriever_for(args, project=project)
    if args.modality == "text":
        hits = retriever.search(args.query, args.mode, args.k, filters, per_doc=args.per_doc, group_by=args.group_by)
    else:
        hits = _image_search(args, retriever, filters)
    if args.json:
        print(json.dumps([h.as_dict() for h in hits], indent=2, ensure_ascii=False))
        return 0
    for rank, hit in enumerate(hits, start=1):
        if hit.kind == "image" and not hasattr(hit, "chunk_id"):  # an image of the image table
            print(f"{rank:2d}. [{hit.score:.3f}] {hit.image_path} (image, in {hit.doc_id}) :: {hit.caption}")
            continue
        if args.group_by == "doc":
            print(f"{rank:2d}. [{hit.score:.3f}] {hit.doc_id} :: {hit.title}")
            for chunk in hit.chunks:
                print(f"      [{chunk.score:.3f}] {chunk.citation} :: {chunk.heading_path}")
            continue
        body = " ".join(hit.text.split())
        print(f"{rank:2d}. [{hit.score:.3f}] {hit.citation} :: {hit.heading_path or hit.title}"
              + (" (image)" if hit.kind == "image" else ""))
        print(f"    {body[:200]}{'…' if len(body) > 200 else ''}")
    if not hits:
        print("no results")
    return 0


def _image_search(args: argparse.Namespace, retriever, filters: dict[str, str]) -> list:
    """--modality image: the image table through the image model's text tower; all: fused with the text ranking."""
    from ragindex.vision.search import fuse_modalities, search_images
    from ragindex.vision.store import ImageStore

    project, resources = _engines(args)
    model = resources["embedder"].image_embedder()
    if model is None:
        raise ConfigError("--modality image|all needs embedder.image_model (a local CLIP or SigLIP model directory)")
    images = search_images(ImageStore(project.index, retriever.store.name), model, args.query, args.k,
                           filters.get("source"), retriever.visible_doc_ids())
    if args.modality == "image":
        return images
    return fuse_modalities(retriever.search(args.query, args.mode, args.k, filters, per_doc=args.per_doc), images,
                           args.k)


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Index a BEIR data set's corpus (cached) through the assets, evaluate every mode, write the JSON."""
    from ragindex.evaluation.beir import EvalDataError, load_beir, validate_corpus
    from ragindex_app.pipelines.runner import source_name

    groups = caller_groups(args.groups)
    if args.out:
        check_writable_file(Path(args.out))
    try:  # fail fast, before indexing, on a missing or malformed file
        load_beir(args.dataset)
        validate_corpus(args.dataset)
    except EvalDataError as error:
        raise ConfigError(str(error)) from None
    name = source_name(args.config, args.dataset)
    summary = _index(args, args.dataset, args.name or f"eval-{name}")
    payload = summary["evaluation"]
    if payload is None:
        raise ConfigError(f"{args.dataset}: the build was unchanged and no earlier evaluation is recorded; "
                          "delete the table or change --name to measure again")
    payload = _caller_view(args, summary, payload, groups)
    per_query = Path(summary["evaluation_folder"] or ".") / "per_query.json"
    if "per_query" not in payload and per_query.is_file():  # beside the report; the metadata has the means only
        payload = {**payload, "per_query": json.loads(per_query.read_text())}
    if args.out:
        Path(args.out).write_text(json.dumps(payload, indent=2))
    if args.json:
        print(json.dumps({k: v for k, v in payload.items() if k != "per_query"}, indent=2))
        return 0
    _print_evaluation(payload, summary["promotion"])
    if args.out:
        print(f"wrote {args.out}")
    return 0


def _caller_view(args: argparse.Namespace, summary: dict, payload: dict, groups: tuple[str, ...]) -> dict:
    """The build's evaluation (every chunk) when the caller sees every chunk of the table; otherwise the same
    queries measured again through the caller's groups, so no score reflects a chunk the caller may not see."""
    from ragindex.evaluation.measure import measure

    project, resources = _engines(args)
    store = resources["lancedb"].store(summary["table"])
    table = store.open(summary["tag"])
    hidden = table.count_rows(f"groups IS NULL OR NOT ({visible_where(groups)})")
    if not hidden:
        return payload
    out = Path(summary["evaluation_folder"]) / ("groups-" + "-".join(groups or ("public",)))
    _, view, _ = measure(store, summary["tag"], resources["embedder"].embedder(), Path(args.dataset), out,
                         project.search, project.evaluation, None, groups=groups)
    note = f"measured as a caller with groups {', '.join(groups) or '(none: public only)'}: {hidden} chunks hidden"
    return {**view, "problems": [*view["problems"], note]}


def cmd_rollback(args: argparse.Namespace) -> int:
    project, resources = _engines(args)
    name = args.model or project.serving.model_name
    try:
        result = resources["mlflow"].tracker.rollback(name)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    print(f"{name}: champion is now v{result.version} ({result.reason})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ragindex", description=__doc__)
    parser.add_argument("--config", help="YAML config (default: configs/default.yaml or $RAGINDEX_CONFIG)")
    parser.add_argument("--verbose", action="store_true", help="show Dagster's step logs and full tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="build every configured source and print a summary")
    run.add_argument("--name", help="table name (default: index.table from the config)")
    run.set_defaults(func=cmd_run)

    index = sub.add_parser("index", help="build or update the index for one source (a Dagster run)")
    index.add_argument("--source", required=True, help="a configured source name, or a directory/BEIR folder")
    index.add_argument("--name", help="table name (default: index.table from the config)")
    index.add_argument("--json", action="store_true", help="print a JSON summary")
    index.add_argument("--config", default=argparse.SUPPRESS, help="the global --config, also accepted here")
    index.set_defaults(func=cmd_index)

    search = sub.add_parser("search", help="search the index")
    search.add_argument("query")
    search.add_argument("--mode", default="hybrid", choices=SEARCH_MODES)
    search.add_argument("--k", type=int, default=10)
    search.add_argument("--filter", action="append", default=[], metavar="FIELD=VALUE",
                        help="metadata filter, repeatable (source, doc_id, title, path, format, heading_path)")
    search.add_argument("--name", help="table name (default: index.table from the config)")
    search.add_argument("--version", help="a table version number or tag to search")
    search.add_argument("--per-doc", type=int, default=None, metavar="N",
                        help="at most N chunks of one document (default: search.per_doc; 0 = no cap)")
    search.add_argument("--modality", choices=["text", "image", "all"], default="text",
                        help="image: images by their pixels (needs embedder.image_model); all: both, fused")
    search.add_argument("--group-by", choices=["chunk", "doc"], default="chunk",
                        help="doc: rank documents by their best chunk, each with its best chunks")
    search.add_argument("--json", action="store_true", help="machine-readable output")
    search.add_argument("--groups", help=GROUPS_HELP)
    search.set_defaults(func=cmd_search)
    evaluate = sub.add_parser("evaluate", help="index a BEIR data set and measure every search mode")
    evaluate.add_argument("--dataset", required=True, help="BEIR folder: corpus.jsonl, queries.jsonl, qrels/test.tsv")
    evaluate.add_argument("--out", help="write the metrics JSON here")
    evaluate.add_argument("--name", help="table name (default: eval-<dataset>)")
    evaluate.add_argument("--json", action="store_true", help="print the JSON instead of a table")
    evaluate.add_argument("--groups", help=GROUPS_HELP)
    evaluate.set_defaults(func=cmd_evaluate)

    rollback = sub.add_parser("rollback", help="move the champion alias back to the version it replaced")
    rollback.add_argument("--model", help="registered model name (default: serving.model_name)")
    rollback.set_defaults(func=cmd_rollback)

    from ragindex_app.cli.dataset import add_dataset_commands
    from ragindex_app.cli.drift import add_drift_commands
    from ragindex_app.cli.forget import add_forget_command

    add_dataset_commands(sub)
    add_drift_commands(sub)
    add_forget_command(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "version", None) and str(args.version).isdigit():
        args.version = int(args.version)
    from ragindex.errors import RunFailed

    try:
        if getattr(args, "name", None) is not None:
            check_name(args.name)
        return args.func(args)
    except (ConfigError, RunFailed) as error:
        if args.verbose:
            raise
        print(f"error: {error}", file=sys.stderr)
        return 2 if isinstance(error, ConfigError) else 1
    except BrokenPipeError:  # the reader left (`ragindex search ... | head`): stop quietly, as `cat` does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit's flush cannot fail again
        return 141  # 128 + SIGPIPE, what a shell reports for a writer killed by a closed pipe


if __name__ == "__main__":
    sys.exit(main())
