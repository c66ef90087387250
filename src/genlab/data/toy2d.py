"""Toy 2-D data sets for GANs: mixtures of Gaussians whose modes can be counted.

* ``ring8``: 8 Gaussians with std 0.02, evenly spaced on a circle of radius 2
  (angles ``2 pi k / 8``), equal weights;
* ``grid25``: 25 Gaussians with std 0.02 on the 5 x 5 grid ``{-2, -1, 0, 1, 2}^2``.

A generated point is *high quality* when it lies within 3 standard deviations of
a mode (Srivastava et al., 2017, VEEGAN; Lin et al., 2018, PacGAN). A mode is
*covered* when at least a quarter of its fair share of the samples
(``0.25 n / num_modes``) are high-quality samples of that mode.

:class:`Toy2D` is the data set object the Trainer uses: ``images`` is a float32
tensor (N, 2) of points in data units (NOT uint8 images; use them as they are,
without dividing by 255), ``labels`` is None, ``shape`` is ``(2,)``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["TOY_DATASETS", "Toy2D", "load_toy", "modes", "sample_toy", "mode_stats"]

#: name -> short description
TOY_DATASETS = {
    "ring8": "8 Gaussians (std 0.02) on a circle of radius 2, 2-D points, 10,000/2,000",
    "grid25": "25 Gaussians (std 0.02) on the 5x5 grid {-2..2}^2, 2-D points, 10,000/2,000",
}
STD = 0.02
_SIZES = {"train": 10_000, "test": 2_000}
_SEEDS = {"train": 0, "test": 1}


def _check(name: str) -> str:
    if name not in TOY_DATASETS:
        raise ValueError(f"unknown toy 2-D data set {name!r}; choose one of: {', '.join(TOY_DATASETS)}")
    return name


def modes(name: str) -> Tensor:
    """The mixture's means, float32 (num_modes, 2)."""
    if _check(name) == "ring8":
        angles = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)
        return (2.0 * torch.stack([angles.cos(), angles.sin()], 1)).float()
    ticks = torch.arange(-2, 3, dtype=torch.float32)
    return torch.cartesian_prod(ticks, ticks)


def sample_toy(name: str, n: int, generator: torch.Generator | None = None) -> Tensor:
    """n points (n, 2) float32 from the named mixture (equal weights, std :data:`STD`)."""
    centers = modes(name)
    idx = torch.randint(len(centers), (n,), generator=generator)
    return centers[idx] + STD * torch.randn(n, 2, generator=generator)


def mode_stats(points: Tensor, name: str, n_std: float = 3.0) -> dict:
    """Mode coverage of generated ``points`` (n, 2).

    Returns ``{"modes": covered count, "num_modes": ..., "high_quality": fraction of
    points within n_std std of their nearest mode, "per_mode": counts (num_modes,)}``.
    """
    points = torch.as_tensor(points, dtype=torch.float32).reshape(-1, 2)
    centers = modes(name)
    dist = torch.cdist(points, centers)
    d_min, nearest = dist.min(1)
    good = d_min <= n_std * STD
    per_mode = torch.bincount(nearest[good], minlength=len(centers))
    need = 0.25 * len(points) / len(centers)
    return {
        "modes": int((per_mode >= need).sum()),
        "num_modes": len(centers),
        "high_quality": float(good.float().mean()) if len(points) else 0.0,
        "per_mode": per_mode,
    }


class Toy2D(torch.utils.data.Dataset):
    """Points from a toy mixture held in memory.

    Attributes:
        images: float32 (N, 2), points in data units (use as is; not uint8 images).
        labels: None. num_classes: 0. shape: (2,). name: "ring8" or "grid25".

    Indexing returns ``(point (2,), -1)`` like :class:`genlab.data.ImageDataset`.
    """

    def __init__(self, name: str, split: str = "train", n: int | None = None, seed: int | None = None):
        if split not in _SIZES:
            raise ValueError(f"unknown split {split!r}; choose train or test")
        self.name = _check(name)
        self.split = split
        n = _SIZES[split] if n is None else n
        g = torch.Generator().manual_seed(_SEEDS[split] if seed is None else seed)
        self.images = sample_toy(name, n, generator=g)
        self.labels = None
        self.num_classes = 0
        self.class_names = None

    @property
    def shape(self) -> tuple[int]:
        return (2,)

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        return self.images[i], -1

    def subset(self, indices) -> "Toy2D":
        new = Toy2D.__new__(Toy2D)
        new.__dict__.update(self.__dict__)
        new.images = self.images[torch.as_tensor(indices) if not isinstance(indices, slice) else indices]
        return new

    def __repr__(self) -> str:
        return f"Toy2D({self.name!r}, split={self.split!r}, n={len(self)})"


def load_toy(name: str, split: str = "train", data_dir=None, **_ignored) -> Toy2D:
    """Loader with :func:`genlab.data.load`'s signature (``data_dir`` is unused: the points
    are generated from a fixed seed per split, identical on every machine)."""
    return Toy2D(name, split)
