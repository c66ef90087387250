"""Images given to the page: an uploaded (or drawn) file -> a Pillow image ->
a tensor of the model's shape, the :class:`~genlab.explore.Explorer`'s input.

Files are read by :func:`read_upload`: at most ``MAX_UPLOAD_BYTES`` bytes and
``MAX_IMAGE_SIDE`` pixels a side, checked from the header before any pixel is
decoded; transparent pixels are laid over white (over black for sketches,
which are drawn white on black like the digits). :func:`image_tensor` fits the
image to the model's (C, H, W) as the data loaders do.
"""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image
from torch import Tensor

from ..explore.explorer import RequestError

MAX_UPLOAD_BYTES = 5 * 1024 * 1024  # an uploaded image file
MAX_IMAGE_SIDE = 4096  # pixels, either side of an uploaded image


def read_upload(path: str | Path | None, *, background: int = 255) -> Image.Image:
    """An uploaded image file -> an RGB Pillow image.

    Refused (RequestError, one sentence naming the file) when it is empty, above
    ``MAX_UPLOAD_BYTES`` bytes or ``MAX_IMAGE_SIDE`` pixels a side (read from the header
    before decoding), or not an image Pillow can read; transparency is laid over grey
    level ``background``.
    """
    if path is None:
        raise RequestError("upload an image first (or draw one, or click an example)")
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise RequestError(
            f"{path.name} is no longer on the server (uploads are kept for a while only): upload it again"
        ) from None
    if size == 0:
        raise RequestError(f"{path.name} is empty (0 bytes), not an image")
    if size > MAX_UPLOAD_BYTES:
        raise RequestError(f"{path.name} is {size / 2**20:.1f} MiB; at most {MAX_UPLOAD_BYTES / 2**20:.0f} MiB")
    try:
        with Image.open(path) as img:
            if max(img.size) > MAX_IMAGE_SIDE:
                raise RequestError(f"the image is {img.width}x{img.height} pixels; at most {MAX_IMAGE_SIDE} a side")
            img.load()
            return flatten(img, background)
    except RequestError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise RequestError(
            f"{path.name} is too large ({_reason(e, path)}); at most {MAX_IMAGE_SIDE} pixels a side"
        ) from None
    except (OSError, SyntaxError, ValueError) as e:
        raise RequestError(f"{path.name} is not an image PIL can read: {_reason(e, path)}") from None


def _reason(error: Exception, path: Path) -> str:
    """Pillow's message without the server's path of the file."""
    return str(error).replace(f" {str(path)!r}", "").replace(str(path), path.name) or type(error).__name__


def flatten(img: Image.Image, background: int = 255) -> Image.Image:
    """Any Pillow image -> RGB, transparent pixels laid over grey level ``background``."""
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        base = Image.new("RGBA", rgba.size, (background, background, background, 255))
        return Image.alpha_composite(base, rgba).convert("RGB")
    return img.convert("RGB")


def image_tensor(img: Image.Image, shape: tuple[int, int, int], fit: bool = False) -> Tensor:
    """A Pillow image -> (C, H, W) in [0, 1] of ``shape``, 8-bit levels / 255.

    Grey <-> RGB conversion as in :mod:`genlab.data.images`. With ``fit`` the image is
    scaled to cover (H, W) and center-cropped, the rule the data loaders use; without
    it an image of another size is an error.
    """
    from ..data.images import fit_image, to_array, to_mode

    c, h, w = (int(s) for s in shape)
    if max(img.size) > MAX_IMAGE_SIDE:
        raise RequestError(f"the image is {img.width}x{img.height} pixels; at most {MAX_IMAGE_SIDE} a side")
    if not fit and (img.height, img.width) != (h, w):
        raise RequestError(
            f"the image is {img.width}x{img.height} pixels (width x height), the model takes {w}x{h}; "
            "pass fit=True to scale and center-crop it"
        )
    arr = to_array(fit_image(to_mode(img, c), (h, w)), c)
    return torch.from_numpy(arr.copy()).float().div(255.0)
