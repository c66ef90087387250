"""Generator and discriminator networks shared by ``gan``, ``dcgan``/``lsgan`` and ``ali``.

* :class:`MLPGenerator` / :class:`MLPDiscriminator`: fully connected networks for
  vectors (toy 2-D points) or flattened images.
* :class:`ConvGenerator` / :class:`ConvDiscriminator`: the DCGAN shapes (Radford et
  al., 2016): the generator projects ``z`` to an ``s x s`` map and doubles it ``k``
  times (transposed convolutions, or nearest upsampling + 3x3 convolution); the
  discriminator halves the image ``k`` times with strided 4x4 convolutions and
  LeakyReLU(0.2). Sides ``s * 2^k`` with ``4 <= s <= 7`` and ``k >= 2`` are
  supported: 16, 20, 24, 28 (7 * 4), 32 (4 * 8), 48, 56, 64 (4 * 16), 128, ...
* Class conditioning: the generator concatenates a learned label embedding to
  ``z``; the discriminator either uses a projection head (Miyato & Koyama, 2018:
  ``l(x, y) = w^T phi(x) + embed(y)^T phi(x)``) or sees the label concatenated to its
  input (one-hot channels for images, a one-hot vector for points).

Every network takes ``(input, labels)`` with ``labels`` a LongTensor (N,) or None.
Discriminators return logits of shape (N,).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError

CONDITIONINGS = ("projection", "concat")
UPSAMPLINGS = ("transposed", "upsample")


def dcgan_layout(height: int, width: int) -> tuple[int, int]:
    """``(s, k)`` with ``side = s * 2^k``, ``4 <= s <= 7``, ``k >= 2``; ConfigError otherwise."""
    if height == width:
        for k in range(int(math.log2(max(height, 1))), 1, -1):
            s, rem = divmod(height, 2**k)
            if rem == 0 and 4 <= s <= 7:
                return s, k
    raise ConfigError(
        f"the convolutional GAN cannot make {height}x{width} images: it needs square images whose side is "
        f"s * 2^k with 4 <= s <= 7 and k >= 2 (e.g. 28, 32 or 64); resize the data "
        f"(--set data.image_size=64) or use --set model.arch=mlp"
    )


def maybe_sn(module: nn.Module, on: bool) -> nn.Module:
    """Wrap a conv/linear layer in spectral normalisation (Miyato et al., 2018) when ``on``."""
    return nn.utils.parametrizations.spectral_norm(module) if on else module


class LabelHead(nn.Module):
    """Final layer of a discriminator: features (N, F) -> logits (N,), with a projection
    term ``embed(y) . phi`` when class-conditional by projection."""

    def __init__(self, features: int, num_classes: int, projection: bool, spectral_norm: bool):
        super().__init__()
        self.linear = maybe_sn(nn.Linear(features, 1), spectral_norm)
        self.embed = nn.Embedding(num_classes, features) if (num_classes > 0 and projection) else None
        if self.embed is not None:
            nn.init.normal_(self.embed.weight, std=0.02)

    def forward(self, h: Tensor, labels: Tensor | None) -> Tensor:
        out = self.linear(h).squeeze(1)
        if self.embed is not None:
            out = out + (self.embed(labels) * h).sum(1)
        return out


def _one_hot(labels: Tensor, num_classes: int, like: Tensor) -> Tensor:
    return F.one_hot(labels, num_classes).to(like.dtype)


# --------------------------------------------------------------------------- MLP


class MLPGenerator(nn.Module):
    """z (N, latent_dim) [+ label embedding] -> (N, out_dim); linear output (the caller
    adds tanh for images)."""

    def __init__(
        self,
        latent_dim: int,
        out_dim: int,
        hidden: int,
        depth: int,
        num_classes: int = 0,
        label_dim: int = 0,
        batchnorm: bool = False,
    ):
        super().__init__()
        self.embed = nn.Embedding(num_classes, label_dim) if num_classes > 0 else None
        layers: list[nn.Module] = []
        width = latent_dim + (label_dim if num_classes > 0 else 0)
        for _ in range(depth):
            layers += [nn.Linear(width, hidden)]
            if batchnorm:
                layers += [nn.BatchNorm1d(hidden)]
            layers += [nn.ReLU()]
            width = hidden
        layers += [nn.Linear(width, out_dim)]
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        if self.embed is not None:
            z = torch.cat([z, self.embed(labels)], 1)
        return self.net(z)


def leaky_mlp(
    in_dim: int, hidden: int, depth: int, spectral_norm: bool = False, dropout: float = 0.0
) -> tuple[nn.Sequential, int]:
    """``depth`` layers Linear -> LeakyReLU(0.2) [-> Dropout], the discriminators' MLP body:
    (N, in_dim) -> (N, hidden) (the input unchanged when depth is 0). Returns (body, output width)."""
    layers: list[nn.Module] = []
    width = in_dim
    for _ in range(depth):
        layers += [maybe_sn(nn.Linear(width, hidden), spectral_norm), nn.LeakyReLU(0.2)]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = hidden
    return nn.Sequential(*layers), width


class MLPDiscriminator(nn.Module):
    """(N, in_dim) -> logits (N,) with LeakyReLU(0.2) hidden layers (dropout after each when > 0)."""

    def __init__(
        self,
        in_dim: int,
        hidden: int,
        depth: int,
        num_classes: int = 0,
        conditioning: str = "projection",
        spectral_norm: bool = False,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.num_classes = num_classes
        self.concat = num_classes > 0 and conditioning == "concat"
        self.body, width = leaky_mlp(
            in_dim + (num_classes if self.concat else 0), hidden, depth, spectral_norm, dropout
        )
        self.head = LabelHead(width, num_classes, conditioning == "projection", spectral_norm)

    def forward(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        x = x.reshape(x.shape[0], -1)
        if self.concat:
            x = torch.cat([x, _one_hot(labels, self.num_classes, x)], 1)
        return self.head(self.body(x), labels)


# --------------------------------------------------------------------------- convolutional


class ConvGenerator(nn.Module):
    """z (N, latent_dim) [+ label embedding] -> images (N, C, H, W), linear output.

    Widths: ``channels * 2^(k-1)`` at ``s x s``, halving at each doubling of the side;
    the last doubling maps straight to the image channels (as in DCGAN).
    """

    def __init__(
        self,
        latent_dim: int,
        image_shape: tuple[int, int, int],
        channels: int,
        upsample: str = "transposed",
        batchnorm: bool = True,
        num_classes: int = 0,
        label_dim: int = 0,
    ):
        super().__init__()
        if upsample not in UPSAMPLINGS:
            raise ConfigError(f"unknown upsample {upsample!r}; choose one of: {', '.join(UPSAMPLINGS)}")
        c_img, h, w = image_shape
        s, k = dcgan_layout(h, w)
        self.s = s
        self.embed = nn.Embedding(num_classes, label_dim) if num_classes > 0 else None
        width = channels * 2 ** (k - 1)
        self.width = width
        in_dim = latent_dim + (label_dim if num_classes > 0 else 0)
        # batch norm makes a bias redundant
        self.project = nn.Linear(in_dim, width * s * s, bias=not batchnorm)
        self.project_norm = nn.BatchNorm1d(width * s * s) if batchnorm else nn.Identity()
        blocks: list[nn.Module] = []
        for i in range(k):
            last = i == k - 1
            out = c_img if last else width // 2
            blocks.append(self._up(width, out, upsample, bias=last or not batchnorm))
            if not last:
                if batchnorm:
                    blocks.append(nn.BatchNorm2d(out))
                blocks.append(nn.ReLU())
            width = out
        self.blocks = nn.Sequential(*blocks)

    @staticmethod
    def _up(cin: int, cout: int, mode: str, bias: bool) -> nn.Module:
        if mode == "transposed":
            return nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1, bias=bias)
        return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(cin, cout, 3, padding=1, bias=bias))

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        if self.embed is not None:
            z = torch.cat([z, self.embed(labels)], 1)
        h = F.relu(self.project_norm(self.project(z)))
        return self.blocks(h.view(z.shape[0], self.width, self.s, self.s))


def conv_body(
    in_channels: int, channels: int, k: int, batchnorm: bool = True, spectral_norm: bool = False
) -> tuple[nn.Sequential, int]:
    """The DCGAN discriminator's body: ``k`` strided 4x4 convolutions, each halving the side,
    widths ``channels, 2 channels, ..., channels * 2^(k-1)``, LeakyReLU(0.2), batch norm after
    all but the first when ``batchnorm``. (N, in_channels, H, W) -> (N, width, H / 2^k, W / 2^k);
    returns (body, width)."""
    layers: list[nn.Module] = []
    cin, width = in_channels, channels
    for i in range(k):
        use_bn = batchnorm and i > 0
        layers.append(maybe_sn(nn.Conv2d(cin, width, 4, stride=2, padding=1, bias=not use_bn), spectral_norm))
        if use_bn:
            layers.append(nn.BatchNorm2d(width))
        layers.append(nn.LeakyReLU(0.2))
        cin, width = width, width * 2
    return nn.Sequential(*layers), cin


class ConvDiscriminator(nn.Module):
    """images (N, C, H, W) -> logits (N,): ``k`` strided 4x4 convolutions with LeakyReLU(0.2)
    (batch norm after all but the first when ``batchnorm``), then a linear/projection head."""

    def __init__(
        self,
        image_shape: tuple[int, int, int],
        channels: int,
        batchnorm: bool = True,
        num_classes: int = 0,
        conditioning: str = "projection",
        spectral_norm: bool = False,
    ):
        super().__init__()
        c_img, h, w = image_shape
        s, k = dcgan_layout(h, w)
        self.num_classes = num_classes
        self.concat = num_classes > 0 and conditioning == "concat"
        self.body, width = conv_body(c_img + (num_classes if self.concat else 0), channels, k, batchnorm, spectral_norm)
        self.head = LabelHead(width * s * s, num_classes, conditioning == "projection", spectral_norm)

    def forward(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        if self.concat:
            onehot = _one_hot(labels, self.num_classes, x)[:, :, None, None].expand(-1, -1, x.shape[2], x.shape[3])
            x = torch.cat([x, onehot], 1)
        return self.head(self.body(x).flatten(1), labels)


def dcgan_init(module: nn.Module) -> None:
    """DCGAN initialisation: conv/linear weights ~ N(0, 0.02), batch-norm scales ~ N(1, 0.02)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            w = m.parametrizations.weight.original if hasattr(m, "parametrizations") else m.weight
            nn.init.normal_(w, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
