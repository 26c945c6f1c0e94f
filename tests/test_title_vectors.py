"""Title vectors: a corpus whose answers are known only by their titles (entity names, generic bodies)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ragindex.build import build_source
from ragindex.cache_gc import live_keys
from ragindex.chunking import make_chunker
from ragindex.config import AnnConfig, ChunkerConfig, IndexConfig, SearchConfig, SourceConfig, parse_config
from ragindex.documents import Document, sha256_hex
from ragindex.embedding_cache import EmbeddingCache
from ragindex.errors import ConfigError
from ragindex.evaluation.beir import EvalSet
from ragindex.evaluation.fusion import FusionChoice
from ragindex.evaluation.measure import mlflow_metrics
from ragindex.evaluation.runner import evaluate
from ragindex.evaluation.tables import document_chunks, write_chunks
from ragindex.index_store import IndexStore
from ragindex.search import Retriever
from ragindex.staging import StageStore
from ragindex.storage import connect
from ragindex.titles import TITLE_HASH, TITLE_VECTOR, title_hash

ENTITIES = ["Ada Lovelace", "Alan Turing", "Grace Hopper", "Marie Curie", "Isaac Newton", "Charles Darwin",
            "Nikola Tesla", "Rosalind Franklin", "Albert Einstein", "Johannes Kepler", "Emmy Noether",
            "Leonhard Euler"]
BODY = "This entry records where the subject was born, what they studied and the work they are remembered for."
SECRET = "Galileo Galilei"  # a title only the group "staff" may see


def _docs(filler: int = 0) -> list[Document]:
    def doc(doc_id: str, title: str, text: str, groups=None) -> Document:
        return Document(doc_id, "people", text, sha256_hex(text), title, doc_id, len(text), 0.0, "text", (), groups)

    people = [doc(f"p{i:02d}", name, f"{BODY} Entry {i}.") for i, name in enumerate(ENTITIES)]
    secret = doc("secret", SECRET, f"{BODY} Entry {len(ENTITIES)}.", ("staff",))
    untitled = doc("untitled", "", "A page without a title or a heading.")  # a null title vector
    notes = [doc(f"n{i:03d}", f"Shipping note {i}", f"Ship {i} passed the cape at night with cargo {i * 7}.")
             for i in range(filler)]
    return [*people, secret, untitled, *notes]


def _table(embedder, root: Path, titles: str, filler: int = 0, ann: bool = False) -> IndexStore:
    config = IndexConfig(uri=str(root), title_vectors=titles,
                         ann=AnnConfig(min_rows=256 if ann else 4096, index_type="IVF_FLAT"))
    chunks = document_chunks(_docs(filler), make_chunker(ChunkerConfig(max_tokens=64, overlap_tokens=8), embedder))
    for chunk in chunks:  # the chunker puts the heading path in front of the text: keep the body alone
        chunk["text"] = chunk["text"].removeprefix(f"{chunk['heading_path']}\n\n")
    return write_chunks(IndexStore.at(config), chunks, embedder)


@pytest.fixture(scope="module")
def tables(embedder, tmp_path_factory) -> dict[str, IndexStore]:
    root = tmp_path_factory.mktemp("titles")
    return {"off": _table(embedder, root / "off", "off"), "auto": _table(embedder, root / "auto", "auto")}


def _top(retriever: Retriever, query: str, mode: str = "dense", **kwargs) -> str:
    return retriever.search(query, mode, 1, **kwargs)[0].doc_id


def _found(retriever: Retriever, mode: str = "dense", **kwargs) -> int:
    return sum(_top(retriever, f"{name} early life", mode, **kwargs) == f"p{i:02d}"
               for i, name in enumerate(ENTITIES))


def test_off_builds_no_title_column_and_ranks_as_before(tables, embedder) -> None:
    off, auto = tables["off"], tables["auto"]
    assert TITLE_VECTOR not in off.open().schema.names
    assert {TITLE_VECTOR, TITLE_HASH} <= set(auto.open().schema.names)
    assert auto.open().to_arrow().column(TITLE_VECTOR).null_count == 1  # the untitled page
    plain = Retriever(off, embedder, SearchConfig(per_doc=0), unrestricted=True)
    weightless = Retriever(auto, embedder, SearchConfig(per_doc=0), unrestricted=True)  # auto, no evaluation: 0
    assert weightless.fusion.title_weight == 0.0
    for mode in ("dense", "dense_exact", "hybrid"):
        for name in ENTITIES[:4]:
            ours = [(h.chunk_id, round(h.score, 5)) for h in weightless.search(name, mode, 10)]
            assert ours == [(h.chunk_id, round(h.score, 5)) for h in plain.search(name, mode, 10)]
    assert plain.search(ENTITIES[0], "dense", 10, title_weight=1.0) == plain.search(ENTITIES[0], "dense", 10)


def test_title_vectors_find_the_entity_the_body_cannot(tables, embedder) -> None:
    body_only = Retriever(tables["auto"], embedder, SearchConfig(per_doc=0), unrestricted=True)
    titled = Retriever(tables["auto"], embedder, SearchConfig(per_doc=0), unrestricted=True,
                       fusion=FusionChoice("dense", title_weight=0.5))
    assert _found(body_only) <= len(ENTITIES) // 3  # generic bodies: the name is nowhere in the text
    assert _found(titled) == _found(titled, "dense_exact") == len(ENTITIES)
    hit = titled.search("Marie Curie", "dense", 1)[0]
    assert hit.score == pytest.approx(body_only.search("Marie Curie", "dense", 1, title_weight=0.5)[0].score)


def test_the_ann_path_fuses_a_second_vector_query_under_the_same_access_rules(embedder, tmp_path) -> None:
    store = _table(embedder, tmp_path, "on", filler=300, ann=True)
    indexed = {tuple(i.columns) for i in store.open().list_indices()}
    assert {("vector",), (TITLE_VECTOR,)} <= indexed
    public = Retriever(store, embedder, SearchConfig(per_doc=0))  # `on`, no evaluation: the configured weight
    assert public.dense_index is None and public.has_title_ann and public.fusion.title_weight == 0.5
    assert _found(public) == _found(public, "dense_exact") == len(ENTITIES)
    assert _top(public, "Galileo Galilei early life") != "secret"
    assert "secret" not in {h.doc_id for h in public.search("Galileo Galilei", "dense", 50)}
    staff = Retriever(store, embedder, SearchConfig(per_doc=0), groups=["staff"])
    assert _top(staff, "Galileo Galilei early life") == "secret"
    assert _top(staff, "Ada Lovelace", filters={"doc_id": "p05"}) == "p05"


def _evalset(generator: str | None) -> EvalSet:
    queries = {f"q{i}": f"{name} early life" for i, name in enumerate(ENTITIES)}
    qrels = {f"q{i}": {f"p{i:02d}": 1} for i in range(len(ENTITIES))}
    return EvalSet(queries, qrels, generators={q: generator for q in queries} if generator else {})


def test_evaluation_chooses_records_and_serves_the_weight(tables, embedder) -> None:
    retriever = Retriever(tables["auto"], embedder, SearchConfig(per_doc=0), unrestricted=True)
    result = evaluate(retriever, _evalset(None), "people", folds=3)
    titles = result.fusion.details["titles"]
    assert result.fusion.title_weight > 0 and titles["weight"] == result.fusion.title_weight
    assert titles["evidence"] == "judged qrels (12 queries)"
    assert titles["details"]["measured"]["0"]["mean"] < titles["details"]["measured"]["1"]["mean"]
    assert result.modes["dense"]["ndcg@10"] > result.modes["dense_exact"]["ndcg@10"]  # dense as served, titles on
    assert mlflow_metrics(result)["dense.title_weight"] == result.fusion.title_weight
    served = FusionChoice.from_dict(result.as_json(None, {})["fusion"])  # as the registered config carries it
    assert served == result.fusion and "titles" in served.label
    assert _found(Retriever(tables["auto"], embedder, SearchConfig(per_doc=0), fusion=served,
                            unrestricted=True)) == len(ENTITIES)


def test_lexical_queries_alone_keep_the_weight_at_zero_and_on_forces_it(tables, embedder) -> None:
    retriever = Retriever(tables["auto"], embedder, SearchConfig(per_doc=0), unrestricted=True)
    lexical = evaluate(retriever, _evalset("heading"), "people", folds=3)
    assert lexical.fusion.title_weight == 0.0
    assert lexical.fusion.details["titles"]["evidence"].startswith("prior: 0 non-lexical queries")
    assert lexical.fusion.details["titles"]["details"]["lexical_preference"] > 0
    forced = tables["auto"].config.model_copy(update={"title_vectors": "on", "title_weight": 0.25})
    on = Retriever(IndexStore.at(forced), embedder, SearchConfig(per_doc=0), unrestricted=True)
    result = evaluate(on, _evalset("heading"), "people", folds=3)
    assert result.fusion.title_weight == 0.25
    assert result.fusion.details["titles"]["evidence"] == "configured (index.title_vectors: on)"
    off = Retriever(tables["off"], embedder, SearchConfig(per_doc=0), unrestricted=True)
    plain = evaluate(off, _evalset(None), "people", folds=3)
    assert plain.fusion.title_weight == 0.0 and "titles" not in plain.fusion.details


def _write(root: Path, titles: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, heading in titles.items():
        body = " ".join(f"The subject of part {name} worked on problem {k} for a while." for k in range(12))
        (root / f"{name}.md").write_text(f"# {heading}\n\n{body}\n", encoding="utf-8")
    return root


def test_the_build_embeds_titles_once_through_the_cache(embedder, tmp_path) -> None:
    corpus = _write(tmp_path / "corpus", {"a": "Ada Lovelace", "b": "Alan Turing", "c": "Ada Lovelace"})
    cache = EmbeddingCache(str(tmp_path / "cache"), embedder.fingerprint.id, embedder.dimension)
    stages = StageStore(str(tmp_path / "staging"))
    source = SourceConfig(name="docs", type="directory", path=str(corpus))
    chunker = make_chunker(ChunkerConfig(max_tokens=48, overlap_tokens=4), embedder)

    def build(titles: str, run_id: str):
        config = IndexConfig(uri=str(tmp_path / "lancedb"), title_vectors=titles)
        store = IndexStore(connect(config.resolved_uri()), config)
        return store, build_source(source, stages, store, chunker, cache, lambda: embedder,
                                   embedder.fingerprint.as_dict(), run_id)

    store, first = build("off", "r1")
    texts = cache.rows()
    assert TITLE_VECTOR not in store.open().schema.names
    store, second = build("auto", "r2")  # turned on: every row gets its title vector, two titles embedded
    assert cache.rows() == texts + 2 and second.updated == first.rows
    rows = store.open().to_arrow()
    assert set(rows.column(TITLE_HASH).to_pylist()) == {title_hash("Ada Lovelace"), title_hash("Alan Turing")}
    assert rows.column(TITLE_VECTOR).null_count == 0
    _, third = build("auto", "r3")
    assert third.unchanged and cache.rows() == texts + 2  # nothing re-embedded, nothing committed
    assert {title_hash("Ada Lovelace"), title_hash("Alan Turing")} <= _live_hashes(store, cache)


def _live_hashes(store: IndexStore, cache: EmbeddingCache) -> set[str]:
    """The cache's hashes the garbage collector keeps alive for this table."""
    live = set(live_keys([store.open()]).tolist())
    return {h for batch in cache.scan(["text_hash"]) for h in batch.column("text_hash").to_pylist()
            if int(h[:16], 16) in live}


def test_config_reads_the_switch_from_yaml() -> None:
    for written in ("off", "on", "auto"):  # YAML reads an unquoted off/on as a boolean
        raw = yaml.safe_load(f"sources: []\nindex:\n  title_vectors: {written}\n")
        assert parse_config(raw).index.title_vectors == written
    with pytest.raises(ConfigError, match="title_vectors"):
        parse_config({"sources": [], "index": {"title_vectors": "sometimes"}})
    assert IndexConfig().title_vectors == "off"
