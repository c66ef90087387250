"""genlab: deep generative modeling on PyTorch.

>>> import genlab
>>> model = genlab.load("runs/vae-mnist-5k")      # a trained run directory
>>> x = model.sample(16)                            # (16, 1, 28, 28) in [0, 1]
"""

__version__ = "0.1.0"

from .loading import load  # noqa: E402

__all__ = ["load", "__version__"]
