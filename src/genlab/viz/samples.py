"""One way to show what a model generates, shared by the Trainer's periodic sample
grids, ``genlab sample`` and the web explorer: :func:`render_samples`.

What is drawn follows the model's declared ``data_kind``, never its name:

* images (C, H, W): a grid at the model's pixel size (translators that stack two
  domains in their channels show each sample as an (A, B) pair side by side);
* sequences (C, 1, L), e.g. audio: one waveform panel per sample, and the samples
  as a WAV file when saved under a ``.wav`` name;
* points (D,) with D = 2: a scatter of the samples in red over real points in black,
  over the discriminator's decision surface where the model has one.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from torch import Tensor

from ..errors import GenlabError
from .images import check_pixels, grid_size, make_grid, save_picture, to_pil, upscale

#: samples drawn when no count is given, per kind of data
DEFAULT_COUNT = {"image": 64, "sequence": 8, "points": 1000}


def domain_shape(model) -> tuple[int, int, int]:
    """(C, H, W) of one domain's images: ``image_shape`` with a translator's
    ``domain_channels`` channels (its samples stack two domains)."""
    c, h, w = model.config.image_shape
    return (int(model.domain_channels) if "translate" in model.capabilities else c), h, w


def images_per_sample(model) -> int:
    """Images in one sample of an image model: 1, or 2 for a translator, whose sample is an
    (A, B) pair of images (shown side by side)."""
    return model.config.image_shape[0] // domain_shape(model)[0]


def _grid_layout(model, n: int) -> tuple[int, int]:
    """(images, images per row) of the grid of n samples of an image model."""
    per = images_per_sample(model)
    return n * per, per * max(1, math.ceil(math.sqrt(n)))


def check_picture(model, n: int, scale: int = 1) -> None:
    """Refuse (a one-line GenlabError), before anything is drawn, n samples of an image model
    whose grid, upscaled ``scale`` times, would exceed :data:`genlab.viz.images.MAX_PIXELS`."""
    if model.data_kind == "image":
        _, h, w = domain_shape(model)
        count, nrow = _grid_layout(model, n)
        height, width, _ = grid_size(count, h, w, nrow)
        check_pixels(height * scale, width * scale)


def default_count(model) -> int:
    """How many samples :func:`render_samples` draws for ``model`` when not told."""
    return DEFAULT_COUNT[model.data_kind]


@dataclass
class RenderedSamples:
    """Samples and their picture. ``samples``: the model's output on the CPU (float);
    ``image``: the picture (an image grid at the model's pixel size, a waveform plot or a
    scatter plot); ``nrow``: grid columns (images only); ``labels``: the class of each
    sample (None for an unconditional model)."""

    kind: str
    samples: Tensor
    image: Image.Image
    nrow: int | None
    labels: Tensor | None

    def png(self, scale: int = 1) -> bytes:
        """The picture as PNG bytes; image grids are upscaled ``scale`` times (nearest)."""
        buf = io.BytesIO()
        self._picture(scale).save(buf, format="PNG")
        return buf.getvalue()

    def _picture(self, scale: int) -> Image.Image:
        return upscale(self.image, scale) if self.kind == "image" else self.image

    def save(self, path: str | Path, *, scale: int = 1, rate: int = 8000) -> Path:
        """Write the picture (a PNG, or a JPEG under a .jpg/.jpeg name), or, for sequences saved
        under a ``.wav`` name, the samples as one WAV file at ``rate`` Hz (clips one after
        another) and their picture beside it as ``.png``. Atomic; returns ``path``."""
        path = Path(path)
        if path.suffix.lower() == ".wav":
            if self.kind != "sequence":
                raise GenlabError(
                    f"{path}: only sequence models are written as WAV files; this "
                    f"model makes {self.kind}, use a .png name"
                )
            from ..data.audio import save_wav

            save_wav(self.samples, path, rate=rate)
            save_picture(self.image, path.with_suffix(".png"))
            return path
        return save_picture(self._picture(scale), path)


def _real_points(real, n: int) -> Tensor | None:
    """Real points to plot: a tensor (N, 2) as given, or n draws of a named toy data set."""
    if real is None or isinstance(real, Tensor):
        return real
    from ..data.toy2d import TOY_DATASETS, sample_toy

    return sample_toy(real, n, generator=torch.Generator().manual_seed(0)) if real in TOY_DATASETS else None


@torch.no_grad()
def render_samples(
    model,
    n: int | None = None,
    *,
    generator: torch.Generator | None = None,
    labels: Tensor | None = None,
    real: Tensor | str | None = None,
    size: int = 512,
    title: str = "",
) -> RenderedSamples:
    """Draw ``n`` samples (default :data:`DEFAULT_COUNT` of the model's kind) with
    ``model.sample(n, generator=..., labels=...)`` and picture them.

    ``labels``: one class per sample for a class-conditional model; by default 0, 1, ...,
    k-1, 0, 1, ... ``real``: for point models, real points (N, 2) or a toy data set name
    (``ring8``) to plot beside the samples. ``size``: pixels per side of a scatter plot.
    The model is called as it is (train/eval mode and weights are the caller's choice).
    """
    kind = model.data_kind
    n = DEFAULT_COUNT[kind] if n is None else int(n)
    if n < 1:
        raise GenlabError(f"the number of samples must be at least 1, got {n}")
    k = int(model.config.num_classes)
    if labels is None and k > 0:
        labels = torch.arange(n, device=model.device) % k
    x = model.sample(n, generator=generator, labels=labels)
    x = x.detach().float().cpu()
    labels = labels.cpu() if labels is not None else None
    if kind == "points":
        from .plots import discriminator_surface, figure_image, points_figure

        if x.dim() != 2 or x.shape[1] != 2:
            raise GenlabError(f"only 2-D point models are plotted; this one makes points of shape {tuple(x.shape[1:])}")
        surface = discriminator_surface(model) if "discriminate" in model.capabilities else None
        fig = points_figure(
            _real_points(real, n),
            x,
            surface,
            title or (real if isinstance(real, str) else ""),
            size=size,
            surface_label=surface.label if surface is not None else "",
        )
        return RenderedSamples(kind, x, figure_image(fig), None, labels)
    if kind == "sequence":
        from .plots import figure_image, waveform_figure

        return RenderedSamples(kind, x, figure_image(waveform_figure(x, title=title)), None, labels)
    count, nrow = _grid_layout(model, n)
    grid = make_grid(x.reshape(count, -1, *x.shape[2:]), nrow=nrow)
    return RenderedSamples(kind, x, to_pil(grid), nrow, labels)
