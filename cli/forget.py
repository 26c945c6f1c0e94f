"""`ragindex forget`: erase one document from every index table and every version of it that can be served."""

from __future__ import annotations

import argparse
from contextlib import ExitStack
from pathlib import Path

from ragindex.errors import ConfigError


def _index_tables(store_cls, project, db, only: str | None) -> list:
    from ragindex.lance_tables import table_names

    names = sorted(table_names(db)) if only is None else [only]
    stores = [store_cls(db, project.index, name) for name in names if name in table_names(db)]
    return [s for s in stores if {"chunk_id", "doc_id", "source"} <= set(s.open().schema.names)]


def cmd_forget(args: argparse.Namespace) -> int:
    from ragindex.config import load_config
    from ragindex.forget import forget, holders, predicate
    from ragindex.index_store import IndexStore
    from ragindex.locks import writer_lock
    from ragindex.source_registry import watched_sources
    from ragindex.staging import StageStore
    from ragindex.storage import connect
    from ragindex_app.pipelines.resources import build_resources

    project = load_config(args.config)
    path = str(Path(args.path).expanduser().resolve()) if args.path else None
    where, label = predicate(args.doc, path), args.doc or path
    tracker = build_resources(project)["mlflow"].tracker
    stages = StageStore(project.storage.resolved_uri())
    found = []
    for store in _index_tables(IndexStore, project, connect(project.index.resolved_uri()), args.name):
        sources = holders(store, where)
        if not sources:
            continue
        with ExitStack() as locks:
            for source in sources:
                locks.enter_context(writer_lock(store.name, source, "forget", project.index.lock_timeout_s))
            found.append(forget(store, stages, tracker, where, sources, label))
    if not found:
        raise ConfigError(f"no version of any index table at {project.index.resolved_uri()} holds document {label}")
    for result in found:
        print("\n".join(result.lines()))
    by_name = {s.name: s for s in watched_sources(project)}
    for source in sorted({s for r in found for s in r.sources}):
        config = by_name.get(source)
        kept = config is not None and config.type == "directory" and (
            (args.doc and (config.resolved_path() / args.doc).exists()) or (path and Path(path).exists()))
        if kept:
            print(f"note: source '{source}' still has {label}: the next build indexes it again unless it is removed")
    return 0


def add_forget_command(sub) -> None:
    forget = sub.add_parser("forget", help="erase a document from every index table and every servable version")
    target = forget.add_mutually_exclusive_group(required=True)
    target.add_argument("--doc", help="document id (as in search results)")
    target.add_argument("--path", help="the document's file")
    forget.add_argument("--name", help="only this index table (default: every table at index.uri)")
    forget.set_defaults(func=cmd_forget)
