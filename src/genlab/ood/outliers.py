"""Outlier sets shaped like an in-distribution test set: synthetic ones (noise, constant
images, inverted or flipped copies) and other data sets converted to the same shape."""

from __future__ import annotations

import torch


def outlier_set(spec: str, reference_dataset, n: int | None = None, data_dir: str | None = None, *, seed: int = 0):
    """An outlier set shaped like ``reference_dataset`` (the in-distribution test split).

    ``spec``:
      * "noise": uniform random pixels; "constant": images of one random grey/colour value each;
      * "inverted": 255 - the reference images; "flipped": the reference images upside down;
        "hflipped": mirrored left-right;
      * any name :func:`genlab.data.load` accepts ("mnist", "folder:<path>", ...): its test
        split (folders: all images), resized and converted to the reference's (C, H, W).

    Returns an ImageDataset of ``n`` images (default: as many as the reference; a
    loaded data set is cut to its first ``n``).
    """
    from ..data import ImageDataset
    from ..data import load as load_data

    c, h, w = reference_dataset.shape
    ref = reference_dataset.images
    n = len(ref) if n is None else int(n)
    g = torch.Generator().manual_seed(seed)
    if spec == "noise":
        images = torch.randint(0, 256, (n, c, h, w), generator=g, dtype=torch.uint8)
    elif spec == "constant":
        images = torch.randint(0, 256, (n, c, 1, 1), generator=g, dtype=torch.uint8).expand(n, c, h, w).contiguous()
    elif spec in ("inverted", "flipped", "hflipped"):
        base = ref[:n]
        images = 255 - base if spec == "inverted" else base.flip(2 if spec == "flipped" else 3)
    else:
        split = "all" if spec.split(":", 1)[0] in ("folder", "npz", "npy") else "test"
        ds = load_data(spec, split, data_dir, image_size=(h, w), channels=c)
        images = ds.images[:n]
    return ImageDataset(images.contiguous(), name=spec)


__all__ = ["outlier_set"]
