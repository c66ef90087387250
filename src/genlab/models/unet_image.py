"""The base that ``ddpm`` and ``flow-matching`` share: a U-Net (:mod:`genlab.nn.unet`)
with an image-shaped N(0, I) latent at the noise end of the process."""

from __future__ import annotations

import torch
from torch import Tensor

from ..distributions import draw
from ..nn.unet import UNetModelConfig, unet_from_config
from .base import GenerativeModel


class UNetImageModel(GenerativeModel):
    """What ``ddpm`` and ``flow-matching`` share: a U-Net ``self.net`` with ``out_channels``
    outputs, images (B, C, H, W), and an image-shaped N(0, I) latent (the noise end of the
    process). Labels: None means the null class (the unconditional model)."""

    data_kind = "image"

    def __init__(self, config: UNetModelConfig, out_channels: int):
        super().__init__(config)
        self.net = unet_from_config(config, out_channels)

    def _labels(self, labels: Tensor | None, n: int) -> Tensor | None:
        return None if labels is None else self.check_labels(labels, n)

    @property
    def latent_shape(self) -> tuple[int, ...]:
        return tuple(self.config.image_shape)

    def latent(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        """The noise end: N(0, I) draws, (n, C, H, W)."""
        return draw(torch.randn, (n, *self.latent_shape), generator=generator, device=self.device)
