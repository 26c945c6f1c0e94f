"""The champion cache: the serving config MLflow holds, read without MLflow until the store's files change."""

import json
import time

from ragindex.paths import DataLayout
from ragindex.serving.champion_cache import SETTLE_NS, champion_config, settle
from ragindex.tracking import CHAMPION, SERVING_CONFIG_TAG, Tracker

NAME = "ragindex-retriever"


def _settle() -> None:
    """Wait until the store's last write is old enough to be cached."""
    time.sleep(SETTLE_NS / 1e9 + 0.1)


def _register(tracker: Tracker, config: dict) -> str:
    client = tracker.client
    if not client.search_registered_models(f"name = '{NAME}'"):
        client.create_registered_model(NAME)
    version = client.create_model_version(NAME, "file:///nowhere", tags={SERVING_CONFIG_TAG: json.dumps(config)})
    client.set_registered_model_alias(NAME, CHAMPION, version.version)
    return str(version.version)


def test_cached_until_the_alias_moves_even_outside_ragindex():
    layout = DataLayout.current()
    tracker, cache = Tracker.current(layout), layout.champion_cache
    assert champion_config(tracker, NAME, cache) is None and not cache.exists()  # no store yet: nothing cached
    first = {"table": "chunks", "model": "all-MiniLM-L6-v2", "tag": "pydoc-1"}
    one = _register(tracker, first)
    assert champion_config(tracker, NAME, cache) == (one, first)
    assert not cache.exists()  # the store was written under a second ago: not cached yet
    _settle()
    assert champion_config(tracker, NAME, cache) == (one, first)
    assert json.loads(cache.read_text())["champions"][NAME] == [one, first]

    cache.write_text(cache.read_text().replace("pydoc-1", "from-the-cache"))  # a hit answers from the file
    assert champion_config(tracker, NAME, cache)[1]["tag"] == "from-the-cache"

    second = {**first, "tag": "pydoc-2"}
    two = _register(tracker, second)  # the MLflow client moves the alias: the store's files change
    assert champion_config(tracker, NAME, cache) == (two, second)
    started = time.monotonic()
    settle(tracker)  # what a build calls before it warms the cache: returns once the write is a second old
    assert time.monotonic() - started <= SETTLE_NS / 1e9 + 0.2
    assert champion_config(tracker, NAME, cache) == (two, second)
    assert json.loads(cache.read_text())["champions"][NAME] == [two, second]

