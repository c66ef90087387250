"""Reading the explorer's requests and writing its replies: bounded numbers from a
JSON body, strict JSON values, base64 PNG images in and out.

Bad input raises
:class:`RequestError` with a message that says what was wrong and what is accepted.
"""

from __future__ import annotations

import base64
import binascii
import io
import math
from typing import Any

import torch
from PIL import Image
from torch import Tensor

from ..errors import GenlabError
from ..viz.images import to_pil

MAX_IMAGE_SIDE = 4096  # pixels, either side of an uploaded image
MAX_LATENT_VALUE = 100.0  # |z_j| accepted from a request


class RequestError(GenlabError, ValueError):
    """A request the explorer cannot answer as asked; the message says what would be right."""


# ----------------------------------------------------------------------------- capabilities


def _get_int(body: dict, key: str, default: int, lo: int, hi: int) -> int:
    value = body.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise RequestError(f"{key!r} must be an integer in {lo}..{hi}, got {value!r}")
    if not lo <= value <= hi:
        raise RequestError(f"{key!r} must be in {lo}..{hi}, got {value}")
    return value


def _get_floats(body: dict, key: str, max_len: int, exact: bool = False) -> list[float] | None:
    value = body.get(key)
    if value is None:
        return None
    what = f"exactly {max_len}" if exact else f"at most {max_len}"
    if not isinstance(value, list) or not (len(value) == max_len if exact else len(value) <= max_len):
        raise RequestError(f"{key!r} must be a list of {what} numbers, got {_short(value)}")
    for v in value:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or abs(v) > MAX_LATENT_VALUE:
            raise RequestError(f"{key!r} must hold finite numbers within +-{MAX_LATENT_VALUE:g}, got {v!r}")
    return [float(v) for v in value]


def finite(value: Any) -> Any:
    """NaN and infinities -> None, recursively, so that an answer is strict JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def png_base64(image: Tensor) -> str:
    """One (C, H, W) image in [0, 1] -> base64 text of its PNG (8 bits per channel)."""
    buf = io.BytesIO()
    to_pil(image).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _image_reply(image: Tensor, **extra) -> dict:
    return {"image": png_base64(image), "width": int(image.shape[-1]), "height": int(image.shape[-2]), **extra}


def _pil_reply(img: Image.Image, **extra) -> dict:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return {
        "image": base64.b64encode(buf.getvalue()).decode("ascii"),
        "width": img.width,
        "height": img.height,
        **extra,
    }


def decode_upload(text: Any, shape: tuple[int, int, int], fit: bool) -> Tensor:
    """Base64 image text (a ``data:`` URL works) -> (1, C, H, W) in [0, 1] of the model's shape.

    Grey <-> RGB conversion as in :mod:`genlab.data.images`. With ``fit`` the image is
    scaled to cover (H, W) and center-cropped, the rule the data loaders use; without
    it an image of another size is an error.
    """
    from ..data.images import fit_image, to_array, to_mode

    if not isinstance(text, str) or not text:
        raise RequestError("'image' must be a PNG file as base64 text (a data: URL works)")
    if text.startswith("data:"):
        text = text.partition(",")[2]
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise RequestError("'image' is not valid base64 text") from None
    c, h, w = shape
    try:
        with Image.open(io.BytesIO(raw)) as img:
            if max(img.size) > MAX_IMAGE_SIDE:
                raise RequestError(f"the image is {img.width}x{img.height} pixels; at most {MAX_IMAGE_SIDE} a side")
            img.load()
            if not fit and (img.height, img.width) != (h, w):
                raise RequestError(
                    f"the image is {img.width}x{img.height} pixels (width x height), the model takes {w}x{h}; "
                    'send "fit": true to scale and center-crop it'
                )
            arr = to_array(fit_image(to_mode(img, c), (h, w)), c)
    except (OSError, Image.DecompressionBombError, SyntaxError, ValueError) as e:
        if isinstance(e, RequestError):
            raise
        raise RequestError(f"'image' could not be decoded as an image ({type(e).__name__}: {e})") from None
    return torch.from_numpy(arr.copy()).float().div(255.0).unsqueeze(0)
