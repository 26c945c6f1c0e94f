"""Ranking benchmark (issue #15) on msmarco-5k and generated pydoc and lancedb-docs sets: every mode with intervals
per `per_doc` cap, the fusion served and why, the title flood before and after, `ask` context recall widened vs
plain, and title vectors (off against auto, the weight chosen and why). Writes benchmarks/out/ranking.md and .json.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_ranking.py [--sets pydoc,lancedb-docs,msmarco-5k]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections import Counter
from functools import partial
from pathlib import Path

import numpy as np
from lancedb.query import MultiMatchQuery
from machine_info import cpu_flags, cpu_model
from ranking_sets import ROOT, RankingSet, load_set, titled

from ragindex.config import SearchConfig
from ragindex.context import widen
from ragindex.datasets.generators import normalize_query
from ragindex.embedding import load_embedder
from ragindex.evaluation.beir import EvalSet
from ragindex.evaluation.fusion_cv import choose_fusion
from ragindex.evaluation.metrics import doc_scores_from_chunks, mean_metrics, per_query_metrics
from ragindex.evaluation.runner import confidence_intervals, evaluate
from ragindex.evaluation.statistics import bootstrap_ci
from ragindex.search import Retriever

CAPS = (0, 1, 2, 3)


def _ci(values: list[float]) -> str:
    mean, low, high = bootstrap_ci(values)
    return f"{mean:.3f} [{low:.3f}, {high:.3f}]"


def _by_generator(rs, result, modes: tuple[str, ...]) -> dict[str, dict]:
    """nDCG@10 of each mode over each generator's queries (with their count)."""
    by_gen = {}
    for gen in sorted(set(rs.evalset.generators.values())):
        qids = [q for q, g in rs.evalset.generators.items() if g == gen and q in result.per_query["dense"]]
        by_gen[gen] = {m: mean_metrics({q: result.per_query[m][q] for q in qids})["ndcg@10"] for m in modes} \
            | {"n": len(qids)}
    return by_gen


def _cell(ci: dict, mode: str) -> str:
    v = ci[mode]["ndcg@10"]
    return f"{v['mean']:.3f} [{v['ci_low']:.3f}, {v['ci_high']:.3f}]"


def modes_by_cap(rs: RankingSet, embedder) -> tuple[list[str], dict]:
    """nDCG@10 of every mode for each per_doc cap; hybrid is the served fusion (nested CV, floor, evidence)."""
    lines = ["| per_doc | dense | fts | hybrid (served) | served fusion | evidence | CV if lexical queries "
             "could choose |", "|---|---|---|---|---|---|---|"]
    data = {}
    lines_by_gen = []
    for cap in CAPS:
        result = evaluate(Retriever(rs.store, embedder, SearchConfig(per_doc=cap)), rs.evalset, rs.name,
                          unit=rs.unit)  # type: ignore[arg-type]
        ci = confidence_intervals(result.per_query)
        qrels = {q: rs.evalset.qrels[q] for q in rs.evalset.scored_query_ids}
        free = choose_fusion(result.runs["dense"], result.runs["fts"], qrels, margin=0.005).choice
        served = free.cv_scores["served"]
        lines.append(f"| {cap} | {_cell(ci, 'dense')} | {_cell(ci, 'fts')} | **{_cell(ci, 'hybrid')}** | "
                     f"{result.fusion.label} | {result.fusion.evidence} | {free.label}: {served['mean']:.3f} "
                     f"[{served['ci_low']:.3f}, {served['ci_high']:.3f}] |")
        by_gen = _by_generator(rs, result, ("dense", "fts", "hybrid"))
        lines_by_gen.append(f"| {cap} | " + " | ".join(
            f"{g}: {v['dense']:.3f} / {v['fts']:.3f} / {v['hybrid']:.3f}" for g, v in by_gen.items()) + " |")
        data[cap] = {"ci": {m: ci[m]["ndcg@10"] for m in ("dense", "dense_exact", "fts", "hybrid")},
                     "fusion": result.fusion.as_dict(), "free_choice": free.as_dict(), "by_generator": by_gen,
                     "latency_ms": result.latency_ms}
    if any(rs.evalset.generators.values()):
        lines += ["", "nDCG@10 per generator, dense / fts / hybrid (served):", "", "| per_doc | by generator |",
                  "|---|---|", *lines_by_gen]
    return lines, data


def _old_fts(table, query: str, k: int) -> list[dict]:
    """FTS as it ranked before issue #15: one multi-field match, the boosted title added to every chunk."""
    return (table.search(MultiMatchQuery(query, ["text", "title"], boosts=[1.0, 2.0]), query_type="fts")
            .select(["chunk_id", "doc_id", "_score"]).limit(k).to_list())


def title_flood(rs: RankingSet, embedder) -> tuple[list[str], dict]:
    """Chunks of one document in the FTS top 10 (max over documents; mean and worst over queries), and FTS
    nDCG@10: before (multi-field match), title once (per_doc=0) and with the default cap."""
    table = rs.store.open()
    qids = rs.evalset.scored_query_ids
    qrels = {q: rs.evalset.qrels[q] for q in qids}
    unit = "doc_id" if rs.unit == "doc" else "chunk_id"
    variants = {"before: title boosted on every chunk": lambda q: [
        (r["doc_id"], r[unit], r["_score"]) for r in _old_fts(table, q, 100)]}
    for cap in (0, SearchConfig().per_doc):
        retriever = Retriever(rs.store, embedder, SearchConfig(per_doc=cap))
        variants[f"title once, per_doc={cap}"] = lambda q, r=retriever: [
            (h.doc_id, getattr(h, unit), h.score) for h in r.search(q, "fts", 100)]
    lines = ["| FTS | chunks of one doc in top 10: mean | worst | queries with > 2 | nDCG@10 |",
             "|---|---|---|---|---|"]
    data = {}
    for name, search in variants.items():
        floods, run = [], {}
        for q in qids:
            hits = search(rs.evalset.queries[q])
            floods.append(max(Counter(d for d, _, _ in hits[:10]).values(), default=0))
            run[q] = doc_scores_from_chunks((u, s) for _, u, s in hits)
        ndcg = [v["ndcg@10"] for v in per_query_metrics(run, qrels).values()]
        lines.append(f"| {name} | {np.mean(floods):.2f} | {max(floods)} | {sum(f > 2 for f in floods)} | {_ci(ndcg)} |")
        data[name] = {"flood_mean": float(np.mean(floods)), "flood_max": max(floods), "ndcg@10": float(np.mean(ndcg))}
    return lines, data


def context_recall(rs: RankingSet, embedder, k: int = 5) -> tuple[list[str], dict]:
    """Share of cloze questions whose removed sentence is inside the context `ask` is given (searched on the
    masked table, the context read from the unmasked one): plain hits against hits widened in their section,
    with and without the per-document cap."""
    cloze = [r for r in rs.rows if r.generator == "cloze"]
    original = rs.original.open()
    table = original.to_arrow()
    texts = dict(zip(table.column("chunk_id").to_pylist(), table.column("text").to_pylist(), strict=True))
    tokens = dict(zip(table.column("chunk_id").to_pylist(), table.column("n_tokens").to_pylist(), strict=True))
    found: dict[str, list[float]] = {}
    used: dict[str, list[int]] = {}
    for cap in (0, SearchConfig().per_doc):
        retriever = Retriever(rs.store, embedder, SearchConfig(per_doc=cap))
        for row in cloze:
            key = normalize_query(row.query)
            five, ten = retriever.search(row.query, "hybrid", k), retriever.search(row.query, "hybrid", 2 * k)
            wide = widen(original, five, retriever.config.context_tokens, retriever.visible())
            for name, contexts, n_tokens in (
                    (f"plain, k={k}", [texts[h.chunk_id] for h in five], sum(tokens[h.chunk_id] for h in five)),
                    (f"plain, k={2 * k}", [texts[h.chunk_id] for h in ten], sum(tokens[h.chunk_id] for h in ten)),
                    (f"widened to {retriever.config.context_tokens} tokens, k={k}", [c.text for c in wide],
                     sum(c.n_tokens for c in wide))):
                found.setdefault(f"{name}, per_doc={cap}", []).append(
                    float(any(key in normalize_query(t) for t in contexts)))
                used.setdefault(f"{name}, per_doc={cap}", []).append(n_tokens)
    lines = [f"| context given to ask (n = {len(cloze)} cloze questions) | answer sentence inside | tokens (mean) |",
             "|---|---|---|"]
    lines += [f"| {name} | {_ci(v)} | {np.mean(used[name]):.0f} |" for name, v in found.items()]
    return lines, {name: float(np.mean(v)) for name, v in found.items()}


def title_vectors(rs: RankingSet, embedder, uri: Path) -> tuple[list[str], dict]:
    """Every mode without and with title vectors (per_doc=0): the weight as the served rule chooses it (lexical
    queries may not move it from 0), and as CV would choose it if the set's lexical queries counted as evidence."""
    plain = Retriever(rs.store, embedder, SearchConfig(per_doc=0))
    titled_store = titled(rs, uri, embedder)
    titled_retriever = Retriever(titled_store, embedder, SearchConfig(per_doc=0))
    as_evidence = EvalSet(rs.evalset.queries, rs.evalset.qrels, problems=rs.evalset.problems)
    variants = {"without title vectors": (plain, rs.evalset), "title vectors, auto (served rule)":
                (titled_retriever, rs.evalset)}
    if any(rs.evalset.generators.values()):
        variants["title vectors, auto, lexical queries as evidence"] = (titled_retriever, as_evidence)
    lines = ["| variant | dense | fts | hybrid as served | served | title weight | weight evidence | "
             "dense nDCG@10 per fixed weight | fold choices |", "|---|---|---|---|---|---|---|---|---|"]
    data = {}
    for name, (retriever, evalset) in variants.items():
        result = evaluate(retriever, evalset, rs.name, unit=rs.unit)  # type: ignore[arg-type]
        ci = confidence_intervals(result.per_query)
        titles = result.fusion.details.get("titles", {})
        details = titles.get("details", {})
        measured = ", ".join(f"{w}: {v['mean']:.3f}" for w, v in details.get("measured", {}).items())
        folds = ", ".join(f"{w:g}" for w in details.get("fold_choices", [])) or "-"
        lines.append(f"| {name} | {_cell(ci, 'dense')} | {_cell(ci, 'fts')} | **{_cell(ci, 'hybrid')}** | "
                     f"{result.fusion.label} | {result.fusion.title_weight:g} | {titles.get('evidence', '-')} | "
                     f"{measured or '-'} | {folds} |")
        by_gen = _by_generator(rs, result, ("dense", "hybrid"))
        data[name] = {"ci": {m: ci[m]["ndcg@10"] for m in ("dense", "dense_exact", "fts", "hybrid")},
                      "fusion": result.fusion.as_dict(), "latency_ms": result.latency_ms, "by_generator": by_gen}
    if any(d["by_generator"] for d in data.values()):
        lines += ["", "nDCG@10 per generator, dense / hybrid:", "", "| variant | by generator |", "|---|---|"]
        lines += [f"| {name} | " + "; ".join(f"{g}: {v['dense']:.3f} / {v['hybrid']:.3f}"
                                             for g, v in d["by_generator"].items()) + " |" for name, d in data.items()]
    return lines, data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sets", default="msmarco-5k,pydoc,lancedb-docs")
    parser.add_argument("--parts", default="modes,flood,context,titles", help="which measurements to run")
    parser.add_argument("--work", default=str(ROOT / "benchmarks" / "out" / "ranking"))
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "ranking.md"))
    args = parser.parse_args()
    embedder = load_embedder()
    start = time.perf_counter()
    load = os.getloadavg()[0]
    report = [f"{cpu_model()} ({cpu_flags()}), {os.cpu_count()} cores, Python {platform.python_version()}; "
              f"load average {load:.1f} at start.", ""]
    data = {}
    for name in args.sets.split(","):
        rs = load_set(name, Path(args.work) / "lancedb", embedder)
        n = len(rs.evalset.scored_query_ids)
        report += [f"### {name} ({n} queries, {rs.store.count()} chunks, relevance judged per {rs.unit})", ""]
        uri = Path(args.work) / "lancedb"
        parts = {"modes": modes_by_cap, "flood": title_flood, "titles": partial(title_vectors, uri=uri)}
        if rs.unit == "chunk":
            parts["context"] = context_recall
        parts = {k: v for k, v in parts.items() if k in args.parts.split(",")}
        data[name] = {}
        for part, measure in parts.items():
            lines, data[name][part] = measure(rs, embedder)
            report += [*lines, ""]
            print("\n".join(lines), flush=True)
    report.append(f"Total {time.perf_counter() - start:.0f} s; load average {os.getloadavg()[0]:.1f} at the end.")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(report) + "\n")
    Path(args.out).with_suffix(".json").write_text(json.dumps(data, indent=2, default=str))
    print("\n".join(report))


if __name__ == "__main__":
    main()
