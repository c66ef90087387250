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


def make_grid(images: Tensor, nrow: int | None = None, padding: int = 2, pad_value: float = 1.0) -> Tensor:
    """(N, C, H, W) in [0, 1] -> one (C, H', W') image, ``nrow`` images per row
    (default: a square-ish grid)."""
    if images.dim() != 4:
        raise ValueError(f"expected images of shape (N, C, H, W), got {tuple(images.shape)}")
    n, c, h, w = images.shape
    nrow = nrow or max(1, math.ceil(math.sqrt(n)))
    rows = math.ceil(n / nrow)
    grid = torch.full((c, rows * (h + padding) + padding, nrow * (w + padding) + padding), pad_value, dtype=torch.float32)
    for i in range(n):
        r, k = divmod(i, nrow)
        y, x = padding + r * (h + padding), padding + k * (w + padding)
        grid[:, y : y + h, x : x + w] = images[i].detach().float().cpu()
    return grid


def to_pil(image: Tensor, scale: int = 1) -> Image.Image:
    """(C, H, W) in [0, 1] -> a Pillow image (grey for C = 1), upscaled by ``scale`` (nearest)."""
    arr = (image.detach().float().cpu().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    img = Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr, mode="L" if arr.shape[2] == 1 else "RGB")
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    return img


def save_png(image: Tensor, path: str | Path, scale: int = 1) -> Path:
    """Save one (C, H, W) image, or a batch (N, C, H, W) as a grid, as a PNG (atomically)."""
    if image.dim() == 4:
        image = make_grid(image)
    buf = io.BytesIO()
    to_pil(image, scale).save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def save_gif(frames: list[Tensor], path: str | Path, duration_ms: int = 80, scale: int = 1) -> Path:
    """Save a list of (C, H, W) images (or (N, C, H, W) batches, shown as grids) as a looping GIF."""
    pics = [to_pil(make_grid(f) if f.dim() == 4 else f, scale) for f in frames]
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
