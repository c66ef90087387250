"""DCGAN (Radford, Metz & Chintala, 2016) and its least-squares preset LSGAN (Mao et al., 2017).

The training logic is :class:`genlab.models.gan.GAN`'s; this file fixes the
architecture to the paper's guidelines:

* discriminator: strided 4x4 convolutions (no pooling), LeakyReLU(0.2), batch norm
  on every layer but the first, a linear (or projection) head on the last map;
* generator: a projection of ``z`` to an ``s x s`` map, then ``k`` doublings by
  4x4 stride-2 transposed convolutions (``upsample="transposed"``, the paper) or
  nearest upsampling + 3x3 convolution (``upsample="upsample"``, no checkerboard
  artefacts), batch norm and ReLU inside, tanh on the output;
* weights ~ N(0, 0.02); Adam with lr 2e-4 and beta1 = 0.5 for both players.

Image sizes: square, side ``s * 2^k`` with ``4 <= s <= 7``, ``k >= 2``: 28x28 grey
(MNIST: 7 -> 14 -> 28), 32x32 RGB (CIFAR-10: 4 -> 8 -> 16 -> 32) and 64x64 (CelebA)
all work; any other size is a ConfigError when the config is built.

``lsgan`` is the same network with ``objective = "least-squares"``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError
from ..nn import gan_blocks as blocks
from .gan import GAN, GANConfig


@dataclass
class DCGANConfig(GANConfig):
    image_shape: tuple[int, ...] = (1, 28, 28)
    latent_dim: int = 100
    arch: str = "conv"  # DCGAN is convolutional; kept for the shared config shape
    channels: int = 64
    g_batchnorm: bool = True
    d_batchnorm: bool = True

    def validate(self) -> None:
        if len(self.image_shape) != 3:
            raise ConfigError(
                f"DCGAN needs images (C, H, W), got image_shape={tuple(self.image_shape)}; use the gan model for points"
            )
        if self.arch != "conv":
            raise ConfigError("DCGAN is convolutional: model.arch must be conv (use the gan model for an MLP)")
        super().validate()


@dataclass
class LSGANConfig(DCGANConfig):
    """DCGAN with the least-squares objective (Mao et al., 2017)."""

    objective: str = "least-squares"


class DCGAN(GAN):
    """The DCGAN networks with any GAN objective. Images only."""

    config_class = DCGANConfig

    def build_networks(self):
        c = self.config
        k = c.num_classes
        G = blocks.ConvGenerator(c.latent_dim, c.image_shape, c.channels, c.upsample, c.g_batchnorm, k, c.label_dim)
        D = blocks.ConvDiscriminator(c.image_shape, c.channels, c.d_batchnorm, k, c.conditioning, c.spectral_norm)
        blocks.dcgan_init(G)
        blocks.dcgan_init(D)
        return G, D
