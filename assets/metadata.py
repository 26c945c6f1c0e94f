"""What the Dagster UI shows of a step: Markdown tables, the previous materialization, a progress reporter."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence

from dagster import AssetRecordsFilter, MetadataValue


def markdown_table(rows: Sequence[dict], columns: Sequence[str], limit: int = 20, width: int = 120) -> str:
    """A small Markdown table; long cells are cut so the UI stays readable."""
    if not rows:
        return "_none_"

    def cell(value: object) -> str:
        text = " ".join(str(value).split()).replace("|", "\\|")
        return text if len(text) <= width else text[: width - 1] + "…"

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c, "")) for c in columns) + " |" for row in rows[:limit]]
    if len(rows) > limit:
        lines.append(f"\n_{len(rows) - limit} more not shown_")
    return "\n".join(lines)


def md(rows: Sequence[dict], columns: Sequence[str], limit: int = 20) -> MetadataValue:
    return MetadataValue.md(markdown_table(rows, columns, limit))


def previous_metadata(context) -> dict:
    """The metadata of this asset's latest earlier materialization of the same partition (plain values)."""
    records = context.instance.fetch_materializations(
        AssetRecordsFilter(asset_key=context.asset_key, asset_partitions=[context.partition_key]), limit=1)
    if not records.records:
        return {}
    metadata = records.records[0].asset_materialization.metadata
    return {k: getattr(v, "value", v) for k, v in metadata.items()}


class Progress:
    """Reports long work: a log line every 10% (with rate and ETA) and, on a terminal, a progress bar."""

    def __init__(self, log, what: str):
        self.log = log
        self.what = what
        self.start = time.perf_counter()
        self.logged = 0.0
        self.bar = None

    def __call__(self, done: int, total: int) -> None:
        elapsed = time.perf_counter() - self.start
        rate = done / elapsed if elapsed else 0.0
        if sys.stderr.isatty():
            if self.bar is None:
                from tqdm import tqdm

                self.bar = tqdm(total=total, desc=self.what, unit="text", leave=False)
            self.bar.update(done - self.bar.n)
            if done >= total:
                self.bar.close()
        if done >= total or done / total >= self.logged + 0.1:
            self.logged = done / total
            eta = (total - done) / rate if rate else 0.0
            self.log.info(f"{self.what}: {done}/{total} ({rate:.0f}/s, ETA {eta:.0f} s)")
