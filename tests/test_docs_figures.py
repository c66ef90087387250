"""The README's figures in docs/ (made by scripts/make_docs_figures.py): small, decodable, all shown."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
FIGURES = sorted(p for p in DOCS.glob("*") if p.suffix in (".png", ".gif")) if DOCS.is_dir() else []


def test_figures_fit_the_size_budget():
    assert FIGURES, "docs/ has no figures; run scripts/make_docs_figures.py"
    for p in FIGURES:
        assert p.stat().st_size < 200 * 1024, f"{p.name}: {p.stat().st_size / 1024:.0f} KB"
    assert sum(p.stat().st_size for p in FIGURES) < 3 * 1024 * 1024


@pytest.mark.parametrize("path", FIGURES, ids=lambda p: p.name)
def test_figure_decodes_and_is_not_blank(path):
    with Image.open(path) as im:
        frames = getattr(im, "n_frames", 1)
        arr = np.asarray(im.convert("L"))
    assert arr.shape[0] > 20 and arr.shape[1] > 20 and arr.std() > 5
    if path.suffix == ".gif":
        assert frames > 5


def test_readme_shows_every_figure_and_only_existing_ones():
    shown = set(re.findall(r"docs/([\w.-]+\.(?:png|gif))", (ROOT / "README.md").read_text()))
    assert shown == {p.name for p in FIGURES}
