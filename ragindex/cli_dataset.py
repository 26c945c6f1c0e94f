"""CLI: `dataset generate` (an evaluation set from any source) and `ask` (a grounded answer with citations)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ragindex.errors import ConfigError


def cmd_generate(args: argparse.Namespace) -> int:
    """Index the source (through Dagster, cached), generate rows from its chunks, publish the folder."""
    from pipelines.runner import run_index
    from ragindex.config import load_config
    from ragindex.datasets.pipeline import generate_and_publish
    from ragindex.index_store import IndexStore
    from ragindex.source_registry import resolve_source

    project = load_config(args.config)
    summary = run_index(args.config, args.source, args.name)
    source = resolve_source(project, summary["source"])
    table = IndexStore(project.index, args.name).open(summary["tag"])
    generators = [g.strip() for g in args.generators.split(",") if g.strip()]
    try:
        published, result = generate_and_publish(table, source, project.datasets, summary["tag"], generators,
                                                  args.n, Path(args.out) if args.out else None)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    for name, info in result.summary()["generators"].items():
        notes = "; ".join(info["notes"]) if info["notes"] else ""
        print(f"{name:8s} {info['rows']:5d} rows (lexical: {info['lexical']}) {notes}")
    print(f"{len(result.rows)} rows published to {published.folder} (version {published.version}); "
          f"evaluate with: ragindex evaluate --dataset {published.folder}")
    return 0


def cmd_ask(args: argparse.Namespace) -> int:
    """Retrieve, then answer through the configured endpoint or extractively, with numbered citations."""
    from ragindex.config import load_config
    from ragindex.embedding import load_embedder
    from ragindex.index_store import IndexStore
    from ragindex.llm.answer import answer_question
    from ragindex.llm.client import LLMClient
    from ragindex.paths import data_dir
    from ragindex.search import Retriever
    from ragindex.serving.resolve import serving_target

    project = load_config(args.config)
    target = serving_target(project, args.name)
    embedder = load_embedder(target.model, project.embedder.batch_size, project.embedder.device)
    retriever = Retriever(IndexStore(project.index, target.table), embedder, project.search)
    hits = retriever.search(args.question, "hybrid", args.k)
    client = LLMClient.from_env(cache_dir=data_dir() / "llm_cache")
    answer = answer_question(args.question, hits, client, embed=lambda texts: embedder.embed(texts))
    verdicts = None
    if args.judge:
        if client is None:
            raise ConfigError("--judge needs an LLM endpoint: set RAGINDEX_LLM_BASE_URL and RAGINDEX_LLM_MODEL")
        from ragindex.llm.answer import judge

        verdicts = judge(args.question, answer.text, [h.text for h in hits], client, repeats=args.repeats)
        judged = data_dir() / "judgements.jsonl"
        with judged.open("a", encoding="utf-8") as handle:  # raw verdicts kept for audit
            handle.write(json.dumps({"question": args.question, "answer": answer.text,
                                     **verdicts.as_dict()}, ensure_ascii=False) + "\n")
    if args.json:
        print(json.dumps({**answer.as_dict(), "judge": verdicts.as_dict() if verdicts else None}, indent=2,
                         ensure_ascii=False))
        return 0
    print(answer.text)
    print()
    for citation in answer.citations:
        print(f"[{citation.number}] {citation.doc_id} :: {citation.heading_path or citation.title} "
              f"(chunk {citation.chunk_id[:12]})")
    suffix = f" ({answer.error})" if answer.error else ""
    print(f"\n({answer.mode} answer{' by ' + answer.model if answer.model else ''}{suffix})")
    if verdicts:
        print(f"judge ({verdicts.repeats} repeats): faithfulness {verdicts.faithfulness}, "
              f"answer relevancy {verdicts.answer_relevancy}")
    return 0


def add_dataset_commands(sub: argparse._SubParsersAction) -> None:
    dataset = sub.add_parser("dataset", help="generated evaluation sets")
    dataset_sub = dataset.add_subparsers(dest="dataset_command", required=True)
    generate = dataset_sub.add_parser("generate", help="generate and publish an evaluation set from a source")
    generate.add_argument("--source", required=True, help="a configured source name, or a directory/BEIR folder")
    generate.add_argument("--generators", default="heading,cloze", help="comma list of heading, cloze, llm, qrels")
    generate.add_argument("--n", type=int, default=None, help="rows per generator (default: datasets.n)")
    generate.add_argument("--out", help="output folder (default: datasets.out or data/datasets)")
    generate.add_argument("--name", help="table name (default: index.table from the config)")
    generate.set_defaults(func=cmd_generate)

    ask = sub.add_parser("ask", help="answer a question from the index, with numbered citations")
    ask.add_argument("question")
    ask.add_argument("--k", type=int, default=5, help="chunks retrieved as context")
    ask.add_argument("--name", help="table name (default: index.table from the config)")
    ask.add_argument("--json", action="store_true")
    ask.add_argument("--judge", action="store_true", help="LLM-judged faithfulness and answer relevancy")
    ask.add_argument("--repeats", type=int, default=3, help="judge repeats averaged (at least 3)")
    ask.set_defaults(func=cmd_ask)
