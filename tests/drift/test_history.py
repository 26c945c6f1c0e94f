"""Drift history: one JSON line per evaluation in the folder it is given, read back filtered, shown as a table."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np

from ragindex.drift.history import DriftHistory, history_markdown, history_points


def _decision(p: float):
    tests = [SimpleNamespace(name="classifier", p_value=np.float64(p), effect_size=np.float64(0.7)),
             SimpleNamespace(name="mmd_rff", p_value=p * 2, effect_size=0.1)]
    return SimpleNamespace(p_value=np.float64(p), drifted=np.bool_(p < 0.01), alpha=0.01, n_reference=np.int64(40),
                           n_current=30, tests=tests)


def test_history_appends_to_its_folder_and_reads_back_filtered(tmp_path):
    history = DriftHistory(tmp_path / "drift")
    assert history.records() == [] and history.path == tmp_path / "drift" / "history.jsonl"
    stored = history.append(DriftHistory.record("corpus", "chunks", "docs", "tested", _decision(0.001),
                                                tag="docs-20250115T093000-v3", folder=tmp_path))
    history.append(DriftHistory.record("query", "chunks", "docs", "skipped"))
    history.append(DriftHistory.record("corpus", "chunks", "other", "tested", _decision(0.4)))
    with history.path.open("a") as handle:
        handle.write('{"kind": "corpus", "torn')  # a crash mid-write

    saved = json.loads(history.path.read_text().splitlines()[0])
    assert saved == {**stored, "folder": str(tmp_path)} and saved["drifted"] is True and saved["n_reference"] == 40
    assert saved["tests"] == {"classifier": 0.001, "mmd_rff": 0.002}
    assert [r["source"] for r in history.records(kind="corpus")] == ["docs", "other"]
    assert [r["kind"] for r in history.records(source="docs")] == ["corpus", "query"]
    assert [r["source"] for r in history.records(limit=1)] == ["other"]

    records = history.records()
    points = history_points(records)
    assert points[0] == ("v3 0115", 0.001) and len(points) == 2  # the skipped record has no p-value
    assert points[1][0] == records[2]["time"][5:16].replace("T", " ")
    table = history_markdown(records).splitlines()
    assert table[0] == "| Time (UTC) | Build | Status | Combined p | Drifted | p classifier | p mmd_rff |"
    assert table[2].split(" | ")[1:5] == ["docs-20250115T093000-v3", "tested", "0.001", "yes"]
    assert table[3].split(" | ")[3:5] == ["-", "no"] and len(table) == 5
    assert history_markdown([]) == "_no drift evaluations yet_"
