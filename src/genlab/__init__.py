"""genlab: deep generative modeling on PyTorch.

>>> import genlab
>>> model = genlab.load("runs/vae-mnist-5k")      # a trained run directory
>>> x = model.sample(16)                            # (16, 1, 28, 28) in [0, 1]
"""

__version__ = "0.1.0"

__all__ = ["load", "__version__"]


def __getattr__(name: str):
    # ``genlab.load`` is imported on first use, so that ``import genlab.cli`` can set up the
    # environment of OpenMP before anything imports torch (see genlab.train.cpu).
    if name == "load":
        from .loading import load

        return load
    raise AttributeError(f"module 'genlab' has no attribute {name!r}")
