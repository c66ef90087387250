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
from ..presets import Preset
from .gan import GAN, GANConfig
from .gan import TRAIN_DEFAULTS as GAN_TRAIN_DEFAULTS


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


#: Training defaults of the registry entry: the GAN's, Adam lr 2e-4, beta1 0.5 for both players (section 4).
TRAIN_DEFAULTS = GAN_TRAIN_DEFAULTS

_ADAM_GAN = {"train.lr": 2e-4, "train.betas": (0.5, 0.999)}

#: The presets of ``genlab train dcgan --preset NAME``: the paper's.
PRESETS: dict[str, Preset] = {
    "paper": Preset(
        {
            "data.name": "celeba",
            "model.image_shape": (3, 64, 64),
            "model.latent_dim": 100,
            "model.channels": 128,
            "model.upsample": "transposed",
            "model.g_batchnorm": True,
            "model.d_batchnorm": True,
            "model.objective": "non-saturating",
            "train.batch_size": 128,
            "train.weight_decay": 1e-5,
            "train.steps": 34_180,
            **_ADAM_GAN,
        },
        source=(
            "Newmu/dcgan_code, faces/train_uncond_dcgan.py (the authors' code; Radford, Metz & Chintala 2016 "
            "(DCGAN), section 4 and figure 1): 100-d z projected to 4x4x1024 with batch norm per unit "
            "(as genlab's), transposed stride-2 convolutions 512-256-128-3 to 64x64 (ngf 128), D "
            "128-256-512-1024 (ndf 128), ReLU/tanh in G, LeakyReLU 0.2 in D, weights N(0, 0.02), Adam lr 2e-4, "
            "beta1 0.5, L2 weight decay 1e-5, batch 128, 25 epochs of 350,000 faces with G and D updated on "
            "alternate batches (about 34,180 updates of each). "
            "Not in genlab: the code's and figure 1's 5x5 kernels (genlab's DCGAN has no kernel-size setting: "
            "4x4 stride-2 layers); z uniform in [-1, 1] (genlab: normal); convolutions without biases (genlab's "
            "last layer of G has 3); the paper's data (LSUN bedrooms, Imagenet-1k, its own web-scraped faces): "
            "CelebA 64x64 instead. Parameters of G: 12,689,155 (the code's layers with 4x4 kernels, plus 3 "
            "biases); the code's G with its 5x5 kernels: 18,885,760."
        ),
    ),
}


@dataclass
class LSGANConfig(DCGANConfig):
    """DCGAN with the least-squares objective (Mao et al., 2017)."""

    objective: str = "least-squares"


#: Training defaults of the ``lsgan`` registry entry: the GAN's (its paper's preset sets its own rate).
LSGAN_TRAIN_DEFAULTS = GAN_TRAIN_DEFAULTS

#: The presets of ``genlab train lsgan --preset NAME``: the paper's.
LSGAN_PRESETS: dict[str, Preset] = {
    "paper": Preset(
        {
            "data.name": "celeba",
            "model.image_shape": (3, 64, 64),
            "model.latent_dim": 1024,
            "model.channels": 64,
            "model.objective": "least-squares",
            "train.batch_size": 64,
            "train.lr": 1e-3,
            "train.betas": (0.5, 0.999),
            "train.steps": 1_000_000,
        },
        source=(
            "xudonmao/LSGAN, train_lsun.py and vgg.py (the authors' code for the LSUN scenes; Mao et al. 2017 "
            "(LSGAN), section 3.2 with a = 0, b = c = 1, and figure 3): 1024-d z, batch norm, D widths "
            "64-128-256-512, Adam lr 1e-3 (train_lsun.py's learning_rate; train_chn.py, the "
            "Chinese-characters model, uses 2e-4), "
            "beta1 0.5, batch 64, D then G on every batch, max_steps 1,000,000. Not expressible in genlab's "
            "DCGAN-shaped networks: the 112x112 LSUN network (vgg.py; G: 3x3 transposed convolutions alternating "
            "strides 2 and 1, 256 maps at 7x7; D: 5x5 stride-2 convolutions, ops.py): genlab uses DCGAN's 4x4 "
            "stride-2 layers; z uniform in [-1, 1] (genlab: normal); LSUN (CelebA 64x64 instead)."
        ),
    ),
}


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
