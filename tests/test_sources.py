"""Sources: directory trees (with bad files), BEIR JSONL and the embedded CPython reference."""

import json

import pytest
from conftest import write_small_corpus

from ragindex.config import SourceConfig
from ragindex.documents import Document, Skipped
from ragindex.errors import ConfigError
from ragindex.sources import read_source


def _split(items):
    docs = {i.doc_id: i for i in items if isinstance(i, Document)}
    skipped = {i.path.rsplit("/", 1)[-1]: i.reason for i in items if isinstance(i, Skipped)}
    unchanged = [i for i in items if isinstance(i, str)]
    return docs, skipped, unchanged


def test_directory_reads_formats_and_skips_bad_files(tmp_path):
    root = write_small_corpus(tmp_path)
    source = SourceConfig(name="docs", type="directory", path=str(root), max_file_bytes=1_000_000)
    docs, skipped, _ = _split(list(read_source(source)))
    assert sorted(docs) == ["guide/install.md", "guide/lighthouse.md", "notes.txt", "page.html", "reference.rst"]
    assert skipped["empty.md"] == "empty file"
    assert skipped["binary.txt"] == "binary file (NUL bytes)"
    assert skipped["latin1.txt"].startswith("not valid UTF-8")
    assert skipped["huge.md"].startswith("over-size file")
    assert skipped["loop"].startswith("symlink loop")
    html = docs["page.html"]
    assert html.format == "markdown" and "# Search page" in html.text
    assert "color" not in html.text and "var x" not in html.text
    assert docs["reference.rst"].format == "rst" and docs["guide/install.md"].title == "Installing"
    assert len(docs["notes.txt"].content_hash) == 64 and docs["notes.txt"].size > 0


def test_directory_unchanged_files_are_not_reread(tmp_path):
    root = write_small_corpus(tmp_path)
    source = SourceConfig(name="docs", type="directory", path=str(root))
    first, _, _ = _split(list(read_source(source)))
    known = {d.doc_id: (d.content_hash, d.size, d.mtime) for d in first.values()}
    again, _, unchanged = _split(list(read_source(source, known)))
    assert not again and sorted(unchanged) == sorted(first)
    hashing = SourceConfig(name="docs", type="directory", path=str(root), always_hash=True)
    rehashed, _, _ = _split(list(read_source(hashing, known)))
    assert sorted(rehashed) == sorted(first)


def test_beir_corpus_skips_malformed_lines(tmp_path):
    lines = [json.dumps({"_id": "d1", "title": "Title", "text": "first passage"}), "{not json",
             json.dumps({"title": "no id"}), json.dumps({"_id": "d2", "text": "second passage"}),
             json.dumps({"_id": "d1", "text": "duplicate"})]
    (tmp_path / "corpus.jsonl").write_text("\n".join(lines) + "\n")
    docs, _, _ = _split(list(read_source(SourceConfig(name="b", type="beir", path=str(tmp_path)))))
    skipped = [i for i in read_source(SourceConfig(name="b", type="beir", path=str(tmp_path)))
               if isinstance(i, Skipped)]
    assert sorted(docs) == ["d1", "d2"] and docs["d1"].title == "Title" and docs["d1"].text == "first passage"
    assert [s.path.rsplit(":", 1)[1] for s in skipped] == ["2", "3", "5"]
    assert "malformed JSON" in skipped[0].reason and "duplicate" in skipped[2].reason


def test_pydoc_topics_is_the_default_corpus():
    docs = list(read_source(SourceConfig(name="pydoc", type="pydoc_topics")))
    assert len(docs) == 79
    assert 400_000 < sum(d.size for d in docs) < 550_000
    with_doc = next(d for d in docs if d.doc_id == "with")
    assert with_doc.title == 'The "with" statement'


def test_missing_path_stops_with_one_line(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        list(read_source(SourceConfig(name="x", type="directory", path=str(tmp_path / "gone"))))
