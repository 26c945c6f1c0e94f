"""CLI: `drift` — do two sets of embeddings come from the same distribution?

Each side is an index table (`TABLE`), a table at a version or tag (`TABLE@7`, `TABLE@docs-20250101T000000-v7`),
a source folder (Markdown / text / HTML tree, or a BEIR folder; chunked like a build and embedded through the
embedding cache), or a vectors Parquet file. Prints per test the statistic, p-value (raw and Holm-adjusted),
effect size and decision, then the combined decision; `--json` prints the same as JSON.

Rows are documents by default (`--unit document`: the mean of each document's chunk vectors), because chunks
of one document are alike and chunk rows would make any two sets of documents look different; `--unit chunk`
compares chunk rows (right when the two sides are random samples of chunks, e.g. queries or a BEIR corpus).

Vectors of two different models are never compared (exit 2, one line). `--probe` compares the two models
instead, on a fixed probe set of chunk texts from the reference side: kNN Jaccard@10, Spearman correlation of
pairwise similarities, and the latest evaluation metrics of both tables.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from ragindex.errors import ConfigError

EVAL_METRICS = ("ndcg@10", "recall@10", "mrr@10")


def add_drift_commands(sub: argparse._SubParsersAction) -> None:
    """Register the drift subcommand."""
    drift = sub.add_parser("drift", help="test whether two sets of embeddings differ (tables, versions, folders)",
                           description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    side = "TABLE, TABLE@VERSION_OR_TAG, a source folder (or BEIR folder), or a vectors .parquet file"
    drift.add_argument("--reference", required=True, help=f"the baseline: {side}")
    drift.add_argument("--current", required=True, help=f"what is tested against it: {side}")
    drift.add_argument("--json", action="store_true", help="print JSON")
    drift.add_argument("--alpha", type=float, help="decision level of the combined p-value (default: drift.alpha)")
    drift.add_argument("--max-samples", type=int, help="rows per side each test draws (default: drift.max_samples)")
    drift.add_argument("--max-rows", type=int, help="rows read per side (default: drift.max_rows)")
    drift.add_argument("--seed", type=int, help="sampling seed (default: drift.seed)")
    drift.add_argument("--unit", choices=["document", "chunk"],
                       help="compare one row per document (mean of its chunks) or per chunk (default: drift.unit)")
    drift.add_argument("--plot", help="also write the PNG (2-D PCA of reference vs current) here")
    drift.add_argument("--report", help="also write the Markdown summary here")
    drift.add_argument("--fail-on-drift", action="store_true", help="exit 1 when drift is detected")
    drift.add_argument("--probe", action="store_true",
                       help="when the sides come from different models, compare the models on a probe set instead")
    drift.add_argument("--probe-size", type=int, default=1000, help="probe texts sampled from the reference side")
    drift.add_argument("--reference-model", help="model of the reference side for --probe (name or directory)")
    drift.add_argument("--current-model", help="model of the current side for --probe (name or directory)")
    drift.set_defaults(func=cmd_drift)


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _model_mismatch(reference, current) -> str:
    return (f"reference {reference.label} was embedded by model {reference.fingerprint}, current {current.label} by "
            f"model {current.fingerprint}: distributions of two models are never compared; rerun with --probe to "
            "compare the models on a fixed probe set (kNN Jaccard@10, rank correlation of pairwise similarities, "
            "evaluation metrics)")


def cmd_drift(args: argparse.Namespace) -> int:
    from ragindex.config import load_config
    from ragindex.drift.report import markdown_summary, plot_drift
    from ragindex.drift.samples import as_unit
    from ragindex.drift.sides import load_side
    from ragindex.drift.two_sample import detect_drift
    from ragindex.embedding import configured_embedder
    from ragindex.index_store import IndexStore
    from ragindex.paths import DataLayout
    from ragindex.storage import connect

    project = load_config(args.config)
    cfg = project.drift
    alpha = cfg.alpha if args.alpha is None else args.alpha
    max_samples = args.max_samples or cfg.max_samples
    max_rows = args.max_rows or cfg.max_rows
    seed = cfg.seed if args.seed is None else args.seed
    unit = args.unit or cfg.unit
    if not 0 < alpha < 1:
        raise ConfigError(f"--alpha must be in (0, 1), got {alpha}")

    def embedder():
        return configured_embedder(project.embedder)

    quiet = None if args.json else _progress
    by_document = unit == "document"
    db = connect(project.index.resolved_uri())

    def open_table(name: str, version):
        return IndexStore(db, project.index, name).open(version)

    cache = DataLayout.current().embedding_cache
    reference = load_side(args.reference, open_table, project.chunker, embedder, cache, max_rows, seed,
                          with_text=args.probe, progress=quiet, by_document=by_document)
    current = load_side(args.current, open_table, project.chunker, embedder, cache, max_rows, seed, progress=quiet,
                        by_document=by_document)
    if reference.fingerprint and current.fingerprint and reference.fingerprint != current.fingerprint:
        if not args.probe:
            raise ConfigError(_model_mismatch(reference, current))
        return _probe(args, project, reference, current, seed)
    reference, current = as_unit(reference, unit), as_unit(current, unit)
    try:
        decision = detect_drift(reference.vectors, current.vectors, alpha, seed,
                                reference_fingerprint=reference.fingerprint, current_fingerprint=current.fingerprint,
                                max_samples=max_samples)
    except ValueError as error:  # too few rows, different dimensions
        raise ConfigError(str(error)) from None
    payload = drift_payload(decision, reference, current)
    if args.plot:
        plot_drift(reference.vectors, current.vectors, args.plot, alpha=alpha, seed=seed)
    if args.report:
        Path(args.report).write_text(markdown_summary(decision), encoding="utf-8")
    if args.json:
        print(json.dumps(payload, indent=2))
    else:
        print_decision(payload)
    return 1 if args.fail_on_drift and decision.drifted else 0


def drift_payload(decision, reference, current) -> dict[str, Any]:
    """The decision as JSON: both sides, each test with its Holm p and decision, and the combined verdict."""
    adjusted = decision.adjusted_p_values
    data = decision.as_dict()
    tests = []
    for test in data.pop("tests"):
        p_holm = adjusted[test["name"]]
        tests.append({**test, "p_holm": p_holm, "decision": "drift" if p_holm <= decision.alpha else "no drift"})
    data.pop("adjusted_p_values")
    return {"reference": reference.describe(), "current": current.describe(), **data, "tests": tests,
            "combined": {"p_value": float(decision.p_value), "alpha": float(decision.alpha),
                         "drifted": bool(decision.drifted), "decision": "drift" if decision.drifted else "no drift",
                         "correction": "holm"}}


def print_decision(payload: dict[str, Any]) -> None:
    from ragindex.drift.report import format_p

    for side in ("reference", "current"):
        info = payload[side]
        print(f"{side:9s}  {info['label']} ({info['rows']} {info['unit']} rows of {info['total']}, "
              f"model {info['fingerprint']})")
    print()
    print(f"{'test':12s}{'statistic':>12s}{'p-value':>11s}{'Holm p':>11s}   {'effect':38s}decision")
    for t in payload["tests"]:
        effect = f"{t['effect_label']} = {t['effect_size']:.3f}"
        print(f"{t['name']:12s}{t['statistic']:12.4g}{format_p(t['p_value']):>11s}{format_p(t['p_holm']):>11s}   "
              f"{effect:38s}{t['decision']}")
    combined = payload["combined"]
    print(f"{'combined':12s}{'':12s}{'':11s}{format_p(combined['p_value']):>11s}   {'(Holm over 3 tests)':38s}"
          f"{combined['decision'].upper() if combined['drifted'] else combined['decision']}")
    print(f"alpha {combined['alpha']:g}; {payload['n_reference']} reference vs {payload['n_current']} current rows; "
          f"{payload['seconds']:.1f} s")


def _embedder_for(fingerprint: str, candidates: list[str], project) -> Any:
    """The first candidate model whose fingerprint is `fingerprint`."""
    from ragindex.embedding import configured_embedder

    for model in dict.fromkeys(c for c in candidates if c):
        embedder = configured_embedder(project.embedder, model)
        if embedder.fingerprint.id == fingerprint:
            return embedder
    raise ConfigError(f"no known model has fingerprint {fingerprint}; name it with --reference-model / "
                      "--current-model (a packaged model name or a local model directory)")


def latest_evaluation(table: str) -> dict[str, Any] | None:
    """The newest evaluation metrics (per mode) of a table, from its evaluation folders' metrics.json."""
    from ragindex.paths import DataLayout

    folder = DataLayout.current().evaluation(table, "x").parent
    files = sorted(folder.glob("*/metrics.json"), key=lambda f: f.stat().st_mtime) if folder.is_dir() else []
    for file in reversed(files):
        payload = json.loads(file.read_text())
        if isinstance(payload.get("modes"), dict):
            return {"tag": file.parent.name, "dataset": payload.get("dataset"),
                    "modes": {mode: {m: values.get(m) for m in EVAL_METRICS}
                              for mode, values in payload["modes"].items()}}
    return None


def _probe(args: argparse.Namespace, project, reference, current, seed: int) -> int:
    from ragindex.drift.model_change import model_change_report
    from ragindex.drift.samples import sample_positions
    from ragindex.drift.sides import parse_side

    if not reference.texts:
        raise ConfigError(f"--probe needs texts on the reference side; {reference.label} has none "
                          "(use a table or a source folder)")
    candidates = [args.reference_model, args.current_model, project.embedder.model]
    embed_ref = _embedder_for(reference.fingerprint, candidates, project)
    embed_cur = _embedder_for(current.fingerprint, candidates, project)
    positions = sample_positions(len(reference.texts), args.probe_size, seed)
    probes = [reference.texts[i] for i in positions]
    report = model_change_report(probes, embed_ref.embed, embed_cur.embed, k=10, seed=seed)
    evaluations = {}
    for side, spec in (("reference", args.reference), ("current", args.current)):
        kind, name, _ = parse_side(spec)
        evaluations[side] = latest_evaluation(name) if kind == "table" else None
    payload = {"mode": "probe", "reason": "the two sides come from different models",
               "reference": {**reference.describe(), "model": embed_ref.fingerprint.as_dict()},
               "current": {**current.describe(), "model": embed_cur.fingerprint.as_dict()},
               "probe": {"source": reference.label, "seed": seed, **report}, "evaluation": evaluations}
    if args.json:
        print(json.dumps(payload, indent=2, default=_jsonable))
        return 0
    print(f"models differ: reference {embed_ref.fingerprint.name} ({reference.fingerprint}), "
          f"current {embed_cur.fingerprint.name} ({current.fingerprint}); comparing on {report['n_probes']} probe "
          f"texts from {reference.label}")
    print(f"kNN Jaccard@{report['k']}: mean {report['knn_jaccard_mean']:.3f}, median "
          f"{report['knn_jaccard_median']:.3f}, min {report['knn_jaccard_min']:.3f} (1 = same neighbours)")
    print(f"Spearman correlation of pairwise cosine similarities: {report['spearman_pairwise_cosine']:.3f} "
          f"over {report['n_pairs']} pairs")
    for side, info in evaluations.items():
        if info is None:
            print(f"{side}: no evaluation on record (run `ragindex evaluate` or an index run with judged queries)")
            continue
        cells = ", ".join(f"{mode} nDCG@10 {values['ndcg@10']:.3f}" for mode, values in info["modes"].items()
                          if values.get("ndcg@10") is not None)
        print(f"{side}: evaluation {info['tag']}: {cells}")
    return 0


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
