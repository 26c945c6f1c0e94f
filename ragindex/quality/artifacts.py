"""A suite's results on disk: GE's JSON and the summary, plus one HTML Data Docs page per batch."""

from __future__ import annotations

import json
import re
from pathlib import Path

from ragindex.quality.expectations import SuiteResult


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def _render_html(validation) -> str:
    from great_expectations.render.renderer import ValidationResultsPageRenderer
    from great_expectations.render.view import DefaultJinjaPageView

    return DefaultJinjaPageView().render(ValidationResultsPageRenderer().render(validation))


def write_artifacts(result: SuiteResult, folder: str | Path, data_docs: bool = True) -> list[Path]:
    """The suite's results as JSON (summary + GE's raw validation results) and, where GE can render them, its
    HTML Data Docs pages, one per batch, in `folder`. Returns the paths written."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    json_path = folder / f"{_safe(result.suite)}.json"
    json_path.write_text(json.dumps({"summary": result.as_dict(), "great_expectations": result.raw}, indent=2,
                                    default=str))
    paths = [json_path]
    if data_docs:
        for name, validation in result.validations.items():
            try:
                html = _render_html(validation)
            except Exception as error:  # rendering is a convenience: never fail a check over it
                result.notes.append(f"Data Docs for {name} not rendered: {type(error).__name__}: {error}")
                continue
            path = folder / f"{_safe(result.suite)}.{_safe(name)}.html"
            path.write_text(html, encoding="utf-8")
            paths.append(path)
    return paths
