"""Images from ``.npy`` / ``.npz`` files (always ``allow_pickle=False``).

Accepted content:

* images: the array ``x`` or ``images`` (or the only array of the file), shaped
  ``(N, H, W)``, ``(N, H, W, C)`` or ``(N, C, H, W)`` with ``C`` in ``{1, 3}``.
  A 4-D array whose last axis is 1 or 3 is channels-last (also when axis 1 is
  1 or 3 too); otherwise axis 1 must be 1 or 3 (channels-first).
* values: ``uint8`` 0..255; floats in ``[0, 1]`` (scaled by 255 and rounded;
  anything outside is an error); other integer types with values in 0..255;
  ``bool`` (False/True -> 0/255).
* labels: optional integer array ``y`` or ``labels`` of shape ``(N,)``.

Splits: a ``.npz`` with ``x_train``/``x_test`` (or ``images_train``/
``images_test``, labels ``y_train``/``labels_train`` ...) uses them ("all" =
both). Otherwise the file has one split: "train", "test" and "all" all return
every image.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from .errors import DataError

_IMAGE_KEYS = ("x", "images")
_LABEL_KEYS = ("y", "labels")


def to_nchw_uint8(x: np.ndarray, where: str) -> np.ndarray:
    """Validate and convert an image array to uint8 ``(N, C, H, W)`` (see module doc)."""
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4 and x.shape[3] in (1, 3):
        x = x.transpose(0, 3, 1, 2)
    elif not (x.ndim == 4 and x.shape[1] in (1, 3)):
        raise DataError(
            f"{where}: images must be shaped (N, H, W), (N, H, W, C) or (N, C, H, W) with C in {{1, 3}}, got {x.shape}"
        )
    if x.dtype == np.uint8:
        out = x
    elif x.dtype == np.bool_:
        out = x.astype(np.uint8) * 255
    elif np.issubdtype(x.dtype, np.floating):
        finite = np.isfinite(x)
        if not finite.all():
            n_nan, n_inf = int(np.isnan(x).sum()), int(np.isinf(x).sum())
            raise DataError(
                f"{where}: the images hold {n_nan} NaN and {n_inf} infinite value(s) (of {x.size}); "
                "replace them (e.g. numpy.nan_to_num) or drop those images"
            )
        if x.size and not (x.min() >= 0.0 and x.max() <= 1.0):
            raise DataError(
                f"{where}: float images must lie in [0, 1] (got min {x.min():.4g}, max {x.max():.4g}); "
                "rescale them, or store uint8 0..255"
            )
        out = np.round(x * 255.0).astype(np.uint8)
    elif np.issubdtype(x.dtype, np.integer):
        if x.size and (x.min() < 0 or x.max() > 255):
            raise DataError(f"{where}: integer images must lie in 0..255 (got {x.min()}..{x.max()})")
        out = x.astype(np.uint8)
    else:
        raise DataError(f"{where}: unsupported image dtype {x.dtype}; use uint8 0..255 or float 0..1")
    return np.ascontiguousarray(out)


def _labels(y: np.ndarray | None, n: int, where: str) -> np.ndarray | None:
    if y is None:
        return None
    if not np.issubdtype(y.dtype, np.integer) or y.shape != (n,) or (y.size and y.min() < 0):
        raise DataError(f"{where}: labels must be non-negative integers shaped ({n},), got {y.dtype} {y.shape}")
    return y.astype(np.int64)


def _pick(arrays: dict[str, np.ndarray], keys: tuple[str, ...], suffix: str = "") -> np.ndarray | None:
    for k in keys:
        if k + suffix in arrays:
            return arrays[k + suffix]
    return None


def _unreadable(p: Path, error: Exception) -> str:
    """Why ``np.load`` failed, in words that never point at unsafe (pickle) loading."""
    with open(p, "rb") as f:
        head = f.read(6)
    if head != b"\x93NUMPY" and not head.startswith(b"PK"):
        return f"{str(p)!r} is not a valid .npz/.npy file (neither a NumPy array file nor a zip archive of them)"
    if "pickle" in str(error).lower() or "object" in str(error).lower():
        return (
            f"{str(p)!r} holds Python objects, not numbers; genlab reads numeric "
            "arrays only (uint8 0..255 or float 0..1)"
        )
    return f"{str(p)!r} is a damaged .npz/.npy file ({type(error).__name__})"


def load_array_file(kind: str, path: str, split: str) -> tuple[np.ndarray, np.ndarray | None]:
    """uint8 ``(N, C, H, W)`` images and optional labels from an npy/npz file."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise DataError(f"{kind} file {str(p)!r} not found")
    try:
        loaded = np.load(p, allow_pickle=False)
        if isinstance(loaded, np.ndarray):  # a .npy file
            arrays = {"x": loaded}
        else:  # a .npz archive
            with loaded:
                arrays = {k: loaded[k] for k in loaded.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError, KeyError) as e:
        raise DataError(_unreadable(p, e)) from None

    if any(_pick(arrays, _IMAGE_KEYS, s) is not None for s in ("_train", "_test")):
        splits = ["_train", "_test"] if split == "all" else [f"_{split}"]
        xs, ys = [], []
        for s in splits:
            x = _pick(arrays, _IMAGE_KEYS, s)
            if x is None:
                raise DataError(f"{str(p)!r} has no array 'x{s}' for split {split!r}")
            xs.append(to_nchw_uint8(x, f"{p}[x{s}]"))
            ys.append(_labels(_pick(arrays, _LABEL_KEYS, s), len(xs[-1]), f"{p}[y{s}]"))
        if any(y is None for y in ys):
            ys = [None]
        return np.concatenate(xs), (np.concatenate(ys) if ys[0] is not None else None)

    x = _pick(arrays, _IMAGE_KEYS)
    if x is None:
        if len(arrays) != 1:
            raise DataError(f"{str(p)!r} holds arrays {sorted(arrays)}; name the images 'x' or 'images'")
        x = next(iter(arrays.values()))
    images = to_nchw_uint8(x, str(p))
    return images, _labels(_pick(arrays, _LABEL_KEYS), len(images), str(p))
