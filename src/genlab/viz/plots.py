"""Plots drawn with matplotlib (the Agg canvas, no window and no global pyplot state,
so threads may draw at once): 2-D points over a discriminator's decision surface,
and sequences (audio) as waveforms. Every plot has axes, labels and a title, and
comes back as a Pillow image of exactly the requested size in pixels (or as a PNG
file written atomically).

Colours: real data black, generated points red; the surface runs from dark blue
("fake") to light yellow ("real"): the probability ``sigmoid(l)`` for the log-loss
objectives, the raw score min-max scaled over the plotted area for least squares
and hinge.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Callable

import torch
from PIL import Image
from torch import Tensor

from ..io import atomic_write_bytes

_DPI = 100
_FAKE = (40 / 255, 60 / 255, 130 / 255)
_REAL = (255 / 255, 245 / 255, 200 / 255)


def _figure(width_px: int, height_px: int):
    """A matplotlib Figure on an Agg canvas of ``width_px`` x ``height_px`` pixels."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_px / _DPI, height_px / _DPI), dpi=_DPI)
    FigureCanvasAgg(fig)
    return fig


def _to_image(fig) -> Image.Image:
    """Render ``fig`` -> an RGB Pillow image of the figure's pixel size."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI)
    buf.seek(0)
    with Image.open(buf) as img:
        return img.convert("RGB")


def save_image(img: Image.Image, path: str | Path) -> Path:
    """Write a Pillow image as a PNG file, atomically; returns the path."""
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


# --------------------------------------------------------------------------- 2-D points


def _extent(*clouds: Tensor) -> tuple[float, float, float, float]:
    pts = torch.cat([c.reshape(-1, 2) for c in clouds if c is not None and c.numel()])
    lo = torch.quantile(pts, 0.005, dim=0).minimum(torch.tensor([-2.5, -2.5]))
    hi = torch.quantile(pts, 0.995, dim=0).maximum(torch.tensor([2.5, 2.5]))
    return float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1])


def points_image(real: Tensor | None, fake: Tensor, surface: Callable[[Tensor], Tensor] | None = None,
                 extent: tuple[float, float, float, float] | None = None, size: int = 512, title: str = "",
                 surface_label: str = "D(x)") -> Image.Image:
    """Scatter ``real`` (N, 2) in black and ``fake`` (M, 2) in red over ``surface`` (a
    function from points (K, 2) to values in [0, 1], e.g. D's probability of "real",
    shown with a colour bar named ``surface_label``), on ``extent = (xmin, xmax, ymin,
    ymax)`` (default: fits the points, at least [-2.5, 2.5]^2). A ``size`` x ``size``
    RGB image."""
    from matplotlib.colors import LinearSegmentedColormap

    fake = torch.as_tensor(fake, dtype=torch.float32).reshape(-1, 2).cpu()
    real = torch.as_tensor(real, dtype=torch.float32).reshape(-1, 2).cpu() if real is not None else fake[:0]
    x0, x1, y0, y1 = extent or _extent(real, fake)
    fig = _figure(size, size)
    ax = fig.add_subplot(1, 1, 1)
    if surface is not None:
        res = 128
        xs, ys = torch.linspace(x0, x1, res), torch.linspace(y0, y1, res)
        grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), -1).reshape(-1, 2)
        with torch.inference_mode():
            v = torch.as_tensor(surface(grid)).float().reshape(res, res).clamp(0, 1).cpu()
        cmap = LinearSegmentedColormap.from_list("d_surface", [_FAKE, _REAL])
        shown = ax.imshow(v.numpy(), origin="lower", extent=(x0, x1, y0, y1), cmap=cmap, vmin=0.0, vmax=1.0,
                          interpolation="bilinear", aspect="auto")
        fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.02).set_label(surface_label, fontsize=8)
    small = max(1.0, (size / 512) ** 2 * 4.0)
    ax.scatter(real[:, 0].numpy(), real[:, 1].numpy(), s=small, color="black", linewidths=0, label=f"data ({len(real)})")
    ax.scatter(fake[:, 0].numpy(), fake[:, 1].numpy(), s=small, color=(220 / 255, 30 / 255, 30 / 255), linewidths=0,
               label=f"generated ({len(fake)})")
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_xlabel("x[0]", fontsize=8)
    ax.set_ylabel("x[1]", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.set_title(title or "samples", fontsize=9)
    if len(real) or len(fake):
        ax.legend(loc="upper right", fontsize=7, markerscale=3, framealpha=0.8)
    fig.tight_layout(pad=0.4)
    return _to_image(fig)


def plot_points(real: Tensor | None, fake: Tensor, path: str | Path, surface: Callable[[Tensor], Tensor] | None = None,
                extent: tuple[float, float, float, float] | None = None, size: int = 512, title: str = "") -> Path:
    """:func:`points_image` written as a PNG file; returns its path."""
    return save_image(points_image(real, fake, surface, extent, size, title), path)


def discriminator_surface(model) -> Callable[[Tensor], Tensor]:
    """D's output on points as values in [0, 1] (see the module docstring); the function
    has a ``label`` attribute naming what it shows."""
    from ..losses import d_output

    probability = model.config.objective in ("minimax", "non-saturating")

    def f(pts: Tensor) -> Tensor:
        was = model.training
        model.eval()
        try:
            with torch.inference_mode():
                v = d_output(model.config.objective, model.discriminate(pts.to(model.device))).float().cpu()
        finally:
            model.train(was)
        if probability:
            return v
        return (v - v.min()) / (v.max() - v.min()).clamp_min(1e-12)

    f.label = "D(x): probability of real" if probability else "D(x), min-max scaled"
    return f


def plot_gan_toy2d(model, path: str | Path, data: str | Tensor = "ring8", n: int = 1000,
                   generator: torch.Generator | None = None, size: int = 512) -> Path:
    """Plot a point GAN: ``n`` samples against ``n`` real points (``data``: a toy data set
    name, ``ring8``/``grid25``, or a tensor (N, 2)) over D's decision surface."""
    from ..data.toy2d import sample_toy

    title = data if isinstance(data, str) else ""
    if isinstance(data, str):
        data = sample_toy(data, n, generator=torch.Generator().manual_seed(0))
    fake = model.sample(n, generator=generator)
    if fake.dim() != 2 or fake.shape[1] != 2:
        raise ValueError(f"plot_gan_toy2d needs a model of 2-D points, its samples have shape {tuple(fake.shape)}")
    surface = discriminator_surface(model)
    return save_image(points_image(data, fake, surface, size=size, title=title, surface_label=surface.label), path)


# --------------------------------------------------------------------------- sequences


def waveform_image(x: Tensor, width: int = 512, row_height: int = 64, title: str = "") -> Image.Image:
    """Sequences (n, C, 1, L) or (n, C, L) in [0, 1] (e.g. WaveNet's mu-law audio codes /
    255) -> one RGB image, ``width`` x ``n * row_height`` pixels: one panel per sequence
    (channel 0), value against sample index, with the 0.5 line (silence) in grey."""
    seqs = x.detach().float().cpu().reshape(x.shape[0], -1, x.shape[-1])[:, 0].clamp(0, 1)
    n, length = seqs.shape
    fig = _figure(width, n * row_height)
    axes = fig.subplots(n, 1, sharex=True, squeeze=False)[:, 0]
    t = torch.arange(length).numpy()
    for i, (ax, seq) in enumerate(zip(axes, seqs)):
        ax.axhline(0.5, color="0.8", linewidth=0.8)
        ax.plot(t, seq.numpy(), color=(42 / 255, 91 / 255, 215 / 255), linewidth=0.8)
        ax.set_ylim(0, 1)
        ax.set_xlim(0, max(length - 1, 1))
        ax.set_yticks([0, 1])
        ax.tick_params(labelsize=6, length=2, pad=1)
        ax.set_ylabel(f"#{i}", fontsize=6, rotation=0, labelpad=8, va="center")
    axes[-1].set_xlabel("sample index", fontsize=6, labelpad=1)
    if title:
        axes[0].set_title(title, fontsize=7, pad=2)
    height = n * row_height
    top_px, bottom_px = (14 if title else 4), 22  # room for the title and the x axis labels
    fig.subplots_adjust(left=0.07, right=0.99, top=1 - min(0.3, top_px / height), bottom=min(0.4, bottom_px / height), hspace=0.15)
    return _to_image(fig)
