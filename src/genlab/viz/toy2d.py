"""Plots for toy 2-D GANs (Pillow only): real vs generated points over the
discriminator's decision surface.

The background shows D's output on a grid (dark blue: "fake", light yellow:
"real"): the probability ``sigmoid(l)`` for the log-loss objectives, the raw score
min-max scaled over the plotted area for least squares and hinge. Real points are
drawn in black, generated points in red.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Callable

import torch
from PIL import Image, ImageDraw
from torch import Tensor

from ..io import atomic_write_bytes

_FAKE = torch.tensor([40.0, 60.0, 130.0])
_REAL = torch.tensor([255.0, 245.0, 200.0])


def _extent(*clouds: Tensor) -> tuple[float, float, float, float]:
    pts = torch.cat([c.reshape(-1, 2) for c in clouds if c is not None and c.numel()])
    lo = torch.quantile(pts, 0.005, dim=0).minimum(torch.tensor([-2.5, -2.5]))
    hi = torch.quantile(pts, 0.995, dim=0).maximum(torch.tensor([2.5, 2.5]))
    return float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1])


def plot_toy2d(real: Tensor, fake: Tensor, path: str | Path, surface: Callable[[Tensor], Tensor] | None = None,
               extent: tuple[float, float, float, float] | None = None, size: int = 512, title: str = "") -> Path:
    """Scatter ``real`` (N, 2) in black and ``fake`` (M, 2) in red over ``surface``
    (a function from points (K, 2) to values in [0, 1], e.g. D's probability of "real"),
    on ``extent = (xmin, xmax, ymin, ymax)`` (default: fits the points, at least
    [-2.5, 2.5]^2). Saves a ``size`` x ``size`` PNG and returns its path."""
    real = torch.as_tensor(real, dtype=torch.float32).reshape(-1, 2).cpu()
    fake = torch.as_tensor(fake, dtype=torch.float32).reshape(-1, 2).cpu()
    x0, x1, y0, y1 = extent or _extent(real, fake)
    if surface is not None:
        res = 128
        xs = torch.linspace(x0, x1, res)
        ys = torch.linspace(y1, y0, res)  # image rows go top (ymax) to bottom
        grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), -1).reshape(-1, 2)
        with torch.inference_mode():
            v = torch.as_tensor(surface(grid)).float().reshape(res, res).clamp(0, 1).cpu()
        rgb = (_FAKE + (_REAL - _FAKE) * v[..., None]).round().to(torch.uint8).numpy()
        img = Image.fromarray(rgb, "RGB").resize((size, size), Image.BILINEAR)
    else:
        img = Image.new("RGB", (size, size), (255, 255, 255))
    draw = ImageDraw.Draw(img)

    def to_px(p: Tensor) -> Tensor:
        px = (p[:, 0] - x0) / (x1 - x0) * (size - 1)
        py = (y1 - p[:, 1]) / (y1 - y0) * (size - 1)
        return torch.stack([px, py], 1)

    for pts, color, r in ((real, (0, 0, 0), 1.5), (fake, (220, 30, 30), 1.5)):
        for px, py in to_px(pts).tolist():
            if -r <= px <= size + r and -r <= py <= size + r:
                draw.ellipse([px - r, py - r, px + r, py + r], fill=color)
    draw.text((6, 4), (title + "  " if title else "") + "black: data, red: generated", fill=(0, 0, 0))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def discriminator_surface(model) -> Callable[[Tensor], Tensor]:
    """D's output on points as values in [0, 1] (see the module docstring)."""
    from ..losses import d_output

    def f(pts: Tensor) -> Tensor:
        was = model.training
        model.eval()
        try:
            with torch.inference_mode():
                v = d_output(model.config.objective, model.discriminate(pts.to(model.device))).float().cpu()
        finally:
            model.train(was)
        if model.config.objective in ("minimax", "non-saturating"):
            return v
        return (v - v.min()) / (v.max() - v.min()).clamp_min(1e-12)

    return f


def plot_gan_toy2d(model, path: str | Path, data: str | Tensor = "ring8", n: int = 1000,
                   generator: torch.Generator | None = None, size: int = 512) -> Path:
    """Plot a point GAN: ``n`` samples against ``n`` real points (``data``: a toy data set
    name, ``ring8``/``grid25``, or a tensor (N, 2)) over D's decision surface."""
    from ..data.toy2d import sample_toy

    if isinstance(data, str):
        title = data
        data = sample_toy(data, n, generator=torch.Generator().manual_seed(0))
    else:
        title = ""
    fake = model.sample(n, generator=generator)
    if fake.dim() != 2 or fake.shape[1] != 2:
        raise ValueError(f"plot_gan_toy2d needs a model of 2-D points, its samples have shape {tuple(fake.shape)}")
    return plot_toy2d(data, fake, path, surface=discriminator_surface(model), size=size, title=title)
