"""genlab: deep generative modeling on PyTorch.

>>> import genlab
>>> model = genlab.load("runs/vae-mnist-5k")      # a trained run directory
>>> run = genlab.Run("runs/vae-mnist-5k")         # the run: its config, model, data, labels, outputs
>>> x = model.sample(16)                            # (16, 1, 28, 28) in [0, 1]
>>> train = genlab.data.load("mnist-5k", "train")  # subpackages load on first use

``import genlab`` itself imports no torch: ``genlab.load`` and the subpackages are
imported when first used (PEP 562), so that ``genlab --help`` is fast and ``genlab.cli``
can set up the environment of OpenMP before anything imports torch (see genlab.train.cpu).
"""

import importlib as _importlib

__version__ = "0.2.0"

#: The public subpackages, each imported on first access as ``genlab.<name>``.
_SUBPACKAGES = ("app", "data", "explore", "metrics", "models", "nn", "ood", "pretrained", "train", "viz")

__all__ = ["load", "Run", "__version__", *_SUBPACKAGES]


def __getattr__(name: str):
    if name == "load":
        from .loading import load

        return load
    if name == "Run":
        from .run import Run

        return Run
    if name in _SUBPACKAGES:
        return _importlib.import_module(f".{name}", __name__)  # also binds genlab.<name> for next time
    # the traceback adds "Did you mean: ...?" (Python 3.10+), from __dir__ below
    raise AttributeError(f"module 'genlab' has no attribute {name!r} (it has: {', '.join(sorted(__all__))})")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
