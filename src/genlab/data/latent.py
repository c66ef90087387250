"""``latent:RUN``: an autoencoder's training data, encoded into its codes, as a data set a prior can model.

``genlab.data.load("latent:runs/vqvae-mnist")`` (``RUN`` a run folder or ``pretrained:NAME`` of a
model with ``encode`` and ``decode``) opens it as a :class:`genlab.Run`, loads the data set its
``config.json`` names, shaped for the autoencoder (``Run.dataset``: from the run's ``data.data_dir``
unless a ``data_dir`` is passed, which the shipped models need: their configs carry none), maps every
image into the autoencoder's input space (``prepare``) and encodes it. Nothing is written to disk: the codes are
computed anew on every load, from fixed seeds, so every load gives the same codes.

Splits: ``"train"`` is the autoencoder's own training split (its ``data.split``), ``"test"`` and
``"all"`` those splits of the same data set (held-out codes to evaluate a prior on).

What a code is (:func:`code_space`)
-----------------------------------
* **VQ-VAE** (:class:`~genlab.models.vqvae.VQVAE`), discrete: the code-index map c(x) in
  {0, ..., K-1}^(h x w) (K = ``num_codes``), laid out ``(N, 1, h, w)``. It is stored as 8-bit grey
  levels ``round(255 k / (K - 1))`` so that the Trainer's ``images / 255`` is k / (K - 1) up to
  less than half a level: the grid of a K-way categorical head (``pixelcnn`` or ``transformer``
  with ``model.likelihood=categorical``, ``model.grey_levels=K``), which rounds it back to k.
  ``.codes`` gives the indices (N, 1, h, w) and ``.levels`` K. K > 256 has no 8-bit form and is refused.
* **VAE** (:class:`~genlab.models.vae.VAE`), continuous: **one draw** z ~ q(z|x) per image
  (through the IAF for ``posterior="iaf"``), from a generator seeded with ``seed`` (default 0;
  ``latent:RUN,seed=3`` for another draw), not the posterior mean. A prior over these codes is
  meant to stand in for N(0, I) in the VAE's bound E_q[log p(x|z) + log p(z) - log q(z|x)], where it
  is evaluated at draws of q(z|x); the draws of every training image are a sample of the aggregate
  posterior q(z) = mean_x q(z|x), which is what that bound asks the prior to fit (and what latent
  diffusion trains on), while the means alone are a narrower set that ignores the posterior's spread.
  Binarising decoders get their input binarised by the same generator.
* any other model with ``encode`` and ``decode`` (e.g. ``ali``), continuous: ``encode(x)``, deterministic.

Continuous codes of shape (d,) are laid out ``(N, 1, 1, d)``: one row of d values, coordinate j at
column j (an image prior's convolutions then slide along the coordinates, and the code is shown as
a one-pixel-high strip); codes that already have an image shape (C, H, W) keep it. They are
**scaled to unit variance** as latent diffusion scales its latents (Rombach et al. 2022): the stored
value is u = z / sigma with one scalar sigma, the standard deviation of every number of the codes of
the first :data:`SCALE_IMAGES` images of the training split (in the data set's order), so the train
and test splits share it. ``.scale`` records sigma: z = sigma * u. They are float32 and need no
dequantisation (they are continuous already); the Trainer passes float data to a model as it is,
so a prior sees u in its own input space: ``ddpm`` reads it as its [-1, 1]-scale x_0, and
``flow-matching`` as y with x_1 = 2 u - 1. Note that those priors' ``sample`` clamps its output
to the image range [0, 1], which unit-variance codes leave: the ``latent`` model
(:mod:`genlab.models.latent`) samples them unclamped, decodes them and gives a likelihood bound.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch
from torch import Tensor

from .errors import DataError
from .transforms import to_float

__all__ = ["CodeSpace", "LatentCodes", "code_space", "encode_codes", "codes_to_latent", "load_latent", "SCALE_IMAGES"]

#: Images of the training split whose codes set the scale sigma of continuous codes.
SCALE_IMAGES = 1024
#: Images encoded at once.
BATCH = 256


@dataclass(frozen=True)
class CodeSpace:
    """What an autoencoder's codes are: ``kind`` "discrete" (a VQ-VAE's code-index maps, ``levels`` = K
    values) or "continuous"; ``shape`` (C, H, W), the layout a prior models; ``posterior`` True where a
    continuous code is a draw of a Gaussian posterior q(z|x) (a VAE), False where it is ``encode(x)``."""

    kind: str
    shape: tuple[int, int, int]
    levels: int = 0
    posterior: bool = False

    @property
    def num_dims(self) -> int:
        return math.prod(self.shape)


def code_space(autoencoder) -> CodeSpace:
    """The :class:`CodeSpace` of ``autoencoder``; a ValueError saying why for a model without
    ``encode`` or ``decode`` (the caller names the field or data set)."""
    from ..models.vae import VAE
    from ..models.vqvae import VQVAE

    missing = [m for m in ("encode", "decode") if m not in autoencoder.capabilities]
    if missing:
        raise ValueError(
            f"{type(autoencoder).__name__} has no {' and no '.join(missing)}: an autoencoder needs encode (images -> "
            "codes) and decode (codes -> images), e.g. vae or vqvae"
        )
    if isinstance(autoencoder, VQVAE):
        return CodeSpace("discrete", (1, *autoencoder.code_shape), levels=autoencoder.config.num_codes)
    shape = tuple(int(s) for s in autoencoder.latent_shape)
    layout = shape if len(shape) == 3 else (1, 1, math.prod(shape))
    return CodeSpace("continuous", layout, posterior=isinstance(autoencoder, VAE))


@torch.no_grad()
def encode_codes(autoencoder, x: Tensor, space: CodeSpace, generator: torch.Generator | None = None) -> Tensor:
    """Codes of x (N, C, H, W) in the autoencoder's input space, laid out as ``space.shape``: code
    indices (N, 1, h, w) long for a discrete space; for a continuous one float (N, *shape), unscaled:
    one draw of q(z|x) from ``generator`` (or the global RNG) for a VAE, ``encode(x)`` otherwise."""
    if space.kind == "discrete":
        return autoencoder.codes(x).unsqueeze(1)
    if space.posterior:
        mu, log_var, h = autoencoder.encode_posterior(x)
        z = autoencoder.sample_posterior(mu, log_var, h, generator)[0]
    else:
        z = autoencoder.encode(x)
    return z.reshape(len(x), *space.shape)


def codes_to_latent(autoencoder, codes: Tensor, space: CodeSpace) -> Tensor:
    """Codes laid out as ``space.shape`` (continuous: unscaled) -> what ``autoencoder.decode`` takes:
    a VQ-VAE's code vectors flattened, (N, d * h * w); anything else reshaped to its ``latent_shape``."""
    if space.kind == "discrete":
        return autoencoder.embed(codes[:, 0].long()).flatten(1)
    return codes.reshape(len(codes), *autoencoder.latent_shape)


class LatentCodes:
    """The codes of a data set under an autoencoder (see the module docstring), with the images'
    labels. ``images``: uint8 grey levels (N, 1, h, w) of code maps (discrete), or float32 (N, C, H, W)
    codes scaled to unit variance (continuous; the Trainer uses them as they are). ``scale``: sigma,
    z = sigma * u (1.0 for discrete codes); ``levels``: K (0 for continuous codes); ``autoencoder``:
    the run they come from. Indexing yields ``(x, y)`` as :class:`~genlab.data.ImageDataset` does
    (x in [0, 1] for code maps, the scaled codes otherwise; y = -1 unlabelled)."""

    def __init__(
        self, images: Tensor, labels: Tensor | None, num_classes: int, name: str, class_names, *, scale, levels, run
    ):
        self.images, self.labels, self.num_classes, self.name = images, labels, int(num_classes), name
        self.class_names = class_names
        self.scale, self.levels, self.autoencoder = float(scale), int(levels), str(run)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.images.shape[1:])

    @property
    def codes(self) -> Tensor:
        """The code indices (N, 1, h, w), long, of a discrete code set."""
        if not self.levels:
            raise DataError(f"{self.name} holds continuous codes: they have no indices (use .images and .scale)")
        return torch.round(self.images.float() * (self.levels - 1) / 255).long()

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        x = self.images[i]
        return (to_float(x) if x.dtype == torch.uint8 else x), (int(self.labels[i]) if self.labels is not None else -1)

    def subset(self, indices) -> "LatentCodes":
        """The codes (and labels) at ``indices`` (a sequence, tensor, mask or slice), scale and levels kept."""
        if isinstance(indices, range):
            indices = list(indices)
        if not isinstance(indices, slice):
            indices = torch.as_tensor(indices)
        labels = self.labels[indices] if self.labels is not None else None
        return LatentCodes(
            self.images[indices],
            labels,
            self.num_classes,
            self.name,
            self.class_names,
            scale=self.scale,
            levels=self.levels,
            run=self.autoencoder,
        )

    def __repr__(self) -> str:
        what = f"{self.levels} levels" if self.levels else f"continuous, scale {self.scale:.4g}"
        return f"LatentCodes({self.name!r}, n={len(self)}, shape={self.shape}, {what})"


def parse_spec(spec: str) -> tuple[str, int]:
    """``"runs/vae[,seed=3]"`` (the part after ``latent:``) -> (run, seed)."""
    run, seed = spec.strip(), 0
    head, sep, tail = run.rpartition(",")
    if sep and tail.strip().startswith("seed="):
        try:
            seed = int(tail.strip()[5:])
        except ValueError:
            raise DataError(f"bad seed in {'latent:' + spec!r}: use latent:<run>,seed=<int>") from None
        run = head.strip()
    if not run:
        raise DataError("latent: needs a run, e.g. latent:runs/vqvae-mnist-5k or latent:pretrained:vae-mnist")
    return run, seed


def load_latent(
    spec: str,
    split: str = "train",
    data_dir: str | os.PathLike | None = None,
    *,
    image_size=None,
    channels=None,
    download: bool = True,
) -> LatentCodes:
    """The codes of ``latent:<spec>`` (see the module docstring). ``image_size`` and ``channels`` must
    be None: the autoencoder's run decides the images' size and the codes' shape."""
    from ..errors import GenlabError
    from ..run import Run

    run, seed = parse_spec(spec)
    if image_size is not None or channels is not None:
        raise DataError(
            f"latent:{run}: the autoencoder's run sets the images' size and channels and the codes' shape; "
            "leave data.image_size and data.channels unset"
        )
    if split not in ("train", "test", "all"):
        raise DataError(f"unknown split {split!r} for latent:{run}; choose train, test or all")
    try:
        opened = Run(run)
        if not opened.data_spec:
            raise DataError(
                f"{opened.path / 'config.json'} names no data set (no data section: a folder written by model.save()); "
                "use a training run's folder (genlab train) or pretrained:NAME"
            )
        space = code_space(opened.model)
    except (ValueError, GenlabError) as e:  # an unreadable run, an unknown pretrained name, no encode or decode
        raise DataError(f"latent:{run}: {e}") from None
    if space.kind == "discrete" and space.levels > 256:
        raise DataError(f"latent:{run}: {space.levels} codes have no 8-bit form (256 levels at most)")
    trained_on = opened.data_spec.get("split", "train")

    def codes_of(which: str) -> Tensor:  # the run's data set, shaped for the autoencoder, its data_dir unless given
        images = opened.dataset(which, data_dir=data_dir, download=download).images
        return _encode_all(opened.model, images, space, seed)

    own = trained_on if split == "train" else split
    codes = codes_of(own)
    scale = 1.0
    if space.kind == "continuous":
        scale = _scale((codes if own == trained_on else codes_of(trained_on))[:SCALE_IMAGES], run)
        codes = codes / scale
    else:
        codes = torch.round(codes.float() * 255 / (space.levels - 1)).to(torch.uint8)
    ds = opened.dataset(own, data_dir=data_dir, download=download)
    return LatentCodes(
        codes,
        getattr(ds, "labels", None),
        getattr(ds, "num_classes", 0) or 0,
        f"latent:{spec.strip()}",
        getattr(ds, "class_names", None),
        scale=scale,
        levels=space.levels,
        run=run,
    )


def _encode_all(autoencoder, images: Tensor, space: CodeSpace, seed: int) -> Tensor:
    """The codes of every image (uint8 (N, C, H, W), or float data as it is), in order, in batches of
    :data:`BATCH`; one generator seeded with ``seed`` draws the input binarisation and the posterior
    draws, so the codes of the first n images do not depend on how many follow."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for batch in images.split(BATCH):
        x = autoencoder.prepare(batch.float() / 255, generator=g) if batch.dtype == torch.uint8 else batch
        out.append(encode_codes(autoencoder, x.to(autoencoder.device), space, g).cpu())
    return torch.cat(out) if out else torch.zeros(0, *space.shape)


def _scale(codes: Tensor, run: str) -> float:
    """sigma: the standard deviation of every number of ``codes``."""
    sigma = float(codes.float().std()) if codes.numel() > 1 else float("nan")
    if not (math.isfinite(sigma) and sigma > 0):
        raise DataError(f"latent:{run}: the codes have no spread (standard deviation {sigma}); nothing to scale by")
    return sigma
