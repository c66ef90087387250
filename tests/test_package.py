"""The top-level package: ``import genlab`` is free of torch, and its subpackages load on first use."""

from __future__ import annotations

import subprocess
import sys

import pytest

import genlab

SUBPACKAGES = ("data", "metrics", "ood", "train", "viz", "models", "nn")


@pytest.mark.slow
def test_import_genlab_is_torch_free_and_subpackages_load_on_first_use():
    """In a fresh interpreter: no torch after ``import genlab``; ``genlab.data.load`` and the
    other subpackages then work without importing them by name, and ``dir`` lists them."""
    code = f"""
import sys, types
import genlab
assert "torch" not in sys.modules, "import genlab imported torch"
assert set({SUBPACKAGES!r}) <= set(dir(genlab)), dir(genlab)
assert callable(genlab.data.load) and genlab.data is sys.modules["genlab.data"]
for name in {SUBPACKAGES!r}:
    module = getattr(genlab, name)
    assert isinstance(module, types.ModuleType) and module.__name__ == "genlab." + name, module
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_an_unknown_attribute_is_an_attribute_error_that_names_what_there_is():
    with pytest.raises(
        AttributeError, match=r"no attribute 'metric' \(it has: .*data, explore, load, metrics, models, nn, ood, .*viz"
    ):
        genlab.metric  # noqa: B018
    assert not hasattr(genlab, "no_such_thing")
