"""Access control: groups resolved per document, stored on every chunk, enforced in every search path."""

from __future__ import annotations

from pathlib import Path

import pytest

from ragindex.access import AccessPolicy, parse_groups, split_front_matter, visible_where
from ragindex.build import build_source
from ragindex.chunking import make_chunker
from ragindex.config import AccessConfig, AnnConfig, ChunkerConfig, IndexConfig, SearchConfig, SourceConfig
from ragindex.context import widen
from ragindex.documents import Document
from ragindex.embedding_cache import EmbeddingCache
from ragindex.errors import ConfigError
from ragindex.index_store import IndexStore
from ragindex.llm.answer import ask
from ragindex.search import MODES, Retriever
from ragindex.staging import StageStore
from ragindex.storage import connect

QUOTED = "fin'an\"ce"  # a group name with both quote characters
SECRET = "The merger with Northwind closes on the ninth of March at a price of forty dollars."
RULES = AccessConfig(default="public", rules=[{"glob": "hr/*", "groups": ["hr"]},
                                              {"glob": "vault/*", "groups": [QUOTED]}])
MODES_AND_INDEXES = [*MODES, "ann"]


def _write(root: Path, name: str, text: str) -> None:
    (root / name).parent.mkdir(parents=True, exist_ok=True)
    (root / name).write_text(text, encoding="utf-8")


def _corpus(root: Path) -> Path:
    _write(root, "finance.md", f"---\naccess: [finance]\ntitle: Deal\n---\n# Merger\n\n{SECRET}\n")
    _write(root, "hr/salaries.md", "# Salaries\n\nThe merger bonus for the keeper is paid in March.\n")
    _write(root, "vault/merger.md", f"# Vault\n\nNorthwind merger notes: {SECRET}\n")
    _write(root, "public.md", "# Lighthouse\n\nThe keeper winds the brass clockwork every evening at dusk.\n")
    for i in range(300):  # enough rows for an ANN index (ann.min_rows floor is 256)
        _write(root, f"filler/{i:03d}.md", f"# Note {i}\n\nShip {i} passed the cape at night with cargo {i * 7}.\n")
    return root


class Build:
    """One source built through the real steps (staging, chunking, embedding cache, index) in a temp folder."""

    def __init__(self, root: Path, corpus: Path, embedder, access: AccessConfig = RULES):
        self.embedder, self.access, self.corpus = embedder, access, corpus
        self.config = IndexConfig(uri=str(root / "lancedb"), ann=AnnConfig(min_rows=256, index_type="IVF_FLAT"),
                                  confirm_deletions=True)
        self.stages = StageStore(str(root / "staging"))
        self.store = IndexStore(connect(self.config.resolved_uri()), self.config)
        self.cache = EmbeddingCache(str(root / "cache"), embedder.fingerprint.id, embedder.dimension)
        self.chunker = make_chunker(ChunkerConfig(max_tokens=64, overlap_tokens=8), embedder)

    def run(self, run_id: str, access: AccessConfig | None = None):
        source = SourceConfig(name="docs", type="directory", path=str(self.corpus), access=access or self.access)
        return build_source(source, self.stages, self.store, self.chunker, self.cache, lambda: self.embedder,
                            self.embedder.fingerprint.as_dict(), run_id)

    def retriever(self, groups=(), **kwargs) -> Retriever:
        return Retriever(self.store, self.embedder, SearchConfig(per_doc=0), groups=groups, **kwargs)


@pytest.fixture(scope="module")
def build(embedder, tmp_path_factory) -> Build:
    root = tmp_path_factory.mktemp("acl")
    made = Build(root, _corpus(root / "corpus"), embedder)
    made.tag = made.run("first").tag
    assert made.store.has_ann()
    return made


def _docs(retriever: Retriever, query: str, mode: str, **kwargs) -> set[str]:
    if mode == "ann":  # dense through the ANN index, the served path
        assert retriever.has_ann
        mode = "dense"
    return {h.doc_id for h in retriever.search(query, mode, 50, **kwargs)}


def test_front_matter_rules_and_default_resolve_groups() -> None:
    body, groups, problem = split_front_matter("---\naccess: [b, a]\n---\n# T\n\ntext\n")
    assert (body, groups, problem) == ("# T\n\ntext\n", ("a", "b"), None)
    assert split_front_matter("---\naccess: finance\n---\nx") == ("x", ("finance",), None)
    assert split_front_matter("---\ntitle: t\n---\nx") == ("x", None, None)  # stripped, declares nothing
    assert split_front_matter("no front matter") == ("no front matter", None, None)
    assert split_front_matter("---\naccess: [a, [b]]\n---\nx")[1:2] == ((),)  # unreadable: no caller sees it
    assert split_front_matter("---\naccess: [a\n---\nx")[1] == ()
    policy = AccessPolicy(RULES)
    assert policy.groups_for("hr/x.md", None) == ("hr",) and policy.groups_for("hr/x.md", ("eng",)) == ("eng",)
    assert policy.groups_for("other.md", None) == ("public",)
    assert AccessPolicy(AccessConfig(default="deny")).groups_for("other.md", None) == ()
    doc = Document("a.md", "s", "t", "h", "a", "a.md", 1, 0.0, "markdown")
    assert policy.apply(doc).content_hash != AccessPolicy(AccessConfig(default="deny")).apply(doc).content_hash


def test_caller_groups_are_parsed_strictly_and_quoted() -> None:
    assert parse_groups(None) == () and parse_groups("b, a") == ("a", "b") and parse_groups([QUOTED]) == (QUOTED,)
    for bad in ("", ",", "a,,b", " ", ["a", ""], [3]):
        with pytest.raises(ValueError, match="bad access group"):
            parse_groups(bad)
    assert visible_where([QUOTED]) == "array_has_any(groups, ['fin''an\"ce', 'public'])"


def test_every_chunk_row_stores_its_groups_and_front_matter_is_stripped(build) -> None:
    rows = build.store.open().to_arrow().select(["doc_id", "groups", "text"]).to_pylist()
    groups = {r["doc_id"]: tuple(r["groups"]) for r in rows}
    assert groups["finance.md"] == ("finance",) and groups["hr/salaries.md"] == ("hr",)
    assert groups["vault/merger.md"] == (QUOTED,) and groups["public.md"] == ("public",)
    assert all(r["groups"] is not None for r in rows)
    assert not any("access:" in r["text"] for r in rows)


@pytest.mark.parametrize("mode", MODES_AND_INDEXES)
def test_no_mode_returns_a_chunk_outside_the_callers_groups(build, mode) -> None:
    query = "Northwind merger closes in March bonus"
    restricted = {"finance.md", "hr/salaries.md", "vault/merger.md"}
    assert not _docs(build.retriever(), query, mode) & restricted  # no groups: public only
    assert not _docs(build.retriever(("eng",)), query, mode) & restricted
    assert _docs(build.retriever(("finance",)), query, mode) & restricted == {"finance.md"}
    assert _docs(build.retriever(("finance", "hr")), query, mode) & restricted == {"finance.md", "hr/salaries.md"}
    assert _docs(build.retriever((QUOTED,)), query, mode) & restricted == {"vault/merger.md"}
    assert _docs(build.retriever(("fin'an",)), query, mode) & restricted == set()  # a prefix is another group
    assert _docs(build.retriever(), query, mode, groups=("hr",)) & restricted == {"hr/salaries.md"}  # per call
    assert _docs(build.retriever(unrestricted=True), query, mode) >= restricted


@pytest.mark.parametrize("mode", ["fts", "hybrid", "ann"])
def test_filters_cannot_widen_access(build, mode) -> None:
    retriever = build.retriever(("eng",))
    for value in ("x' OR '1'='1", "finance.md' OR doc_id = 'finance.md", "') OR (1=1", "finance.md"):
        assert "finance.md" not in _docs(retriever, "Northwind merger", mode, filters={"doc_id": value})
    with pytest.raises(ConfigError, match="unknown filter field"):
        retriever.search("merger", mode if mode != "ann" else "dense", 5, filters={"groups": "finance"})
    with pytest.raises(ConfigError, match="unknown filter field"):
        retriever.search("merger", "fts", 5, filters={"1=1 OR source": "docs"})
    assert _docs(build.retriever(("finance",)), "Northwind merger", mode, filters={"doc_id": "finance.md"}) \
        == {"finance.md"}


def test_ask_never_quotes_a_hidden_chunk(build) -> None:
    answer = ask(build.retriever(("eng",)), "When does the Northwind merger close?", k=5)
    assert SECRET not in answer.text and all(c.doc_id == "public.md" or c.doc_id.startswith("filler/")
                                             for c in answer.citations)
    finance = build.retriever(("finance",))
    hit = next(h for h in finance.search("Northwind merger", "fts", 5) if h.doc_id == "finance.md")
    [alone] = widen(finance.table, [hit], 10_000, build.retriever(("eng",)).visible())
    assert alone.chunk_ids == (hit.chunk_id,)  # no neighbour the eng caller may not see joins the hit


def test_access_change_reindexes_the_document_and_old_versions_keep_their_rule(build, tmp_path) -> None:
    old_tag = build.tag
    opened = RULES.model_copy(update={"rules": [RULES.rules[1]]})  # hr/* is no longer restricted
    result = build.run("second", access=opened)
    assert result.inserted and result.deleted  # the text did not change; the access (and so the chunk ids) did
    eng = build.retriever(("eng",))
    assert "hr/salaries.md" in _docs(eng, "merger bonus keeper", "fts")
    then = Retriever(build.store, build.embedder, SearchConfig(per_doc=0), version=old_tag, groups=("eng",))
    assert "hr/salaries.md" not in _docs(then, "merger bonus keeper", "fts")
    build.tag = build.run("third").tag  # back to the module's rules for the other tests
    assert "hr/salaries.md" not in _docs(build.retriever(("eng",)), "merger bonus keeper", "fts")


def test_served_model_validates_rows_and_applies_groups(build) -> None:
    from ragindex.serving.retriever_model import RetrieverModel

    model = RetrieverModel()
    model.retriever = build.retriever()
    [public, finance] = model.predict(None, [{"query": "Northwind merger", "k": 20, "mode": "fts"},
                                             {"query": "Northwind merger", "groups": "finance", "mode": "fts"}])
    assert "finance.md" not in {h["doc_id"] for h in public} and "finance.md" in {h["doc_id"] for h in finance}
    bad = [{"k": 3}, {"query": None}, {"query": "x", "k": "five"}, {"query": "  "}, {"query": "x", "k": 0},
           {"query": "x", "k": 10**9}, {"query": "x", "groups": ""}, {"query": "x", "mode": "magic"},
           {"query": "x", "colour": "red"}, {"query": "fine"}]
    with pytest.raises(ValueError) as error:
        model.predict(None, bad)
    lines = str(error.value).splitlines()
    assert lines[0] == "9 bad input row(s):" and len(lines) == 10
    for line, why in zip(lines[1:], ["query is missing", "query is missing", "k must be an integer",
                                     "query is empty", "between 1 and 1000", "between 1 and 1000",
                                     "bad access group", "mode must be one of", "unknown field"], strict=True):
        assert why in line


def test_registered_model_has_the_full_signature_and_serves_by_groups(build, tmp_path) -> None:
    import mlflow
    import pandas as pd
    from mlflow.exceptions import MlflowException

    from ragindex.tracking import Tracker

    tracker = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", str(tmp_path / "artifacts"))
    run_id = tracker.start_build_run("acl", {}, {}, {})
    config = {"uri": build.config.resolved_uri(), "table": build.store.name, "tag": build.tag,
              "model": "all-MiniLM-L6-v2", "fingerprint": build.embedder.fingerprint.id, "fts_title_boost": 2.0,
              "ann": build.config.ann.model_dump(), "search": SearchConfig(per_doc=0).model_dump(), "fusion": None}
    version = tracker.register_retriever(run_id, "acl-retriever", config)
    model = mlflow.pyfunc.load_model(tracker.client.get_model_version("acl-retriever", version).source)
    schema = model.metadata.get_input_schema().inputs
    inputs = {c.name: (str(c.type).removeprefix("DataType."), c.required) for c in schema}
    assert inputs == {"query": ("string", True), "k": ("long", False), "mode": ("string", False),
                      "per_doc": ("long", False), "group_by": ("string", False),
                      "groups": ("Array(string)", False)}
    rows = pd.DataFrame([{"query": "Northwind merger", "k": 20, "mode": "fts", "groups": ["eng"]},
                         {"query": "Northwind merger", "k": 20, "mode": "fts", "groups": ["finance"]}])
    eng, finance = model.predict(rows)
    assert "finance.md" not in {h["doc_id"] for h in eng} and "finance.md" in {h["doc_id"] for h in finance}
    with pytest.raises(MlflowException, match="missing inputs \\['query'\\]"):
        model.predict(pd.DataFrame([{"k": 3}]))
    with pytest.raises(ValueError, match="row 0: query is missing\nrow 1: k must be between 1 and 1000"):
        model.predict(pd.DataFrame([{"query": None, "k": 3}, {"query": "x", "k": 5000}]))


def test_a_filter_that_passes_every_row_is_dropped_only_for_that_version(embedder, tmp_path) -> None:
    """A caller who may see every row of a version searches without the groups scan; once a newer version (the
    retriever's table moved to it) holds a row the caller may not see, the filter is back."""
    corpus = tmp_path / "corpus"
    _write(corpus, "public.md", "# Lighthouse\n\nThe keeper winds the brass clockwork every evening at dusk.\n")
    made = Build(tmp_path, corpus, embedder)
    made.run("first")
    retriever = made.retriever(("eng",))
    assert retriever._prefilter(None) is None  # every row is public
    assert _docs(retriever, "keeper merger", "hybrid") == {"public.md"}
    _write(corpus, "finance.md", f"---\naccess: [finance]\ntitle: Deal\n---\n# Merger\n\n{SECRET}\n")
    made.run("second")
    made.store.open()  # the latest version, as a long-lived retriever on the latest table sees it
    assert retriever._prefilter(None) == visible_where(("eng",))
    for mode in MODES:
        assert "finance.md" not in _docs(retriever, "merger Northwind March", mode), mode
    assert "finance.md" in _docs(made.retriever(("finance",)), "merger Northwind March", "fts")
