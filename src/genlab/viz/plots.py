"""Figures with axes (matplotlib, object API only: no pyplot, no global state, safe
from several threads): training curves, the 2-D latent manifold with its z values
on the axes, point GANs over D's surface, 2-D projections of codes coloured by
class. Each function returns a ``matplotlib.figure.Figure``; :func:`png_bytes`
renders one to PNG bytes.
"""

from __future__ import annotations

import io
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor


def _figure(width: float = 6.0, height: float = 4.0):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def png_bytes(fig, dpi: int = 100) -> bytes:
    """A figure as PNG bytes (``dpi`` dots per inch of the figure's size in inches)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def loss_curves(series: Mapping[str, Sequence[Sequence[float]]], title: str = "training"):
    """One panel per logged quantity ending in ``/loss`` (or every series when none does):
    ``series`` maps a name to [[step, value], ...] (``Explorer.card()["metrics"]["series"]``).
    A second panel shows throughput (``images_per_s``) when it is logged."""
    losses = {k: v for k, v in series.items() if k.endswith("/loss") and v} or {
        k: v for k, v in series.items() if v and k not in ("lr", "time", "images_per_s")}
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


def points_figure(real: Tensor | None, fake: Tensor, surface: Callable[[Tensor], Tensor] | None = None,
                  title: str = "", resolution: int = 96):
    """Point samples (N, 2) in red over data (M, 2) in black and, when given, ``surface``
    (points (K, 2) -> values in [0, 1], e.g. D's probability of "real") as a colour map."""
    fake = torch.as_tensor(fake, dtype=torch.float32).reshape(-1, 2).cpu()
    clouds = [fake] + ([torch.as_tensor(real, dtype=torch.float32).reshape(-1, 2).cpu()] if real is not None and len(real) else [])
    pts = torch.cat(clouds)
    lo = torch.quantile(pts, 0.005, dim=0).minimum(torch.tensor([-2.5, -2.5]))
    hi = torch.quantile(pts, 0.995, dim=0).maximum(torch.tensor([2.5, 2.5]))
    x0, y0, x1, y1 = float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])
    fig = _figure(5.4, 4.6)
    ax = fig.add_subplot(1, 1, 1)
    if surface is not None:
        xs, ys = torch.linspace(x0, x1, resolution), torch.linspace(y0, y1, resolution)
        grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), -1).reshape(-1, 2)
        with torch.inference_mode():
            v = torch.as_tensor(surface(grid)).float().reshape(resolution, resolution).clamp(0, 1).cpu().numpy()
        im = ax.imshow(v, origin="lower", extent=(x0, x1, y0, y1), cmap="cividis", vmin=0, vmax=1, aspect="auto")
        fig.colorbar(im, ax=ax, label="D(x): real")
    if len(clouds) > 1:
        ax.scatter(clouds[1][:, 0], clouds[1][:, 1], s=3, c="black", label="data")
    ax.scatter(fake[:, 0], fake[:, 1], s=3, c="tab:red", label="generated")
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_xlabel("x[0]")
    ax.set_ylabel("x[1]")
    ax.legend(fontsize=8, loc="upper right")
    ax.set_title(title)
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


__all__ = ["loss_curves", "manifold_figure", "pca_2d", "png_bytes", "points_figure", "projection_figure", "quantile_axis"]
