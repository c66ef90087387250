"""Moving around a latent space: interpolations, loops, the 2-D manifold figure
and single-dimension traversals.

Works with any model whose capabilities include ``decode`` (codes (B, *latent_shape)
-> images (B, C, H, W) in [0, 1]: VAE, GAN generators, ddpm's noise, ...; paths and
traversals run over flattened codes, the manifold figure needs 1-D codes); the
functions that start from images also need ``encode`` (one code per image, e.g.
the VAE's posterior mean). ``labels`` (one value for all, or one per code) and
``generator`` are passed to ``decode`` for class-conditional models and decoders
that sample. Images going in are in the model's input space (see
``model.prepare``); images coming out are in [0, 1]. Everything runs under
``torch.inference_mode``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor

from .images import make_grid, save_gif

# ----------------------------------------------------------------------------- paths


def lerp(z0: Tensor, z1: Tensor, t: float | Tensor) -> Tensor:
    """Linear interpolation (1 - t) z0 + t z1 (t = 0 gives z0, t = 1 gives z1)."""
    return z0 + (z1 - z0) * t


def slerp(z0: Tensor, z1: Tensor, t: float | Tensor, eps: float = 1e-4) -> Tensor:
    """Spherical linear interpolation along the last dimension (Shoemake, 1985;
    White, 2016, "Sampling generative networks").

    Walks the great circle between the directions of z0 and z1 while the norm goes
    linearly from |z0| to |z1|, so unit vectors stay unit vectors and samples stay
    in the typical shell of a Gaussian prior. Falls back to :func:`lerp` where the
    vectors are nearly parallel (angle below ~eps) and the formula is unstable.
    """
    t = torch.as_tensor(t, dtype=z0.dtype, device=z0.device)
    n0 = z0.norm(dim=-1, keepdim=True)
    n1 = z1.norm(dim=-1, keepdim=True)
    u0 = z0 / n0.clamp_min(1e-12)
    u1 = z1 / n1.clamp_min(1e-12)
    cos = (u0 * u1).sum(-1, keepdim=True).clamp(-1.0, 1.0)
    omega = torch.arccos(cos)
    so = torch.sin(omega)
    safe = so.abs() > eps
    so_safe = torch.where(safe, so, torch.ones_like(so))
    direction = (torch.sin((1 - t) * omega) * u0 + torch.sin(t * omega) * u1) / so_safe
    norm = (1 - t) * n0 + t * n1
    return torch.where(safe, direction * norm, lerp(z0, z1, t))


def _path(method: str):
    if method == "slerp":
        return slerp
    if method == "lerp":
        return lerp
    raise ValueError(f"unknown interpolation method {method!r}; use 'slerp' or 'lerp'")


def _decode(model, z: Tensor, labels=None, generator: torch.Generator | None = None, batch_size: int = 256) -> Tensor:
    """decode(z) in batches; ``labels``: None, one value for every code, or one per code."""
    if labels is not None:
        labels = torch.as_tensor(labels, dtype=torch.long).reshape(-1).cpu()
        labels = labels.expand(z.shape[0]) if labels.numel() == 1 else labels
        labels = labels.split(batch_size)
    out = []
    for i, zb in enumerate(z.split(batch_size)):
        lb = labels[i].to(model.device) if labels is not None else None
        zb = zb.reshape(len(zb), *model.latent_shape)  # paths run over flattened codes (ddpm's are images)
        out.append(model.decode(zb.to(model.device), labels=lb, generator=generator).float().cpu())
    return torch.cat(out)


# ----------------------------------------------------------------------------- frames


def z_interpolation_frames(
    model,
    z0: Tensor,
    z1: Tensor,
    steps: int = 16,
    method: str = "slerp",
    *,
    labels=None,
    generator: torch.Generator | None = None,
) -> list[Tensor]:
    """Decode ``steps`` points from z0 to z1 (both ends included).

    z0, z1: one code (*latent_shape) or a batch (B, *latent_shape); the path runs over the
    flattened codes. Returns a list of ``steps`` images, each (C, H, W) for one code or
    (B, C, H, W) for batches, in [0, 1].
    """
    if steps < 2:
        raise ValueError("steps must be >= 2")
    f = _path(method)
    d = math.prod(model.latent_shape)
    single = z0.numel() == d
    z0, z1 = z0.reshape(-1, d), z1.reshape(-1, d)
    with torch.inference_mode():
        ts = torch.linspace(0, 1, steps, dtype=z0.dtype)
        zs = torch.stack([f(z0, z1, t) for t in ts])  # (steps, B, d)
        imgs = _decode(model, zs.reshape(-1, zs.shape[-1]), labels, generator).view(
            steps, z0.shape[0], *model.config.image_shape
        )
    return [im[0] if single else im for im in imgs]


def interpolation_frames(model, x_a: Tensor, x_b: Tensor, steps: int = 16, method: str = "slerp") -> list[Tensor]:
    """Encode two images (or two equal batches) to their posterior means, walk
    between them and decode. x_a, x_b: (C, H, W) or (B, C, H, W) in the model's
    input space. Returns ``steps`` images shaped like the inputs, in [0, 1]."""
    single = x_a.dim() == 3
    xa = x_a.unsqueeze(0) if single else x_a
    xb = x_b.unsqueeze(0) if single else x_b
    with torch.inference_mode():
        za, zb = model.encode(xa.to(model.device)), model.encode(xb.to(model.device))
    if single:
        za, zb = za[0], zb[0]
    return z_interpolation_frames(model, za.float().cpu(), zb.float().cpu(), steps, method)


def loop_frames(
    model, z_points: Tensor | Sequence[Tensor], steps_per_leg: int = 16, method: str = "slerp"
) -> list[Tensor]:
    """A closed tour through latent points z_0 -> z_1 -> ... -> z_{m-1} -> z_0.

    z_points: (m, *latent_shape) with m >= 2. Returns m * steps_per_leg images
    (C, H, W) in [0, 1]; each leg excludes its end point, so the GIF loops without
    a repeated frame.
    """
    z = torch.stack(list(z_points)) if not isinstance(z_points, Tensor) else z_points
    if tuple(z.shape[1:]) != tuple(model.latent_shape) or z.shape[0] < 2:
        raise ValueError(
            f"z_points must be (m, {', '.join(map(str, model.latent_shape))}) with m >= 2, got {tuple(z.shape)}"
        )
    frames: list[Tensor] = []
    for i in range(z.shape[0]):
        leg = z_interpolation_frames(model, z[i], z[(i + 1) % z.shape[0]], steps_per_leg + 1, method)
        frames.extend(leg[:-1])
    return frames


def save_interpolation_gif(
    frames: Sequence[Tensor], path: str | Path, *, duration_ms: int = 80, scale: int = 2, boomerang: bool = False
) -> Path:
    """Write frames (each (C, H, W), or (B, C, H, W) shown as a grid) as a looping GIF.
    ``boomerang=True`` plays forward then backward (for an A -> B interpolation)."""
    frames = list(frames)
    if not frames:
        raise ValueError("no frames to save")
    if boomerang and len(frames) > 2:
        frames = frames + frames[-2:0:-1]
    return save_gif(frames, path, duration_ms=duration_ms, scale=scale)


# ----------------------------------------------------------------------------- grids


def _latent_dim(model) -> int:
    shape = tuple(model.latent_shape)
    if len(shape) != 1:
        raise ValueError(f"{type(model).__name__} has codes of shape {shape}; these figures need 1-D codes")
    return int(shape[0])


def manifold_grid(
    model,
    n: int = 20,
    dims: tuple[int, int] = (0, 1),
    span: float | None = None,
    padding: int = 0,
    *,
    labels=None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """The learned 2-D manifold figure of Kingma & Welling (2014, Fig. 4).

    z_{dims[0]} (columns, left to right) and z_{dims[1]} (rows, top to bottom) run
    over ``Phi^-1(linspace(0.05, 0.95, n))``, the standard normal's quantiles, so
    each cell covers equal prior probability mass (or over linspace(-span, span, n)
    if ``span`` is given). With latent_dim > 2 all other dimensions are held at 0
    (the prior mean): a 2-D slice through the space, not the whole manifold.
    Returns one (C, n*H + pad, n*W + pad) image in [0, 1].
    """
    d = _latent_dim(model)
    if d < 2:
        raise ValueError("manifold_grid needs latent_dim >= 2")
    i, j = dims
    if not (0 <= i < d and 0 <= j < d and i != j):
        raise ValueError(f"dims must be two different indices in 0..{d - 1}, got {dims}")
    if span is None:
        vals = torch.distributions.Normal(0.0, 1.0).icdf(torch.linspace(0.05, 0.95, n))
    else:
        vals = torch.linspace(-span, span, n)
    z = torch.zeros(n, n, d)
    z[:, :, i] = vals.view(1, n)  # columns
    z[:, :, j] = vals.view(n, 1)  # rows
    with torch.inference_mode():
        imgs = _decode(model, z.view(n * n, d), labels, generator)
    return make_grid(imgs, nrow=n, padding=padding)


def traversal_grid(
    model, x: Tensor, dims: Sequence[int] | int | None = None, span: float = 3.0, steps: int = 9, padding: int = 2
) -> Tensor:
    """Vary one latent dimension at a time around the encoding of one image.

    x: (C, H, W) or (1, C, H, W) in the model's input space. Row r shows
    z = mu(x) + t e_{dims[r]} for t in linspace(-span, span, steps), dims indexing the
    flattened code (codes of any ``latent_shape``).
    ``dims``: a list of dimensions, a count (the first that many), or None (all).
    Returns one (C, H', W') image in [0, 1].
    """
    d = math.prod(model.latent_shape)
    if dims is None:
        dims = list(range(d))
    elif isinstance(dims, int):
        dims = list(range(min(dims, d)))
    dims = list(dims)
    if any(not 0 <= k < d for k in dims):
        raise ValueError(f"dims must be in 0..{d - 1}, got {dims}")
    xb = x.unsqueeze(0) if x.dim() == 3 else x[:1]
    with torch.inference_mode():
        mu = model.encode(xb.to(model.device))[0].float().cpu().reshape(d)
        offsets = torch.linspace(-span, span, steps)
        z = mu.repeat(len(dims), steps, 1)  # (rows, steps, d)
        for r, k in enumerate(dims):
            z[r, :, k] += offsets
        imgs = _decode(model, z.view(-1, d))
    return make_grid(imgs, nrow=steps, padding=padding)
