"""Turning build records into metadata the Dagster UI shows: counts, tables, markdown."""

from __future__ import annotations

from collections.abc import Sequence

from dagster import MetadataValue


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
