"""Figures with axes (matplotlib, object API only: no pyplot, no global state, safe
from several threads): training curves, the 2-D latent manifold with its z values
on the axes, point GANs over D's surface, sequences (audio) as waveforms, 2-D
projections of codes coloured by class. Each function returns a
``matplotlib.figure.Figure``; :func:`png_bytes` renders one to PNG bytes,
:func:`figure_image` to a Pillow image, :func:`save_figure` to a PNG file.

Points over D's surface (:func:`points_figure`, :func:`discriminator_surface`):
generated points in red over real ones in black, the surface from dark blue "fake"
to yellow "real": the probability ``sigmoid(l)`` for the log-loss objectives, the
raw score min-max scaled over the plotted area for least squares and hinge.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from ..io import atomic_write_bytes


def _figure(width: float = 6.0, height: float = 4.0):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def png_bytes(fig, dpi: int = 100) -> bytes:
    """A figure as PNG bytes (``dpi`` dots per inch of the figure's size in inches)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def figure_image(fig, dpi: int = 100) -> Image.Image:
    """A figure as an RGB Pillow image (figure size in inches times ``dpi`` pixels)."""
    with Image.open(io.BytesIO(png_bytes(fig, dpi))) as img:
        return img.convert("RGB")


def save_figure(fig, path: str | Path, dpi: int = 100) -> Path:
    """A figure written as a PNG file, atomically; returns the path."""
    atomic_write_bytes(path, png_bytes(fig, dpi))
    return Path(path)


def loss_curves(series: Mapping[str, Sequence[Sequence[float]]], title: str = "training"):
    """One line per logged quantity ending in ``/loss`` (or every series when none does), each
    once: of series logged under two names (a GAN's ``discriminator/loss`` and
    ``discriminator/d/loss``) the shorter name is drawn. ``series`` maps a name to
    [[step, value], ...] (``Explorer.card()["metrics"]["series"]``). A second panel shows
    throughput (``images_per_s``) when it is logged."""
    logged = {k: v for k, v in series.items() if k.endswith("/loss") and v} or {
        k: v for k, v in series.items() if v and k not in ("lr", "time", "images_per_s")
    }
    losses: dict[str, Sequence[Sequence[float]]] = {}
    for name in sorted(logged, key=lambda k: (k.count("/"), k)):
        if all(logged[name] != v for v in losses.values()):
            losses[name] = logged[name]
    speed = series.get("images_per_s") or []
    panels = 1 + bool(speed)
    fig = _figure(6.0 * panels, 3.6)
    ax = fig.add_subplot(1, panels, 1)
    for name, points in sorted(losses.items()):
        arr = np.asarray(points, dtype=float).reshape(-1, 2)
        ax.plot(arr[:, 0], arr[:, 1], label=name, linewidth=1.2)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if losses:
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "nothing logged yet", ha="center", va="center", transform=ax.transAxes)
    if speed:
        ax2 = fig.add_subplot(1, panels, 2)
        arr = np.asarray(speed, dtype=float).reshape(-1, 2)
        ax2.plot(arr[:, 0], arr[:, 1], color="tab:gray", linewidth=1.2)
        ax2.set_xlabel("step")
        ax2.set_ylabel("images / s")
        ax2.set_title("throughput")
        ax2.grid(alpha=0.3)
    return fig


def _image_array(image: Tensor) -> np.ndarray:
    """(C, H, W) in [0, 1] -> (H, W) or (H, W, 3) float array for imshow."""
    arr = image.detach().float().cpu().clamp(0, 1).permute(1, 2, 0).numpy()
    return arr[:, :, 0] if arr.shape[2] == 1 else arr


def manifold_figure(grid: Tensor, values: Tensor, dims: tuple[int, int], cell: tuple[int, int]):
    """The manifold image (C, n*H, n*W) of :func:`genlab.viz.latent.manifold_grid` (no
    padding) with the latent values on the axes: ``values`` (n,) are the z values of the
    columns (dims[0], left to right) and rows (dims[1], top to bottom); ``cell`` = (H, W)."""
    n = len(values)
    h, w = cell
    fig = _figure(5.2, 5.0)
    ax = fig.add_subplot(1, 1, 1)
    ax.imshow(_image_array(grid), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    step = max(1, n // 6)
    idx = list(range(0, n, step))
    ax.set_xticks([w * (i + 0.5) - 0.5 for i in idx], [f"{float(values[i]):.2f}" for i in idx])
    ax.set_yticks([h * (i + 0.5) - 0.5 for i in idx], [f"{float(values[i]):.2f}" for i in idx])
    ax.set_xlabel(f"z[{dims[0]}]")
    ax.set_ylabel(f"z[{dims[1]}]")
    return fig


# --------------------------------------------------------------------------- 2-D points


def _extent(*clouds: Tensor) -> tuple[float, float, float, float]:
    """(xmin, xmax, ymin, ymax) holding 99% of the points and at least [-2.5, 2.5]^2."""
    pts = torch.cat([c.reshape(-1, 2) for c in clouds if c is not None and c.numel()] or [torch.zeros(1, 2)])
    lo = torch.quantile(pts, 0.005, dim=0).minimum(torch.tensor([-2.5, -2.5]))
    hi = torch.quantile(pts, 0.995, dim=0).maximum(torch.tensor([2.5, 2.5]))
    return float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1])


def points_figure(
    real: Tensor | None,
    fake: Tensor,
    surface: Callable[[Tensor], Tensor] | None = None,
    title: str = "",
    resolution: int = 128,
    *,
    extent: tuple[float, float, float, float] | None = None,
    size: int | None = None,
    surface_label: str = "D(x): real",
):
    """Point samples ``fake`` (N, 2) in red over data ``real`` (M, 2) (or None) in black and,
    when given, ``surface`` (points (K, 2) -> values in [0, 1], e.g. D's probability of
    "real", on a ``resolution`` x ``resolution`` grid) as a colour map with a colour bar
    named ``surface_label``. ``extent`` = (xmin, xmax, ymin, ymax) (default: 99% of the
    points, at least [-2.5, 2.5]^2); ``size``: a square figure of that many pixels at 100
    dpi (default 540 x 460; below 256 pixels without the colour bar)."""
    fake = torch.as_tensor(fake, dtype=torch.float32).reshape(-1, 2).cpu()
    real = torch.as_tensor(real, dtype=torch.float32).reshape(-1, 2).cpu() if real is not None else fake[:0]
    x0, x1, y0, y1 = extent or _extent(real, fake)
    fig = _figure(size / 100, size / 100) if size else _figure(5.4, 4.6)
    ax = fig.add_subplot(1, 1, 1)
    if surface is not None:
        xs, ys = torch.linspace(x0, x1, resolution), torch.linspace(y0, y1, resolution)
        grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), -1).reshape(-1, 2)
        with torch.inference_mode():
            v = torch.as_tensor(surface(grid)).float().reshape(resolution, resolution).clamp(0, 1).cpu()
        shown = ax.imshow(
            v.numpy(),
            origin="lower",
            extent=(x0, x1, y0, y1),
            cmap="cividis",
            vmin=0.0,
            vmax=1.0,
            interpolation="bilinear",
            aspect="auto",
        )
        if not size or size >= 256:  # no room for a colour bar in a thumbnail
            fig.colorbar(shown, ax=ax).set_label(surface_label, fontsize=8)
    dot = 3.0 if not size else max(1.0, 3.0 * (size / 500) ** 2)
    if len(real):
        ax.scatter(
            real[:, 0].numpy(), real[:, 1].numpy(), s=dot, color="black", linewidths=0, label=f"data ({len(real)})"
        )
    ax.scatter(
        fake[:, 0].numpy(), fake[:, 1].numpy(), s=dot, color="tab:red", linewidths=0, label=f"generated ({len(fake)})"
    )
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_xlabel("x[0]", fontsize=8)
    ax.set_ylabel("x[1]", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.set_title(title or "samples", fontsize=9)
    if len(fake):
        ax.legend(loc="upper right", fontsize=7, markerscale=3, framealpha=0.8)
    return fig


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


def plot_gan_toy2d(
    model,
    path: str | Path,
    data: str | Tensor = "ring8",
    n: int = 1000,
    generator: torch.Generator | None = None,
    size: int = 512,
) -> Path:
    """Plot a point GAN into a PNG file: ``n`` samples against ``n`` real points (``data``: a
    toy data set name, ``ring8``/``grid25``, or a tensor (N, 2)) over D's decision surface."""
    from ..data.toy2d import sample_toy

    title = data if isinstance(data, str) else ""
    if isinstance(data, str):
        data = sample_toy(data, n, generator=torch.Generator().manual_seed(0))
    fake = model.sample(n, generator=generator)
    if fake.dim() != 2 or fake.shape[1] != 2:
        raise ValueError(f"plot_gan_toy2d needs a model of 2-D points, its samples have shape {tuple(fake.shape)}")
    surface = discriminator_surface(model)
    return save_figure(points_figure(data, fake, surface, title, size=size, surface_label=surface.label), path)


# --------------------------------------------------------------------------- sequences


def waveform_figure(x: Tensor, width: int = 512, row_height: int = 64, title: str = ""):
    """Sequences (n, C, 1, L) or (n, C, L) in [0, 1] (e.g. WaveNet's mu-law audio codes /
    255) -> a figure of ``width`` x ``n * row_height`` pixels at 100 dpi: one panel per
    sequence (channel 0), value against sample index, with the 0.5 line (silence) in grey."""
    seqs = x.detach().float().cpu().reshape(x.shape[0], -1, x.shape[-1])[:, 0].clamp(0, 1)
    n, length = seqs.shape
    height = n * row_height
    fig = _figure(width / 100, height / 100)
    fig.get_layout_engine().set(w_pad=0.02, h_pad=0.01, hspace=0.0, wspace=0.0)  # small panels: thin margins
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
    return fig


def pca_2d(codes: Tensor) -> tuple[Tensor, Tensor]:
    """Codes (N, D) -> (their projection (N, 2) on the top two principal axes, the
    fraction of variance each axis explains (2,)). D = 1 gives a zero second axis."""
    x = codes.detach().double().cpu().reshape(len(codes), -1)
    x = x - x.mean(0)
    _, s, vh = torch.linalg.svd(x, full_matrices=False)
    k = min(2, vh.shape[0])
    proj = torch.zeros(len(x), 2, dtype=torch.float64)
    proj[:, :k] = x @ vh[:k].T
    var = torch.zeros(2, dtype=torch.float64)
    total = float((s**2).sum())
    if total > 0:
        var[:k] = s[:k] ** 2 / total
    return proj.float(), var.float()


def projection_figure(proj: Tensor, labels: Tensor | None, explained: Tensor, title: str = ""):
    """A scatter of 2-D projected codes, one colour per class (``labels`` (N,) or None)."""
    fig = _figure(5.6, 4.6)
    ax = fig.add_subplot(1, 1, 1)
    p = proj.numpy()
    if labels is None:
        ax.scatter(p[:, 0], p[:, 1], s=6, c="tab:blue")
    else:
        lab = labels.numpy()
        classes = sorted(set(lab.tolist()))
        cmap = __import__("matplotlib").colormaps["tab10" if len(classes) <= 10 else "tab20"]
        for i, k in enumerate(classes):
            m = lab == k
            ax.scatter(p[m, 0], p[m, 1], s=6, color=cmap(i % cmap.N), label=str(k))
        ax.legend(title="class", fontsize=7, markerscale=2, loc="best", ncols=2 if len(classes) > 5 else 1)
    ax.set_xlabel(f"PC 1 ({100 * float(explained[0]):.0f}% of variance)")
    ax.set_ylabel(f"PC 2 ({100 * float(explained[1]):.0f}% of variance)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    return fig


def quantile_axis(n: int) -> Tensor:
    """The n latent values :func:`genlab.viz.latent.manifold_grid` uses per axis by default:
    standard normal quantiles at linspace(0.05, 0.95, n)."""
    return torch.distributions.Normal(0.0, 1.0).icdf(torch.linspace(0.05, 0.95, n))


def roc_figure(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], title: str = "ROC", size: int = 480):
    """ROC curves ``{label: (fpr, tpr)}`` (both in [0, 1], same length) over the chance
    diagonal; ``size``: the width in pixels at 100 dpi (the height grows with the legend)."""
    fig = _figure(size / 100, size / 100 + 0.2 * len(curves))
    ax = fig.add_subplot(1, 1, 1)
    ax.plot([0, 1], [0, 1], color="0.7", linewidth=1, linestyle="--", label="chance")
    for label, (fpr, tpr) in curves.items():
        ax.plot(np.asarray(fpr, dtype=float), np.asarray(tpr, dtype=float), linewidth=2, label=label)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("false positive rate (inliers flagged)")
    ax.set_ylabel("true positive rate (outliers flagged)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")
    return fig


def plot_roc(
    curves: Mapping[str, tuple[np.ndarray, np.ndarray]], path: str | Path, title: str = "ROC", size: int = 480
) -> Path:
    """:func:`roc_figure` written atomically as a PNG at ``path``; returns ``path``."""
    return save_figure(roc_figure(curves, title, size), path)


__all__ = [
    "discriminator_surface",
    "figure_image",
    "loss_curves",
    "manifold_figure",
    "pca_2d",
    "plot_gan_toy2d",
    "png_bytes",
    "points_figure",
    "projection_figure",
    "quantile_axis",
    "plot_roc",
    "roc_figure",
    "save_figure",
    "waveform_figure",
]
