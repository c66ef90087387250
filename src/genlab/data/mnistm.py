"""MNIST-M-style digits: each grey digit blended with a patch of a natural image.

The "real" domain of the sim-to-real demo (``benchmarks/sim_to_real.py``), after
Ganin et al. (2016, "Domain-Adversarial Training of Neural Networks", sec. 5.1.2,
MNIST-M): a digit ``d`` (uint8, 1 channel) and an RGB patch ``p`` of the same size
give, per channel and pixel, ::

    out = |p - d|

so the background (``d = 0``) shows the patch and a full stroke (``d = 255``) shows
its colour inversion ``255 - p``: the digit stays visible only as a local change of
colour, never as a fixed intensity. The result is RGB at the digit's size (28x28 for
MNIST; any size works, patches larger than 32x32 come from enlarged images).

Patches: Ganin et al. cut them from the BSDS500 photographs; here they come from the
CIFAR-10 test images as JPEGs, ``<data_dir>/cifar10-test-jpeg/<class>/<NNNN>.jpg``
(1,000 per class, ``NNNN`` = 0000..0999; images are resized to 32x32 if they are
not), so that no download is needed. The
patch images of the two splits are **disjoint**: ``train`` digits get patches from
the files ``NNNN`` < 0800 (8,000 images), ``test`` digits from ``NNNN`` >= 0800
(2,000 images), so no photograph behind a test digit was seen in training.

Each patch is an ``H x W`` crop of one image at an offset (uniform over the
positions where it fits). Which image and which offset depend only on
``(seed, split, i)``, the index ``i`` of the digit in its split (a splitmix64
hash; no random state is consumed), so a digit gets the same patch whatever
subset or order it is loaded in, and the same on every machine.

Use it as a domain transform (``mnist+mnistm`` in :func:`genlab.data.load` and in
``unpaired:mnist,mnist+mnistm``) or directly with :func:`mnistm`.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import torch

from .errors import DataError

__all__ = ["FOLDER", "TRAIN_FILES", "blend", "patch_choice", "patch_pool", "patches", "mnistm"]

#: the folder of CIFAR-10 test JPEGs, inside ``data_dir`` (or the cache ``$GENLAB_DATA``)
FOLDER = "cifar10-test-jpeg"
#: files ``NNNN`` < TRAIN_FILES of each class give the train split's patches, the rest the test split's
TRAIN_FILES = 800
_SPLITS = ("train", "test")
_MASK = np.uint64(0xFFFFFFFFFFFFFFFF)


def blend(digits: torch.Tensor, patches: torch.Tensor) -> torch.Tensor:
    """``|patches - digits|`` per channel: uint8 digits (N, 1, H, W) and RGB patches (N, 3, H, W)
    -> uint8 (N, 3, H, W)."""
    if digits.dtype != torch.uint8 or patches.dtype != torch.uint8:
        raise DataError(f"mnistm blends uint8 images, got {digits.dtype} digits and {patches.dtype} patches")
    if digits.ndim != 4 or digits.shape[1] != 1 or patches.shape != (digits.shape[0], 3, *digits.shape[2:]):
        raise DataError(
            "mnistm needs grey digits (N, 1, H, W) and patches (N, 3, H, W), got "
            f"{tuple(digits.shape)} and {tuple(patches.shape)}"
        )
    return (patches.to(torch.int16) - digits.to(torch.int16)).abs().to(torch.uint8)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser on uint64 arrays (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        x = (x + np.uint64(0x9E3779B97F4A7C15)) & _MASK
        x = ((x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _MASK
        x = ((x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _MASK
        return x ^ (x >> np.uint64(31))


def patch_choice(
    index, split: str, seed: int, pool_size: int, positions: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image, row offset, column offset) for the digits at ``index`` of ``split``: int64 arrays (N,).

    A function of ``(seed, split, index)`` only: image in ``0..pool_size-1``, offsets in
    ``0..positions[0]-1`` and ``0..positions[1]-1``.
    """
    if split not in _SPLITS:
        raise DataError(f"mnistm: unknown split {split!r}; choose train or test")
    index = np.asarray(index, dtype=np.int64)
    key = np.uint64((int(seed) * 2 + _SPLITS.index(split)) & 0xFFFFFFFFFFFFFFFF)
    h = _splitmix64(_splitmix64(index.astype(np.uint64) ^ _splitmix64(np.full(index.shape, key, dtype=np.uint64))))
    image = (h % np.uint64(pool_size)).astype(np.int64)
    h2 = _splitmix64(h)
    dy = (h2 % np.uint64(positions[0])).astype(np.int64)
    dx = ((h2 >> np.uint64(32)) % np.uint64(positions[1])).astype(np.int64)
    return image, dy, dx


def _folder(data_dir) -> Path:
    from .download import cache_dir

    places = ([Path(os.path.expanduser(os.fspath(data_dir))) / FOLDER] if data_dir is not None else []) + [
        cache_dir(FOLDER)
    ]
    for p in places:
        if p.is_dir():
            return p
    raise DataError(
        f"mnistm needs the CIFAR-10 test images as JPEGs for its patches: put them as <class>/<NNNN>.jpg "
        f"(1,000 per class) in {' or '.join(repr(str(p)) for p in places)}"
    )


@functools.lru_cache(maxsize=4)
def _read_pool(folder: str, split: str) -> torch.Tensor:
    from PIL import Image

    from .sources import CIFAR10_CLASSES

    paths = []
    for name in CIFAR10_CLASSES:
        d = Path(folder) / name
        numbered = sorted((int(p.stem), p) for p in d.glob("*.jpg") if p.stem.isdigit()) if d.is_dir() else []
        paths += [p for k, p in numbered if (k < TRAIN_FILES) == (split == "train")]
    if not paths:
        which = f"NNNN < {TRAIN_FILES:04d}" if split == "train" else f"NNNN >= {TRAIN_FILES:04d}"
        raise DataError(
            f"mnistm: {folder!r} has no patch image for the {split} split (<class>/<NNNN>.jpg with {which})"
        )
    out = np.empty((len(paths), 32, 32, 3), dtype=np.uint8)
    for i, path in enumerate(paths):
        try:
            with Image.open(path) as img:
                out[i] = np.asarray(img.convert("RGB").resize((32, 32)))
        except (OSError, ValueError) as e:
            raise DataError(f"mnistm: cannot read the patch image {str(path)!r} ({e})") from None
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


def patch_pool(split: str, data_dir=None) -> torch.Tensor:
    """The patch images of ``split``: uint8 (P, 3, 32, 32), class by class, files in order
    (P = 8,000 for train and 2,000 for test with the full folder; a partial folder gives what it has).

    Raises:
        DataError: the folder (``data_dir/cifar10-test-jpeg`` or the cache) is missing or a file is unreadable.
    """
    if split not in _SPLITS:
        raise DataError(f"mnistm: unknown split {split!r}; choose train or test")
    return _read_pool(str(_folder(data_dir)), split)


def patches(pool: torch.Tensor, index, split: str, seed: int, size: tuple[int, int]) -> torch.Tensor:
    """The RGB patches (N, 3, H, W) of the digits at ``index``: crops of ``pool`` images (enlarged when
    smaller than ``size``)."""
    h, w = size
    if pool.shape[2] < h or pool.shape[3] < w:
        side = max(h, w)
        pool = torch.nn.functional.interpolate(pool.float(), size=(side, side), mode="bilinear", align_corners=False)
        pool = pool.round().clamp(0, 255).to(torch.uint8)
    image, dy, dx = patch_choice(index, split, seed, len(pool), (pool.shape[2] - h + 1, pool.shape[3] - w + 1))
    rows = torch.from_numpy(dy)[:, None] + torch.arange(h)  # (N, H)
    cols = torch.from_numpy(dx)[:, None] + torch.arange(w)  # (N, W)
    chosen = pool[torch.from_numpy(image)]  # (N, 3, S, S)
    n = len(chosen)
    return chosen[
        torch.arange(n)[:, None, None, None],
        torch.arange(3)[None, :, None, None],
        rows[:, None, :, None],
        cols[:, None, None, :],
    ]


def mnistm(digits: torch.Tensor, split: str, data_dir=None, *, seed: int = 0, index=None) -> torch.Tensor:
    """MNIST-M-style images of grey uint8 ``digits`` (N, 1, H, W) of ``split``: uint8 RGB (N, 3, H, W), values 0..255.

    ``index``: each digit's index in its split (default ``0..N-1``); the patch depends only
    on ``(seed, split, index)``. ``data_dir`` holds ``cifar10-test-jpeg/`` (see the module docstring).
    """
    digits = torch.as_tensor(digits)
    if digits.ndim != 4 or digits.shape[1] != 1:
        raise DataError(f"mnistm needs grey digits (N, 1, H, W), got {tuple(digits.shape)}")
    index = np.arange(len(digits)) if index is None else np.asarray(index)
    if index.shape != (len(digits),):
        raise DataError(f"mnistm: index has shape {index.shape}, expected ({len(digits)},)")
    pool = patch_pool(split, data_dir)
    return blend(digits, patches(pool, index, split, seed, tuple(digits.shape[2:])))
