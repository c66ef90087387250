"""Image decoding, resizing and channel conversion, and the folder loader.

Resizing rule (used for every source): the image is scaled so that it covers
the target ``(H, W)`` (the shorter side relative to the target matches it,
bilinear when enlarging, area averaging when shrinking), then center-cropped
to exactly ``(H, W)``. When the aspect ratios agree this is a plain resize.

Channel rule: 1 -> 3 repeats the grey channel; 3 -> 1 uses Pillow's ITU-R
601-2 luma ``L = (19595 R + 38470 G + 7471 B + 2^15) >> 16``.

Transparency rule: an image with an alpha channel (RGBA, LA, PA) or a palette or
grey image with a transparent colour is composited onto a **white** background
before it is converted (:func:`to_mode`), so that strokes drawn on a transparent
background come out as strokes on white, not as an all-black image.

Every decoded image goes through :func:`to_mode`, which also turns a photo the way its
EXIF orientation tag says it is shown and maps 16-bit grey (0..65535) to 8 bits.
"""

from __future__ import annotations

import os
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageOps

from .errors import DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
DEFAULT_SIZE = (64, 64)
_SIXTEEN_BIT_MODES = {"I", "I;16", "I;16L", "I;16B", "I;16N"}  # Pillow reads 16-bit grey PNGs as I;16 (or I)
_GREY_MODES = {"1", "L", "LA", "La", "F", *_SIXTEEN_BIT_MODES}


def fit_image(img: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Scale ``img`` to cover ``size = (H, W)``, then center-crop to exactly it."""
    th, tw = size
    w, h = img.size
    if (w, h) == (tw, th):
        return img
    scale = max(tw / w, th / h)
    nw, nh = max(tw, round(w * scale)), max(th, round(h * scale))
    resample = Image.Resampling.BOX if scale < 1 else Image.Resampling.BILINEAR
    img = img.resize((nw, nh), resample)
    left, top = (nw - tw) // 2, (nh - th) // 2
    return img.crop((left, top, left + tw, top + th))


def center_square(img: Image.Image) -> Image.Image:
    """Crop the central ``min(W, H)`` square (CelebA's 178x218 -> 178x178)."""
    w, h = img.size
    s = min(w, h)
    left, top = (w - s) // 2, (h - s) // 2
    return img.crop((left, top, left + s, top + s))


#: The background transparent pixels are composited onto (white).
BACKGROUND = (255, 255, 255)


def has_transparency(img: Image.Image) -> bool:
    """True for an alpha channel (RGBA, LA, PA, La, RGBa) or a transparent palette / grey / RGB colour."""
    return img.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in img.info


def from_16bit(img: Image.Image) -> Image.Image:
    """A 16-bit grey image (Pillow's modes I;16* and I) as 8-bit "L": each value v in 0..65535
    becomes round(v / 257), so 0 -> 0 and 65535 -> 255 (Pillow's own conversion clamps at 255,
    making every non-zero pixel white). A transparent grey level becomes an alpha channel ("LA")."""
    values = np.asarray(img).astype(np.int64).clip(0, 65535)
    grey = Image.fromarray(((values * 255 + 32767) // 65535).astype(np.uint8))
    transparent = img.info.get("transparency")
    if not isinstance(transparent, int):
        return grey
    return Image.merge("LA", (grey, Image.fromarray(np.where(values == transparent, 0, 255).astype(np.uint8))))


def to_mode(img: Image.Image, channels: int) -> Image.Image:
    """``img`` as "L" (``channels == 1``) or "RGB" (3): turned as its EXIF orientation says it is
    shown, 16-bit grey scaled to 8 bits (:func:`from_16bit`), transparent pixels composited onto white."""
    img = ImageOps.exif_transpose(img)
    if img.mode in _SIXTEEN_BIT_MODES:
        img = from_16bit(img)
    if has_transparency(img):
        rgba = img.convert("RGBA")
        img = Image.alpha_composite(Image.new("RGBA", rgba.size, BACKGROUND + (255,)), rgba).convert("RGB")
    return img.convert("L" if channels == 1 else "RGB")


def to_array(img: Image.Image, channels: int) -> np.ndarray:
    """PIL image -> uint8 array ``(C, H, W)`` with ``C = channels`` (1 or 3), transparency on white."""
    img = to_mode(img, channels)
    a = np.asarray(img, dtype=np.uint8)
    return a[None] if channels == 1 else a.transpose(2, 0, 1)


def convert_channels(images: np.ndarray, channels: int) -> np.ndarray:
    """uint8 ``(N, C, H, W)`` -> uint8 ``(N, channels, H, W)`` (see module doc)."""
    c = images.shape[1]
    if c == channels:
        return images
    if channels == 3:
        return np.repeat(images, 3, axis=1)
    rgb = images.astype(np.uint32)
    luma = (19595 * rgb[:, 0] + 38470 * rgb[:, 1] + 7471 * rgb[:, 2] + 0x8000) >> 16
    return luma.astype(np.uint8)[:, None]


def resize_images(images: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 ``(N, C, H, W)`` -> uint8 ``(N, C, *size)`` by :func:`fit_image`."""
    n, c, h, w = images.shape
    if (h, w) == tuple(size):
        return images
    out = np.empty((n, c, *size), dtype=np.uint8)
    for i in range(n):
        for j in range(c):
            out[i, j] = np.asarray(fit_image(Image.fromarray(images[i, j]), size))
    return out


def postprocess(images: np.ndarray, image_size: tuple[int, int] | None, channels: int | None) -> np.ndarray:
    """Apply the optional ``image_size`` and ``channels`` requests to ``(N, C, H, W)`` uint8."""
    if channels is not None:
        images = convert_channels(images, channels)
    if image_size is not None:
        images = resize_images(images, image_size)
    return np.ascontiguousarray(images)


# --------------------------------------------------------------------------- folders


@dataclass
class FolderImages:
    """Decoded images of a folder: uint8 ``(N, C, H, W)`` plus labels (or None)."""

    images: np.ndarray
    labels: np.ndarray | None
    class_names: list[str] | None


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith(".")


def list_images(root: Path) -> list[Path]:
    """All image files under ``root`` (recursive), sorted by relative path."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        found += [Path(dirpath, f) for f in filenames if _is_image(f)]
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def _probe(path: Path) -> tuple[tuple[int, int], bool] | None:
    """``((H, W), is_colour)`` from the file header, or None if unreadable."""
    try:
        with Image.open(path) as img:
            w, h = img.size
            if img.getexif().get(ExifTags.Base.Orientation, 1) in (5, 6, 7, 8):  # shown turned by 90 degrees
                w, h = h, w
            if img.mode == "P":
                pal = np.asarray(img.getpalette() or [0, 0, 0]).reshape(-1, 3)
                colour = bool((pal != pal[:, :1]).any())
            else:
                colour = img.mode not in _GREY_MODES
            return (h, w), colour
    except Exception:  # noqa: BLE001 - any decoder failure means "unreadable"
        return None


def _common_size(root: Path, sizes: list[tuple[int, int]]) -> tuple[int, int]:
    """The (H, W) every image of a folder has; a DataError listing the sizes when they differ."""
    counts = Counter(sizes)
    if len(counts) == 1:
        return sizes[0]
    found = ", ".join(f"{h}x{w} ({k} images)" for (h, w), k in counts.most_common(4)) + (
        ", ..." if len(counts) > 4 else ""
    )
    raise DataError(
        f"the images in folder {str(root)!r} have {len(counts)} sizes (height x width: {found}); choose the size "
        "to resize them to with image_size=(H, W) (genlab train: --set data.image_size=N for N x N, or [H, W])"
    )


def read_folder(
    root: str | os.PathLike,
    *,
    select: Callable[[int], np.ndarray] | None = None,
    image_size: tuple[int, int] | None = None,
    channels: int | None = None,
    class_names: list[str] | None = None,
    crop_square: bool = False,
) -> FolderImages:
    """Read every image under ``root`` into memory.

    Labels: if ``root`` holds no image directly and has sub-folders containing
    images, each top-level sub-folder is a class (sorted names -> 0..K-1, or
    the order of ``class_names`` if given; images nested deeper belong to
    their top-level folder). Otherwise the images are unlabeled.

    Defaults: ``image_size`` = the size all images share (images of several sizes
    are a DataError listing them: pass ``image_size``); ``channels`` = 3 if any
    image is colour, else 1. Both are decided over *all* readable images, so every
    split of a folder has the same shape.

    ``select(n)`` returns the indices (into the sorted list of readable files)
    to decode, e.g. one split; default all. ``crop_square`` first crops the
    central square (CelebA style).

    Unreadable files are skipped with a single warning giving their count.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"image folder {str(root)!r} does not exist or is not a folder")
    files = list_images(root)
    probes = [_probe(p) for p in files]
    bad = sum(p is None for p in probes)
    files = [f for f, p in zip(files, probes) if p is not None]
    probes = [p for p in probes if p is not None]
    if not files:
        raise DataError(
            f"no readable image in folder {str(root)!r} "
            f"(looked recursively for {', '.join(IMAGE_EXTENSIONS)}; {bad} unreadable)"
        )

    rel = [f.relative_to(root).parts for f in files]
    labels = None
    if all(len(parts) > 1 for parts in rel):
        names = class_names or sorted({parts[0] for parts in rel})
        index = {n: i for i, n in enumerate(names)}
        unknown = {parts[0] for parts in rel} - index.keys()
        if unknown:
            raise DataError(f"folder {str(root)!r} has unexpected class folders {sorted(unknown)}")
        labels = np.array([index[parts[0]] for parts in rel], dtype=np.int64)
        class_names = list(names)
    else:
        class_names = None

    if image_size is None:
        image_size = _common_size(root, [s for s, _ in probes])
    if channels is None:
        channels = 3 if any(c for _, c in probes) else 1

    chosen = np.arange(len(files)) if select is None else np.asarray(select(len(files)), dtype=np.int64)
    out = np.empty((len(chosen), channels, *image_size), dtype=np.uint8)
    keep = np.ones(len(chosen), dtype=bool)
    for row, i in enumerate(chosen):
        try:
            with Image.open(files[i]) as img:
                img = to_mode(img, channels)
                out[row] = to_array(fit_image(center_square(img) if crop_square else img, image_size), channels)
        except Exception:  # noqa: BLE001 - header was fine but the data is corrupt
            keep[row] = False
            bad += 1
    if bad:
        warnings.warn(f"skipped {bad} unreadable image file(s) in {str(root)!r}", stacklevel=3)
    if not keep.all():
        out, chosen = out[keep], chosen[keep]
    return FolderImages(out, labels[chosen] if labels is not None else None, class_names)
