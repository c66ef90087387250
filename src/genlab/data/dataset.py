"""The in-memory image data set returned by :func:`genlab.data.load`."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from .transforms import to_float

__all__ = ["ImageDataset"]


class ImageDataset(Dataset):
    """A set of images held in memory as uint8, with optional integer labels.

    Attributes:
        images: ``torch.uint8`` tensor of shape ``(N, C, H, W)``, values 0..255,
            ``C`` in ``{1, 3}``.
        labels: ``torch.int64`` tensor of shape ``(N,)`` with values in
            ``0..num_classes-1``, or ``None`` for an unlabeled set.
        num_classes: number of classes (0 when unlabeled).
        name: the data set's name (as given to :func:`genlab.data.load`).
        class_names: optional names of the classes, index = label.

    Indexing returns ``(x, y)``: ``x`` a float32 tensor ``(C, H, W)`` in
    ``[0, 1]`` (:func:`genlab.data.transforms.to_float`) and ``y`` a Python int
    (``-1`` when unlabeled).
    """

    def __init__(
        self,
        images: torch.Tensor | np.ndarray,
        labels: torch.Tensor | np.ndarray | None = None,
        num_classes: int | None = None,
        name: str = "",
        class_names: Sequence[str] | None = None,
    ):
        images = torch.as_tensor(images)
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] not in (1, 3):
            raise ValueError(
                f"images must be a uint8 tensor (N, C, H, W) with C in {{1, 3}}, "
                f"got {images.dtype} {tuple(images.shape)}"
            )
        if labels is not None:
            labels = torch.as_tensor(labels).to(torch.int64)
            if labels.shape != (images.shape[0],):
                raise ValueError(f"labels must have shape ({images.shape[0]},), got {tuple(labels.shape)}")
            if labels.numel() and labels.min() < 0:
                raise ValueError("labels must be non-negative")
            if num_classes is None:
                num_classes = int(labels.max()) + 1 if labels.numel() else 0
            elif labels.numel() and labels.max() >= num_classes:
                raise ValueError(f"label {int(labels.max())} out of range for num_classes={num_classes}")
        else:
            num_classes = 0
        self.images = images
        self.labels = labels
        self.num_classes = int(num_classes)
        self.name = name
        self.class_names = tuple(class_names) if class_names is not None else None

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of every image."""
        return tuple(self.images.shape[1:])

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        x = to_float(self.images[i])
        y = int(self.labels[i]) if self.labels is not None else -1
        return x, y

    def subset(self, indices) -> "ImageDataset":
        """A new data set with the images (and labels) at ``indices``.

        ``indices`` may be a sequence or tensor of ints, a boolean mask, a
        slice or a range. ``num_classes``, ``name`` and ``class_names`` are kept.
        """
        if isinstance(indices, range):
            indices = list(indices)
        if not isinstance(indices, slice):
            indices = torch.as_tensor(np.asarray(indices))
            if indices.dtype != torch.bool:
                indices = indices.to(torch.int64)
        return ImageDataset(
            self.images[indices],
            self.labels[indices] if self.labels is not None else None,
            num_classes=self.num_classes if self.labels is not None else None,
            name=self.name,
            class_names=self.class_names,
        )

    def __repr__(self) -> str:
        labels = f"{self.num_classes} classes" if self.labels is not None else "unlabeled"
        return f"ImageDataset({self.name!r}, n={len(self)}, shape={self.shape}, {labels})"
