"""What the drift tests say on real documentation: lancedb-docs 2024-12-31 against 2025-05-31, and random halves of
one snapshot.

Both snapshots are chunked like a build (the chunker settings of the config) and embedded through the
embedding cache (the configured model), so a second run costs no model time. Each scenario is tested on chunk
rows and on document rows (the normalised mean of a document's chunk vectors, `drift.unit: document`):

* full snapshots: every document of 2024-12-31 against every document of 2025-05-31 (most are unchanged);
* changed batch: 2024-12-31 (the source as served) against the documents that are new or modified in
  2025-05-31 (what an incremental build embeds, and what `corpus_drift` tests);
* added documents: 2024-12-31 against the documents 2025-05-31 adds;
* random halves of 2025-05-31 split by chunk (exchangeable chunk rows: the null holds exactly, chunk rows only);
* random halves of 2025-05-31 split by document (a realistic "nothing changed": whole documents on each side).

Prints a Markdown table (per test: statistic, p-value, effect; combined Holm p and decision) and writes it to
benchmarks/out/drift_real.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from ragindex.config import load_config  # noqa: E402
from ragindex.documents import Document  # noqa: E402
from ragindex.drift.report import format_p  # noqa: E402
from ragindex.drift.samples import Sample, as_unit  # noqa: E402
from ragindex.drift.two_sample import detect_drift  # noqa: E402
from ragindex.embedding import load_embedder  # noqa: E402
from ragindex.embedding_cache import EmbeddingCache, embed_through_cache  # noqa: E402
from ragindex.paths import DataLayout  # noqa: E402
from ragindex.source_registry import adhoc_source  # noqa: E402
from ragindex.sources import read_source  # noqa: E402

CORPORA = ROOT.parent / "shared" / "corpora" / "lancedb-docs"
OUT = ROOT / "benchmarks" / "out" / "drift_real.md"


def snapshot(folder: Path, chunker, embedder) -> dict:
    """Documents (doc id -> content hash), chunks in (doc, position) order and their vectors."""
    start = time.perf_counter()
    docs = [d for d in read_source(adhoc_source(folder)) if isinstance(d, Document)]
    chunks = sorted((c for d in docs for c in chunker.chunk(d)), key=lambda c: (c.doc_id, c.position))
    cache = EmbeddingCache(str(DataLayout.current().embedding_cache), embedder.fingerprint.id, embedder.dimension)
    vectors = embed_through_cache([c.text for c in chunks], [c.text_hash for c in chunks], lambda: embedder, cache,
                                  lambda done, total: print(f"  {folder.name}: embedded {done}/{total} new texts",
                                                            file=sys.stderr, flush=True))
    print(f"{folder.name}: {len(docs)} documents, {len(chunks)} chunks in {time.perf_counter() - start:.1f} s",
          file=sys.stderr)
    return {"docs": {d.doc_id: d.content_hash for d in docs}, "doc_of": np.array([c.doc_id for c in chunks]),
            "vectors": vectors}


def halves_by_chunk(n: int, seed: int) -> np.ndarray:
    mask = np.zeros(n, dtype=bool)
    mask[np.random.default_rng(seed).choice(n, size=n // 2, replace=False)] = True
    return mask


def halves_by_document(doc_of: np.ndarray, seed: int) -> np.ndarray:
    docs = np.unique(doc_of)
    chosen = set(np.random.default_rng(seed).choice(docs, size=len(docs) // 2, replace=False).tolist())
    return np.array([d in chosen for d in doc_of])


def side(data: dict, mask: np.ndarray | None, unit: str) -> np.ndarray:
    vectors, docs = (data["vectors"], data["doc_of"]) if mask is None else (data["vectors"][mask], data["doc_of"][mask])
    sample = Sample("", vectors, None, len(vectors), groups=docs.tolist())
    return as_unit(sample, unit).vectors


def row(name: str, unit: str, X: np.ndarray, Y: np.ndarray, alpha: float) -> tuple[str, dict]:
    decision = detect_drift(X, Y, alpha=alpha, seed=0)
    cells = [f"{t.statistic:.3g} / {format_p(t.p_value)} / {t.effect_size:.3f}" for t in decision.tests]
    verdict = "**DRIFT**" if decision.drifted else "no drift"
    line = (f"| {name} | {unit} | {len(X)} vs {len(Y)} | {' | '.join(cells)} | {format_p(decision.p_value)} "
            f"| {verdict} |")
    return line, {"name": name, "unit": unit, "p": decision.p_value, "drifted": decision.drifted,
                  "seconds": decision.seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="config whose chunker, embedder and drift.alpha are used")
    parser.add_argument("--reference", default="2024-12-31")
    parser.add_argument("--current", default="2025-05-31")
    parser.add_argument("--seeds", type=int, default=5, help="seeds of the random-halves scenarios")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    from ragindex.chunking import make_chunker

    project = load_config(args.config)
    alpha = project.drift.alpha
    embedder = load_embedder(project.embedder.model, project.embedder.batch_size, project.embedder.device)
    chunker = make_chunker(project.chunker, embedder)
    old = snapshot(CORPORA / args.reference, chunker, embedder)
    new = snapshot(CORPORA / args.current, chunker, embedder)
    changed_docs = {d for d, h in new["docs"].items() if old["docs"].get(d) != h}
    added_docs = {d for d in new["docs"] if d not in old["docs"]}
    batch = np.isin(new["doc_of"], sorted(changed_docs))
    added = np.isin(new["doc_of"], sorted(added_docs))
    deleted = sum(1 for d in old["docs"] if d not in new["docs"])

    scenarios = []  # (name, units, reference (data, mask), current (data, mask))
    both = ("chunk", "document")
    scenarios.append((f"full snapshots {args.reference} vs {args.current}", both, (old, None), (new, None)))
    scenarios.append((f"changed batch: {args.reference} vs new + modified docs of {args.current}", both,
                      (old, None), (new, batch)))
    scenarios.append((f"added docs: {args.reference} vs docs new in {args.current}", both, (old, None), (new, added)))
    for seed in range(args.seeds):
        mask = halves_by_chunk(len(new["vectors"]), seed)
        scenarios.append((f"{args.current} halves by chunk, seed {seed}", ("chunk",), (new, mask), (new, ~mask)))
    for seed in range(args.seeds):
        mask = halves_by_document(new["doc_of"], seed)
        scenarios.append((f"{args.current} halves by document, seed {seed}", both, (new, mask), (new, ~mask)))

    table = ["| Scenario | Unit | Rows | Classifier z / p / AUC | MMD² / p / centroid shift | "
             "PCA-KS D / p / share drifted | Combined Holm p | Decision |",
             "|---|---|---:|---|---|---|---:|---|"]
    summary = []
    for name, units, (ref, ref_mask), (cur, cur_mask) in scenarios:
        for unit in units:
            line, info = row(name, unit, side(ref, ref_mask, unit), side(cur, cur_mask, unit), alpha)
            table.append(line)
            summary.append(info)
            print(f"{name} [{unit}]: combined p {format_p(info['p'])} ({'DRIFT' if info['drifted'] else 'no drift'})",
                  file=sys.stderr)

    fp = embedder.fingerprint
    header = [
        f"# Drift tests on lancedb-docs: {args.reference} vs {args.current}, and random halves",
        "",
        f"Model {fp.name} (fingerprint {fp.id}, dim {fp.dimension}); chunker max_tokens "
        f"{project.chunker.max_tokens}, overlap {project.chunker.overlap_tokens}. "
        f"{args.reference}: {len(old['docs'])} documents, {len(old['vectors'])} chunks; {args.current}: "
        f"{len(new['docs'])} documents, {len(new['vectors'])} chunks ({len(added_docs)} documents added, "
        f"{len(changed_docs) - len(added_docs)} modified, {deleted} deleted; the changed batch has "
        f"{int(batch.sum())} chunks).",
        "",
        "Each test cell: statistic / p-value (raw) / effect size. Document rows: the normalised mean of a "
        "document's chunk vectors. detect_drift defaults (max_samples 5000, 2000 permutations, 256 Fourier "
        f"features, 10 components, seed 0); decision at alpha {alpha:g} (drift.alpha) on the Holm-combined p. "
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}.",
        "",
    ]

    def flagged(kind: str, unit: str) -> str:
        runs = [s for s in summary if kind in s["name"] and s["unit"] == unit]
        return f"{sum(s['drifted'] for s in runs)} of {len(runs)}"

    footer = [
        "",
        f"False alarms on random halves (alpha {alpha:g}): split by chunk, chunk rows {flagged('by chunk', 'chunk')}; "
        f"split by document, chunk rows {flagged('by document', 'chunk')}, document rows "
        f"{flagged('by document', 'document')}. Median test time {np.median([s['seconds'] for s in summary]):.1f} s.",
    ]
    text = "\n".join(header + table + footer) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
