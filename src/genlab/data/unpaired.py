"""Unpaired two-domain data for image-to-image translation (CycleGAN).

The Trainer draws one batch from one data set, so two domains travel together:
``load_unpaired("mnist", "mnist+invert", split)`` (or the data spec
``unpaired:<A>,<B>`` given to :func:`genlab.data.load` / ``--data``) returns an
:class:`UnpairedDataset` whose uint8 ``images`` stack an image of domain A and an
image of domain B along channels: ``(N, C + C, H, W)``, A in channels ``[:C]``,
B in ``[C:]``.

**The pairing carries no correspondence.** Domain B's images are shuffled
independently of A's with a seeded permutation (``seed``; the spec form takes
``unpaired:<A>,<B>,seed=<int>``), and a model trained on these rows must not rely on
which B sits next to which A. CycleGAN's objective is a sum of terms on A images
and terms on B images, so the pairing never enters it (the stacking is only a
container).

Domains: any image data set :func:`genlab.data.load` knows (``mnist``,
``mnist-5k``, ``fashion-mnist``, ``cifar10``, ``folder:<path>``, ...), optionally
followed by ``+<transform>``, a fixed, known and invertible change of the images:

* ``invert``: colour inversion ``x -> 255 - x`` (its own inverse);
* ``rot90``: rotation by 90 degrees counter-clockwise (inverse: ``rot270``);
* ``rot270``: rotation by 90 degrees clockwise (inverse: ``rot90``);
* ``flip``: left-right mirror (its own inverse);
* ``mnistm``: MNIST-M-style blending with natural-image patches, ``|patch - digit|``
  per RGB channel (:mod:`genlab.data.mnistm`; needs ``cifar10-test-jpeg/`` in
  ``data_dir``; patches depend on the seed, the split and the digit's index). The one
  transform that is not invertible and not a function of the image alone.

Because the transform is known, translation can be *measured*: with
A = MNIST and B = MNIST+invert, ``a2b`` followed by the inverse transform should
still show the same digit (see ``benchmarks/cyclegan_mnist.py``).

When both domains come from the same data set and split, they get **disjoint**
halves of it (a fixed seeded permutation: the first half is A, the second B), so
no source image is ever seen in both domains. When they come from different data
sets, the smaller domain is repeated (with fresh permutations) to the larger's
length. A grey domain next to a colour one is converted to RGB; the two domains
must have the same height and width (pass ``image_size`` to resize both).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from .dataset import ImageDataset
from .errors import DataError

__all__ = [
    "TRANSFORMS",
    "INVERSES",
    "BLENDS",
    "UnpairedDataset",
    "parse_domain",
    "parse_spec",
    "load_domain",
    "load_unpaired",
    "transform",
    "untransform",
]

#: ``+<name>`` transforms: uint8 (N, C, H, W) -> uint8 (N, C, H', W')
TRANSFORMS = {
    "invert": lambda x: 255 - x,
    "rot90": lambda x: torch.rot90(x, 1, dims=(2, 3)),
    "rot270": lambda x: torch.rot90(x, -1, dims=(2, 3)),
    "flip": lambda x: torch.flip(x, dims=(3,)),
}
#: each transform's inverse
INVERSES = {"invert": "invert", "rot90": "rot270", "rot270": "rot90", "flip": "flip"}
#: ``+<name>`` transforms that also need the split, data_dir, seed and source indices:
#: grey uint8 (N, 1, H, W) -> uint8 (N, 3, H, W); not invertible
BLENDS = ("mnistm",)

_NOT_IMAGES = ("ring8", "grid25", "sines")  # points and sequences cannot be a translation domain
_SPEC_HELP = (
    "unpaired:<A>,<B> with A and B image data sets, each optionally +invert, +rot90, +rot270, +flip or "
    "+mnistm, e.g. unpaired:mnist,mnist+invert"
)


def parse_domain(text: str) -> tuple[str, str | None]:
    """``"mnist+invert"`` -> ``("mnist", "invert")``; ``"mnist"`` -> ``("mnist", None)``."""
    if not isinstance(text, str) or not text.strip():
        raise DataError(f"empty domain in an unpaired data spec; use {_SPEC_HELP}")
    text = text.strip()
    base, plus, suffix = text.rpartition("+")
    if plus and (suffix in TRANSFORMS or suffix in BLENDS):
        name, t = base.strip(), suffix
    elif plus and ":" not in text:  # "mnist+blur": a transform we do not know (paths may contain '+')
        raise DataError(
            f"unknown transform {suffix!r} in domain {text!r}; choose one of: {', '.join([*TRANSFORMS, *BLENDS])}"
        )
    else:
        name, t = text, None
    kind = name.partition(":")[0].lower()
    if kind == "unpaired":
        raise DataError(f"a domain cannot itself be unpaired data: {text!r}; use {_SPEC_HELP}")
    if kind == "wav" or name.lower() in _NOT_IMAGES:
        raise DataError(f"domain {text!r} is not an image data set; use {_SPEC_HELP}")
    if not name:
        raise DataError(f"domain {text!r} names no data set; use {_SPEC_HELP}")
    return name, t


def parse_spec(spec: str) -> tuple[str, str, int]:
    """``"mnist,mnist+invert[,seed=3]"`` (the part after ``unpaired:``) -> (A, B, seed)."""
    parts = [p.strip() for p in str(spec).split(",")]
    seed = 0
    if parts and parts[-1].startswith("seed="):
        try:
            seed = int(parts.pop()[5:])
        except ValueError:
            raise DataError(
                f"bad seed in unpaired data spec {spec!r}: seed=<int>, e.g. unpaired:mnist,mnist+invert,seed=1"
            ) from None
    if len(parts) != 2 or not all(parts):
        raise DataError(f"unpaired data spec {spec!r} must name exactly two domains; use {_SPEC_HELP}")
    for p in parts:
        parse_domain(p)  # validate early
    return parts[0], parts[1], seed


def transform(images: torch.Tensor, name: str | None) -> torch.Tensor:
    """Apply the named transform to uint8 images (N, C, H, W); None leaves them as they are."""
    if name is None:
        return images
    if name in BLENDS:
        raise DataError(
            f"{name!r} needs the split, data_dir and digit indices: use "
            f"genlab.data.mnistm.mnistm or load_domain('mnist+{name}', ...)"
        )
    if name not in TRANSFORMS:
        raise DataError(f"unknown transform {name!r}; choose one of: {', '.join(TRANSFORMS)}")
    return TRANSFORMS[name](images).contiguous()


def untransform(images: torch.Tensor, name: str | None) -> torch.Tensor:
    """Undo :func:`transform` (works on uint8 and on float images in [0, 1] for ``invert``: ``1 - x``)."""
    if name is None:
        return images
    if name == "invert" and images.is_floating_point():
        return 1 - images
    if name in BLENDS:
        raise DataError(f"{name!r} is not invertible: a blended image does not determine its digit and patch")
    return transform(images, INVERSES[name])


def apply(
    images: torch.Tensor, name: str | None, split: str, data_dir=None, *, seed: int = 0, index=None
) -> torch.Tensor:
    """:func:`transform`, or for a blend (``mnistm``) the blend of ``images`` (grey, the
    ``index``-th images of ``split``; default ``0..N-1``) with the patches of ``seed``."""
    if name in BLENDS:
        from .mnistm import mnistm

        if images.shape[1] != 1:
            raise DataError(
                f"+{name} blends grey digits with colour patches; the data set has {images.shape[1]} channels"
            )
        return mnistm(images, split, data_dir, seed=seed, index=index)
    return transform(images, name)


def load_domain(
    text: str,
    split: str = "train",
    data_dir: str | os.PathLike | None = None,
    *,
    image_size: tuple[int, int] | None = None,
    channels: int | None = None,
    download: bool = True,
    seed: int = 0,
) -> ImageDataset:
    """One domain (``<data set>[+<transform>]``) as an :class:`ImageDataset`, transform applied; labels kept.
    ``seed`` chooses the patches of a blend (``+mnistm``); the other transforms ignore it."""
    from . import load
    from .images import convert_channels

    name, t = parse_domain(text)
    ds = load(
        name, split, data_dir, image_size=image_size, channels=None if t in BLENDS else channels, download=download
    )
    if not isinstance(ds, ImageDataset):
        raise DataError(f"domain {text!r} is not an image data set; use {_SPEC_HELP}")
    images = apply(ds.images, t, split, data_dir, seed=seed)
    if t in BLENDS and channels is not None:
        images = torch.from_numpy(convert_channels(images.numpy(), channels))
    return ImageDataset(
        images,
        ds.labels,
        num_classes=ds.num_classes if ds.labels is not None else None,
        name=text,
        class_names=ds.class_names,
    )


@dataclass
class UnpairedDataset:
    """Two domains stacked along channels, with no correspondence between them.

    Attributes:
        images: uint8 ``(N, 2C, H, W)``: domain A in channels ``[:C]``, domain B in ``[C:]``.
        labels: None (the translation model sees no labels).
        a, b: the two domains as :class:`ImageDataset` (transforms applied, labels kept),
            in the row order of ``images``.
        source_a, source_b: int64 ``(N,)``: the index of each row's A / B image in its
            source data set (before any transform), for checking disjointness.
        domain_a, domain_b: the domain specs, e.g. ``"mnist"``, ``"mnist+invert"``.
        seed: the seed of B's permutation (and of the patches of a ``+mnistm`` domain).
    """

    images: torch.Tensor
    a: ImageDataset
    b: ImageDataset
    source_a: torch.Tensor
    source_b: torch.Tensor
    domain_a: str
    domain_b: str
    seed: int
    name: str = ""
    labels: None = None
    num_classes: int = 0

    @property
    def channels(self) -> int:
        """C, the channels of one domain."""
        return self.images.shape[1] // 2

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])

    def __len__(self) -> int:
        return self.images.shape[0]

    def __repr__(self) -> str:
        return (
            f"UnpairedDataset(A={self.domain_a!r}, B={self.domain_b!r}, n={len(self)}, "
            f"shape={self.shape}, seed={self.seed})"
        )


def _to_rgb(ds: ImageDataset) -> ImageDataset:
    if ds.images.shape[1] == 3:
        return ds
    return ImageDataset(
        ds.images.expand(-1, 3, -1, -1).contiguous(),
        ds.labels,
        num_classes=ds.num_classes if ds.labels is not None else None,
        name=ds.name,
        class_names=ds.class_names,
    )


def load_unpaired(
    domain_a: str,
    domain_b: str,
    split: str = "train",
    data_dir: str | os.PathLike | None = None,
    *,
    seed: int = 0,
    image_size: tuple[int, int] | None = None,
    download: bool = True,
) -> UnpairedDataset:
    """Domains A and B of ``split`` as an :class:`UnpairedDataset` (see the module docstring).

    Raises:
        DataError: unknown domain or transform, a domain that is not images, domains of
            different sizes, or a domain too small to split.
    """
    (name_a, t_a), (name_b, t_b) = parse_domain(domain_a), parse_domain(domain_b)
    a = load_domain(name_a, split, data_dir, image_size=image_size, download=download)
    same_source = name_a.strip().lower() == name_b.strip().lower()
    b = a if same_source else load_domain(name_b, split, data_dir, image_size=image_size, download=download)
    for t in (t_a, t_b):
        if t in BLENDS:  # fail before any work when the patches are missing
            from .mnistm import patch_pool

            patch_pool(split, data_dir)
    if same_source:
        n = len(a)
        if n < 2:
            raise DataError(f"{name_a!r} ({split}) has {n} image(s): too few to split into two disjoint domains")
        halves = torch.randperm(n, generator=torch.Generator().manual_seed(0))  # fixed: the same halves for every seed
        idx_a, idx_b = halves[: n // 2], halves[n // 2 : 2 * (n // 2)]
    else:
        idx_a, idx_b = torch.arange(len(a)), torch.arange(len(b))
    g = torch.Generator().manual_seed(int(seed))
    idx_a = idx_a[torch.randperm(len(idx_a), generator=g)]
    idx_b = idx_b[torch.randperm(len(idx_b), generator=g)]
    n = max(len(idx_a), len(idx_b))  # the smaller domain is repeated with fresh permutations

    def fill(idx: torch.Tensor) -> torch.Tensor:
        parts = [idx]
        while sum(len(p) for p in parts) < n:
            parts.append(idx[torch.randperm(len(idx), generator=g)])
        return torch.cat(parts)[:n]

    idx_a, idx_b = fill(idx_a), fill(idx_b)
    a, b = a.subset(idx_a), b.subset(idx_b)
    a = ImageDataset(
        apply(a.images, t_a, split, data_dir, seed=seed, index=idx_a),
        a.labels,
        num_classes=a.num_classes if a.labels is not None else None,
        name=domain_a,
    )
    b = ImageDataset(
        apply(b.images, t_b, split, data_dir, seed=seed, index=idx_b),
        b.labels,
        num_classes=b.num_classes if b.labels is not None else None,
        name=domain_b,
    )
    if a.images.shape[1] != b.images.shape[1]:  # grey next to colour: both RGB
        a, b = _to_rgb(a), _to_rgb(b)
    if a.shape[1:] != b.shape[1:]:
        raise DataError(
            f"the domains have different image sizes: A {domain_a!r} is {a.shape[1]}x{a.shape[2]}, B {domain_b!r} is "
            f"{b.shape[1]}x{b.shape[2]}; choose domains of one size or pass image_size=(H, W) to resize both"
        )
    images = torch.cat([a.images, b.images], 1)
    return UnpairedDataset(
        images, a, b, idx_a, idx_b, domain_a, domain_b, int(seed), name=f"unpaired:{domain_a},{domain_b}"
    )
