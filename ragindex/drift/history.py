"""The record of every drift evaluation: one JSON line each in a folder's history.jsonl, so p-values can be
followed across runs, and its views (plot points, a Markdown table)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from ragindex.build_tag import BuildTag


class DriftHistory:
    """One JSON line per drift evaluation: time, table, source, kind, p-value, drifted, per-test p-values."""

    def __init__(self, folder: Path):
        self.path = Path(folder) / "history.jsonl"

    def append(self, record: dict[str, Any]) -> dict[str, Any]:
        """Add one record (its `time` defaults to now, UTC ISO 8601); returns it as stored."""
        stored = {"time": datetime.now(UTC).isoformat(timespec="seconds"), **record}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(stored, sort_keys=True, default=_jsonable) + "\n"
        with self.path.open("a", encoding="utf-8") as handle:  # one write per record: appends do not interleave
            handle.write(line)
        return stored

    def records(self, table: str | None = None, source: str | None = None, kind: str | None = None,
                limit: int | None = None) -> list[dict[str, Any]]:
        """Matching records, oldest first (the last `limit` of them)."""
        if not self.path.is_file():
            return []
        out = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn last line from a crash: skip it
            if all(want is None or record.get(key) == want
                   for key, want in (("table", table), ("source", source), ("kind", kind))):
                out.append(record)
        return out[-limit:] if limit else out

    @staticmethod
    def record(kind: str, table: str, source: str, status: str, decision: Any = None, **extra: Any) -> dict:
        """A history record from a DriftDecision (or None when nothing was tested)."""
        record: dict[str, Any] = {"kind": kind, "table": table, "source": source, "status": status,
                                  "p_value": None, "drifted": False, "tests": {}}
        if decision is not None:
            record.update(p_value=float(decision.p_value), drifted=bool(decision.drifted),
                          alpha=float(decision.alpha), n_reference=int(decision.n_reference),
                          n_current=int(decision.n_current),
                          tests={t.name: float(t.p_value) for t in decision.tests},
                          effects={t.name: float(t.effect_size) for t in decision.tests})
        record.update(extra)
        return record


def history_points(records: Sequence[dict[str, Any]]) -> list[tuple[str, float]]:
    """(label, combined p) of the tested records, for plot_drift's history panel."""
    return [(_short_label(r), float(r["p_value"])) for r in records if r.get("p_value") is not None]


def history_markdown(records: Sequence[dict[str, Any]], limit: int = 20) -> str:
    """The last `limit` records as a Markdown table (newest last)."""
    from ragindex.drift.report import format_p

    shown = list(records)[-limit:]
    if not shown:
        return "_no drift evaluations yet_"
    names = sorted({name for r in shown for name in r.get("tests", {})})
    header = ["Time (UTC)", "Build", "Status", "Combined p", "Drifted", *(f"p {n}" for n in names)]
    lines = ["| " + " | ".join(header) + " |", "|---|---|---|---:|---|" + "---:|" * len(names)]
    for r in shown:
        p = r.get("p_value")
        cells = [r.get("time", ""), r.get("tag") or r.get("label", ""), r.get("status", ""),
                 format_p(p) if p is not None else "-", "yes" if r.get("drifted") else "no"]
        cells += [format_p(r["tests"][n]) if n in r.get("tests", {}) else "-" for n in names]
        lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


def _short_label(record: dict[str, Any]) -> str:
    """`v<version> <MMDD>` of the record's build tag, else its time as `MM-DD HH:MM`."""
    tag = BuildTag.parse(record.get("tag") or "")
    if tag is not None:
        return f"v{tag.version} {tag.time:%m%d}"
    return str(record.get("time", ""))[5:16].replace("T", " ")


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
