"""Configuration: the default file is valid; bad settings stop with one line naming the fix."""

import pytest

from ragindex.config import load_config, parse_config
from ragindex.errors import ConfigError


def test_default_config_uses_embedded_corpus():
    config = load_config()
    assert [s.type for s in config.sources] == ["pydoc_topics"]
    assert config.embedder.model == "all-MiniLM-L6-v2"


@pytest.mark.parametrize("raw, fragment", [
    ({"sources": [{"name": "x", "type": "ftp"}]}, "sources.0.type"),
    ({"sources": [{"name": "x", "type": "directory"}]}, "needs a 'path'"),
    ({"sources": [], "chunker": {"max_tokens": 64, "overlap_tokens": 40}}, "overlap_tokens"),
    ({"sources": [], "index": {"tabel": "x"}}, "index.tabel"),
    ({"sources": [{"name": "a", "type": "pydoc_topics"}, {"name": "a", "type": "pydoc_topics"}]}, "unique"),
])
def test_bad_config_is_one_line(raw, fragment):
    with pytest.raises(ConfigError) as error:
        parse_config(raw)
    assert fragment in str(error.value)
    assert "\n" not in str(error.value)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
