"""The layering rule, walked over every import: the domain (`ragindex`) knows nothing of Dagster or the app; the
app's layers point one way (cli -> pipelines -> assets -> resources -> domain); and the install exposes two
importable names, never generic top-level ones."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
APP = "ragindex_app"
# folder -> the app layers its modules may import (besides the domain and third-party packages)
LAYERS = {"resources": {"resources"}, "assets": {"resources", "assets"},
          "pipelines": {"resources", "assets", "pipelines"}, "cli": {"resources", "assets", "pipelines", "cli"}}
GENERIC = ("assets", "resources", "pipelines", "cli")


def imports(path: Path) -> set[str]:
    """Every module name a file imports (absolute imports; the project uses no relative ones)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import"
            names.add(node.module or "")
    return names


def files(folder: str) -> list[Path]:
    found = sorted((ROOT / folder).rglob("*.py"))
    assert found, folder
    return found


@pytest.mark.parametrize("path", files("ragindex"), ids=lambda p: str(p.relative_to(ROOT)))
def test_the_domain_imports_no_dagster_and_no_app_code(path):
    bad = {n for n in imports(path) if n.split(".")[0] in ("dagster", APP, *GENERIC) or n.startswith("dagster_")}
    assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_app_layers_import_only_the_layers_below(layer):
    for path in files(layer):
        for name in imports(path):
            parts = name.split(".")
            assert parts[0] not in GENERIC, f"{path.relative_to(ROOT)} imports the generic module {name}"
            if parts[0] == APP:
                assert parts[1] in LAYERS[layer], f"{path.relative_to(ROOT)} ({layer}) imports {name}"


def test_tests_and_scripts_use_the_namespaced_app():
    for folder in ("tests", "benchmarks", "scripts"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            generic = {n for n in imports(path) if n.split(".")[0] in GENERIC}
            assert not generic, f"{path.relative_to(ROOT)} imports {sorted(generic)}"


def test_the_install_exposes_ragindex_and_ragindex_app_only(tmp_path):
    """From outside the repository (no source folder on sys.path) the generic names do not import."""
    probe = ("import importlib.util as u, json; print(json.dumps({n: u.find_spec(n) is not None for n in "
             f"{[*GENERIC, 'ragindex', APP + '.assets', APP + '.pipelines.definitions', APP + '.cli.main']}}}))")
    done = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True,
                          env={"PATH": "/usr/bin:/bin"})
    found = json.loads(done.stdout)
    assert not any(found[n] for n in GENERIC), found
    assert all(found[n] for n in found if n not in GENERIC), found
