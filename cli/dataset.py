"""CLI: `dataset generate` (an evaluation set from any source) and `ask` (a grounded answer with citations)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ragindex.errors import ConfigError
from ragindex_app.cli.checks import check_request, check_writable_dir


def cmd_generate(args: argparse.Namespace) -> int:
    """Index the source (through Dagster, cached), generate rows from its chunks, publish the folder."""
    from ragindex.datasets.generators import GENERATORS
    from ragindex.datasets.pipeline import generate_and_publish
    from ragindex_app.cli.main import _engines
    from ragindex_app.pipelines.runner import run_index

    out = Path(args.out) if args.out else None
    if out is not None:
        check_writable_dir(out)
    generators = [g.strip() for g in args.generators.split(",") if g.strip()]
    unknown = sorted(set(generators) - set(GENERATORS)) or ([] if generators else [args.generators])
    if unknown:
        raise ConfigError(f"--generators: unknown {', '.join(map(repr, unknown))}; use {', '.join(GENERATORS)}")
    if args.n is not None and args.n < 1:
        raise ConfigError(f"--n: must be at least 1, not {args.n}")
    run = run_index(args.config, args.source, args.name, verbose=args.verbose)
    project, resources = _engines(args)
    source = resources["project"].source(run.source)
    table = resources["lancedb"].store(run.table).open(run["search_index"]["tag"])
    try:
        published, result = generate_and_publish(table, source, project.datasets, run["search_index"]["tag"],
                                                  generators, args.n, out)
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
    from ragindex.llm.answer import ask
    from ragindex.llm.client import LLMClient
    from ragindex.paths import DataLayout
    from ragindex_app.cli.main import retriever_for

    check_request(args.question, args.k, load_config(args.config).search.max_k)
    retriever = retriever_for(args)
    layout = DataLayout.current()
    client = LLMClient.from_env(cache_dir=layout.llm_cache)
    answer = ask(retriever, args.question, args.k, client, embed=lambda texts: retriever.embedder.embed(texts))
    verdicts = None
    if args.judge:
        if client is None:
            raise ConfigError("--judge needs an LLM endpoint: set RAGINDEX_LLM_BASE_URL and RAGINDEX_LLM_MODEL")
        from ragindex.llm.answer import judge

        verdicts = judge(args.question, answer.text, [c.text for c in answer.citations], client,
                         repeats=args.repeats)
        with layout.judgements.open("a", encoding="utf-8") as handle:  # raw verdicts kept for audit
            handle.write(json.dumps({"question": args.question, "answer": answer.text,
                                     **verdicts.as_dict()}, ensure_ascii=False) + "\n")
    if args.json:
        print(json.dumps({**answer.as_dict(), "judge": verdicts.as_dict() if verdicts else None}, indent=2,
                         ensure_ascii=False))
        return 0
    print(answer.text)
    print()
    for citation in answer.citations:
        print(f"[{citation.number}] {citation.label} (chunk {citation.chunk_id[:12]})")
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
    ask.add_argument("--groups", help="your access groups, comma-separated (default: none, public chunks only)")
    ask.set_defaults(func=cmd_ask)
