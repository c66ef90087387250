"""The documentation site's sources stay consistent: the example notebooks are committed without outputs,
docs/cli.md is what scripts/make_cli_docs.py makes from the parser, and every notebook and model page is in
the site's navigation. Fast: nothing is executed or built here (CI runs scripts/run_notebooks.py and
mkdocs build --strict for that), and no docs extra is needed."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "examples").glob("*.ipynb"))


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_there_are_example_notebooks():
    assert len(NOTEBOOKS) >= 5, [p.name for p in NOTEBOOKS]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_without_outputs(path):
    assert _script("run_notebooks").dirty_cells(path) == [], (
        f"{path.name} holds outputs: clear them (python scripts/run_notebooks.py --check-clean says which)"
    )


def test_cli_reference_is_current():
    page = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert page == _script("make_cli_docs").render(), "docs/cli.md is out of date: python scripts/make_cli_docs.py"


def test_every_notebook_and_doc_page_is_in_the_navigation():
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8").split("\nnav:", 1)[1]
    listed = set(re.findall(r":\s*(\S+\.(?:md|ipynb))\s*$", nav, re.M))
    pages = {p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*.md")}
    notebooks = {f"examples/{p.name}" for p in NOTEBOOKS}
    generated = {"readme.md", "benchmarks.md", "contributing.md"}  # added by scripts/mkdocs_hooks.py
    assert pages | notebooks | generated == listed


def test_notebooks_page_lists_every_notebook():
    text = (ROOT / "docs" / "notebooks.md").read_text(encoding="utf-8")
    for p in NOTEBOOKS:
        assert f"examples/{p.name}" in text, p.name
