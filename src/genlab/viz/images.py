"""Image grids, PNG and GIF files on Pillow (genlab does not depend on torchvision).

Images are float tensors in [0, 1] of shape (N, C, H, W) with C = 1 or 3.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from ..io import atomic_write_bytes

#: The largest picture genlab writes, in pixels (an animation: its frames together): 64 megapixels.
MAX_PIXELS = 64_000_000


def check_pixels(height: int, width: int, frames: int = 1) -> None:
    """Refuse, before it is drawn, a picture of ``frames`` frames of height x width pixels
    above :data:`MAX_PIXELS` (a one-line GenlabError naming its size and the cap)."""
    from ..errors import GenlabError

    total = height * width * frames
    if total > MAX_PIXELS:
        size = f"{width}x{height} pixels" + (f" in {frames} frames" if frames > 1 else "")
        raise GenlabError(
            f"the picture would be {size} ({total / 1e6:,.0f} megapixels), over the limit of "
            f"{MAX_PIXELS // 10**6} megapixels; ask for fewer images or frames, or a smaller --scale"
        )


def grid_size(n: int, h: int, w: int, nrow: int | None = None, padding: int = 2) -> tuple[int, int, int]:
    """(height, width, images per row) of :func:`make_grid`'s grid of n images of h x w."""
    nrow = nrow or max(1, math.ceil(math.sqrt(n)))
    rows = math.ceil(n / nrow)
    return rows * (h + padding) + padding, nrow * (w + padding) + padding, nrow


def make_grid(images: Tensor, nrow: int | None = None, padding: int = 2, pad_value: float = 1.0) -> Tensor:
    """(N, C, H, W) in [0, 1] -> one (C, H', W') image, ``nrow`` images per row
    (default: a square-ish grid)."""
    if images.dim() != 4:
        raise ValueError(f"expected images of shape (N, C, H, W), got {tuple(images.shape)}")
    n, c, h, w = images.shape
    height, width, nrow = grid_size(n, h, w, nrow, padding)
    check_pixels(height, width)
    grid = torch.full((c, height, width), pad_value, dtype=torch.float32)
    for i in range(n):
        r, k = divmod(i, nrow)
        y, x = padding + r * (h + padding), padding + k * (w + padding)
        grid[:, y : y + h, x : x + w] = images[i].detach().float().cpu()
    return grid


def to_pil(image: Tensor, scale: int = 1) -> Image.Image:
    """(C, H, W) in [0, 1] -> a Pillow image (grey for C = 1), upscaled by ``scale`` (nearest)."""
    arr = (image.detach().float().cpu().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    img = Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr, mode="L" if arr.shape[2] == 1 else "RGB")
    return upscale(img, scale)


def upscale(img: Image.Image, scale: int) -> Image.Image:
    """``img`` ``scale`` times larger (nearest neighbour); refused above :data:`MAX_PIXELS`."""
    if scale <= 1:
        return img
    check_pixels(img.height * scale, img.width * scale)
    return img.resize((img.width * scale, img.height * scale), Image.NEAREST)


#: The file formats of pictures, by the extension of the file's name.
PICTURE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}


def save_picture(img: Image.Image, path: str | Path) -> Path:
    """Write ``img`` atomically in the format its name's extension says (:data:`PICTURE_FORMATS`;
    JPEG at quality 95); any other extension is a GenlabError listing them."""
    from ..errors import GenlabError

    path = Path(path)
    fmt = PICTURE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise GenlabError(
            f"{path}: pictures are written as {', '.join(PICTURE_FORMATS)} files; name it with one of these extensions"
        )
    buf = io.BytesIO()
    img.save(buf, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    atomic_write_bytes(path, buf.getvalue())
    return path


def save_png(image: Tensor, path: str | Path, scale: int = 1) -> Path:
    """Save one (C, H, W) image, or a batch (N, C, H, W) as a grid, atomically, as a PNG (a JPEG
    under a .jpg or .jpeg name, see :func:`save_picture`)."""
    return save_picture(to_pil(make_grid(image) if image.dim() == 4 else image, scale), path)


def save_gif(frames: list[Tensor], path: str | Path, duration_ms: int = 80, scale: int = 1) -> Path:
    """Save a list of (C, H, W) images (or (N, C, H, W) batches, shown as grids) as a looping GIF."""
    frames = [make_grid(f) if f.dim() == 4 else f for f in frames]
    check_pixels(frames[0].shape[1] * scale, frames[0].shape[2] * scale, len(frames))
    pics = [to_pil(f, scale) for f in frames]
    pics = [p.convert("P", palette=Image.ADAPTIVE) if p.mode == "RGB" else p for p in pics]
    buf = io.BytesIO()
    pics[0].save(buf, format="GIF", save_all=True, append_images=pics[1:], duration=duration_ms, loop=0)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def load_image(path: str | Path, channels: int, size: tuple[int, int] | None = None) -> Tensor:
    """Read an image file as (C, H, W) in [0, 1]; ``size`` = (H, W) resizes it. Transparent
    pixels are composited onto white; a file Pillow cannot decode is a GenlabError."""
    from PIL import UnidentifiedImageError

    from ..data.images import to_mode
    from ..errors import GenlabError

    try:
        with Image.open(path) as opened:
            img = to_mode(opened, channels)
    except FileNotFoundError:
        raise GenlabError(f"image file {str(path)!r} not found") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        kind = "not an image Pillow can read" if isinstance(e, UnidentifiedImageError) else f"a damaged image ({e})"
        raise GenlabError(f"{str(path)!r} is {kind}; give a PNG, JPEG, BMP, GIF or WebP file") from None
    if size is not None and (img.height, img.width) != tuple(size):
        img = img.resize((size[1], size[0]), Image.BILINEAR)
    arr = np.asarray(img, dtype=np.float32) / 255.0
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return torch.from_numpy(arr).permute(2, 0, 1).contiguous()
