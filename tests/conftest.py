"""Shared fixtures. Real data sets are read from the shared data folder beside the
checkout (``../shared/data``; override with GENLAB_SHARED_DATA); tests that need
it are skipped where it is absent. Tests never touch the network. Fixtures that several test
modules use live here; plain helpers live in modules beside it (tiny.py, toys.py, ...)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def find_shared_data() -> Path | None:
    """$GENLAB_SHARED_DATA, else ../shared/data beside the checkout, the first that holds mnist/; else None.
    (benchmarks/harness.py's default_data_dir() is the same lookup; tests do not import benchmarks.)"""
    for c in (os.environ.get("GENLAB_SHARED_DATA"), ROOT.parent / "shared" / "data"):
        if c and (Path(c) / "mnist").is_dir():
            return Path(c)
    return None


SHARED_DATA = find_shared_data()


@pytest.fixture
def shared_data() -> Path:
    if SHARED_DATA is None:
        pytest.skip("the shared data folder (../shared/data) is not available")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Keep every test's downloads and caches out of the user's home."""
    monkeypatch.setenv("GENLAB_DATA", str(tmp_path_factory.getbasetemp() / "genlab-cache"))


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(1)  # tiny test models run fastest (and steadiest) on one thread
    yield


@pytest.fixture
def toys(monkeypatch):
    """The toy models of toys.py in the registry for one test (``toy-ae``, ``toy-gan``, ``toy-linear``): the
    registry's ``MODELS`` is replaced by a copy with them for the test; genlab's own dict is never changed."""
    from genlab import registry
    from toys import TOY_MODELS

    monkeypatch.setattr(registry, "MODELS", {**registry.MODELS, **TOY_MODELS})
