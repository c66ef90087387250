"""Training: the one :class:`Trainer`, :func:`train`, :func:`resume`, checkpoints.

>>> from genlab.config import RunConfig
>>> run_dir = genlab.train.train(run_config)          # runs/<model>-<data>
>>> genlab.train.resume(run_dir, steps=5000)          # continue to 5000 steps in total

The heavy pieces are imported on first use so that ``import genlab.train.checkpoint``
stays light and free of import cycles (file I/O itself lives in :mod:`genlab.io`).
"""

from __future__ import annotations

__all__ = ["Trainer", "train", "resume", "load_run_config", "EMA"]
_HOME = {"Trainer": "trainer", "EMA": "state", "train": "runs", "resume": "runs", "load_run_config": "runs"}


def __getattr__(name: str):
    if name in _HOME:
        from importlib import import_module

        return getattr(import_module(f".{_HOME[name]}", __name__), name)
    raise AttributeError(f"module 'genlab.train' has no attribute {name!r}")
