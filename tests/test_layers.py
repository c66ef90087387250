"""Imports point one way: layers (nn/) never import models, and file I/O comes from genlab.io
(not from the training package). Size and complexity are ruff's (pyproject.toml)."""

from __future__ import annotations

import ast
from pathlib import Path

import genlab

SRC = Path(genlab.__file__).parent


def imported_modules(path: Path) -> set[str]:
    """Absolute names of every module ``path`` imports (relative imports resolved)."""
    package = ".".join(("genlab", *path.relative_to(SRC).with_suffix("").parts[:-1]))
    if path.name == "__init__.py":
        package = ".".join(("genlab", *path.relative_to(SRC).parts[:-1]))
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[: len(base) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.add(name)
            found.update(f"{name}.{a.name}" for a in node.names)
    return found


def sources(under: str = "") -> list[Path]:
    return sorted((SRC / under).rglob("*.py"))


def test_the_import_resolver_sees_relative_and_absolute_imports(tmp_path):
    names = imported_modules(SRC / "models" / "autoregressive.py")
    assert {"genlab.nn.autoregressive", "genlab.models.base", "genlab.distributions", "torch"} <= names


def test_nn_imports_nothing_from_models():
    bad = {
        str(p.relative_to(SRC)): sorted(m for m in imported_modules(p) if m.startswith("genlab.models"))
        for p in sources("nn")
    }
    assert not {k: v for k, v in bad.items() if v}


def test_presets_import_no_model():
    """Each model's presets live in its module, which imports genlab.presets: never the other way."""
    assert not sorted(m for m in imported_modules(SRC / "presets.py") if m.startswith("genlab.models"))


def test_file_io_comes_from_genlab_io_outside_the_training_package():
    io_names = ("atomic_write_bytes", "atomic_write_json", "save_tensors", "load_tensors", "read_json", "file_digest")
    bad = {}
    for p in sources():
        if p.relative_to(SRC).parts[0] == "train":
            continue
        wrong = sorted(
            m
            for m in imported_modules(p)
            if m.startswith("genlab.train.checkpoint.") and m.rsplit(".", 1)[1] in io_names
        )
        if wrong:
            bad[str(p.relative_to(SRC))] = wrong
    assert not bad, f"import file I/O from genlab.io: {bad}"
