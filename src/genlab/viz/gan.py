"""GAN tools: the training movie and latent walks as GIFs.

* :func:`training_movie`: the Trainer saves a grid of samples from a fixed noise
  seed every ``train.sample_every`` steps as ``run_dir/samples/step-XXXXXXX.png``;
  this assembles them, in step order, into ``run_dir/training.gif``.
* :func:`gan_walk_gif`: a closed tour through a few random latent points
  (``z ~ N(0, I)``), by linear or spherical interpolation (``slerp`` keeps the codes
  in the Gaussian's typical shell, where G was trained), decoded by G.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import torch
from PIL import Image
from torch import Tensor

from ..io import atomic_write_bytes
from .images import make_grid, save_gif
from .latent import lerp, slerp

_STEP = re.compile(r"step-(\d+)\.png$")


def training_movie(run_dir: str | Path, duration_ms: int = 200, out: str | Path | None = None) -> Path:
    """Assemble ``run_dir/samples/step-*.png`` (sorted by step) into ``run_dir/training.gif``
    (or ``out``); returns its path. The last frame is held three times as long.
    Raises FileNotFoundError when the run has no sample grids yet."""
    run_dir = Path(run_dir)
    files = sorted(
        (p for p in (run_dir / "samples").glob("step-*.png") if _STEP.search(p.name)),
        key=lambda p: int(_STEP.search(p.name).group(1)),
    )
    if not files:
        raise FileNotFoundError(
            f"no sample grids in {run_dir / 'samples'} (step-*.png); train with train.sample_every > 0 first"
        )
    frames = []
    for f in files:
        with Image.open(f) as im:
            frames.append(im.convert("RGB").convert("P", palette=Image.ADAPTIVE) if im.mode != "L" else im.copy())
    durations = [duration_ms] * len(frames)
    durations[-1] = duration_ms * 3
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=durations, loop=0)
    path = Path(out) if out is not None else run_dir / "training.gif"
    atomic_write_bytes(path, buf.getvalue())
    return path


def walk_codes(points: Tensor, steps: int = 16, method: str = "slerp") -> Tensor:
    """Latent codes of a closed tour z_0 -> z_1 -> ... -> z_0 through ``points``
    (m, latent_dim) (or (m, B, latent_dim) for B walks at once): ``steps`` codes per leg,
    each leg without its end point. Returns (m * steps, latent_dim) (or (m * steps, B, d))."""
    if method not in ("slerp", "lerp"):
        raise ValueError(f"unknown interpolation method {method!r}; use 'slerp' or 'lerp'")
    if points.shape[0] < 2 or steps < 1:
        raise ValueError("a walk needs at least 2 points and 1 step per leg")
    f = slerp if method == "slerp" else lerp
    ts = torch.arange(steps, dtype=points.dtype) / steps
    legs = []
    for i in range(points.shape[0]):
        a, b = points[i], points[(i + 1) % points.shape[0]]
        legs.extend(f(a, b, t) for t in ts)
    return torch.stack(legs)


def gan_walk_gif(
    model,
    path: str | Path,
    points: int = 4,
    steps: int = 16,
    method: str = "slerp",
    generator: torch.Generator | None = None,
    labels: Tensor | None = None,
    walks: int = 1,
    duration_ms: int = 80,
    scale: int = 2,
) -> Path:
    """Write a looping GIF of a latent walk of a GAN (any image model with the ``latent``
    and ``decode`` capabilities).

    ``points`` random codes are visited in a closed loop with ``steps`` frames per leg
    (``points * steps`` frames). ``walks`` > 1 shows that many independent walks side by
    side. A class-conditional model needs ``labels``: ``walks`` values (or one), each
    walk keeping its label. Returns the path.
    """
    if model.data_kind != "image":
        raise ValueError("latent walks are drawn for image models; this model makes points (use genlab.viz.plots)")
    z = model.latent(points * walks, generator=generator).float().cpu().view(points, walks, -1)
    codes = walk_codes(z, steps, method)  # (frames, walks, d)
    if labels is not None:
        labels = torch.as_tensor(labels, dtype=torch.long).reshape(-1)
        labels = labels.expand(walks) if labels.numel() == 1 else labels
    frames = []
    for c in codes:
        x = model.decode(c.to(model.device), labels=labels.to(model.device) if labels is not None else None)
        frames.append(x[0].float().cpu() if walks == 1 else make_grid(x.float().cpu(), nrow=walks))
    return save_gif(frames, path, duration_ms=duration_ms, scale=scale)
