"""Figures of image-to-image translation (CycleGAN): inputs, translations, reconstructions.

* :func:`translation_inputs`: the images to translate, from a file, a domain
  (``mnist+invert``) or the run's own unpaired data;
* :func:`translation_grid`: one picture with three rows: the inputs, their
  translations ``G(a)`` (or ``F(b)``), and the reconstructions ``F(G(a))`` (or ``G(F(b))``).

All images are float (N, C, H, W) in [0, 1].
"""

from __future__ import annotations

import torch
from torch import Tensor

from .images import load_image, make_grid

__all__ = ["translation_inputs", "translation_grid", "OTHER"]

#: the direction that undoes a direction
OTHER = {"a2b": "b2a", "b2a": "a2b"}


def translation_inputs(
    model,
    direction: str,
    *,
    image: str | None = None,
    domain: str | None = None,
    run_data: str | None = None,
    split: str = "test",
    data_dir: str | None = None,
    n: int = 8,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Images to translate, (n, C, H, W) in [0, 1] (one image for ``image``).

    ``image``: an image file, converted to the model's channels and size. ``domain``: a
    domain spec (``<data set>[+<transform>]``, see :mod:`genlab.data.unpaired`); n random
    images of its ``split``. Neither: the run's data (``run_data``, an
    ``unpaired:<A>,<B>`` spec): domain A for ``a2b``, B for ``b2a``.
    """
    from ..data.unpaired import load_domain, parse_spec
    from ..errors import GenlabError

    if direction not in OTHER:
        raise GenlabError(f"--direction must be a2b or b2a, got {direction!r}")
    _, h, w = model.config.image_shape
    c = model.domain_channels
    if image is not None and domain is not None:
        raise GenlabError("give either --image or --data, not both")
    if image is not None:
        return load_image(image, channels=c, size=(h, w)).unsqueeze(0)
    if domain is None:
        if not run_data or not str(run_data).startswith("unpaired:"):
            raise GenlabError(
                f"the run's data {run_data!r} is not an unpaired:<A>,<B> spec; pass --image PATH or --data DOMAIN"
            )
        a, b, _ = parse_spec(str(run_data)[len("unpaired:") :])
        domain = a if direction == "a2b" else b
    ds = load_domain(domain, split, data_dir, image_size=(h, w), channels=c)
    idx = torch.randperm(len(ds), generator=generator)[: max(1, n)]
    return ds.images[idx].float() / 255


def translation_grid(model, x01: Tensor, direction: str) -> Tensor:
    """(C, H', W') picture: row 1 the inputs, row 2 ``model.translate(x01, direction)``,
    row 3 the translations translated back (the cycle's reconstruction)."""
    t = model.translate(x01, direction)
    r = model.translate(t, OTHER[direction])
    return make_grid(torch.cat([x01.float().cpu(), t.cpu(), r.cpu()]), nrow=len(x01))
