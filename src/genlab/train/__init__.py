"""Training: the one :class:`Trainer`, :func:`train`, :func:`resume`, checkpoints.

>>> from genlab.config import RunConfig
>>> run_dir = genlab.train.train(run_config)          # runs/<model>-<data>
>>> genlab.train.resume(run_dir, steps=5000)          # continue to 5000 steps in total

The heavy pieces are imported on first use so that ``import genlab.train.checkpoint``
stays light and free of import cycles (file I/O itself lives in :mod:`genlab.io`).
"""

from __future__ import annotations

__all__ = ["Trainer", "train", "resume", "load_run_config", "EMA"]


def __getattr__(name: str):
    if name in __all__:
        from . import trainer

        return getattr(trainer, name)
    raise AttributeError(f"module 'genlab.train' has no attribute {name!r}")
