"""Building blocks shared by the decoders and generators
(VAE decoder, DCGAN generator, ...): convolutional stages and fully connected stacks.

Spatial sizes are handled explicitly: a decoder knows the exact (H, W) of every
stage (computed from the image size with :func:`downsampled_sizes`), so odd
sizes such as 28x20 or 7x5 maps never cause a shape mismatch.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


def downsampled_sizes(height: int, width: int, stages: int) -> list[tuple[int, int]]:
    """Sizes after each stride-2 stage (3x3 or 4x4 kernel, padding 1): ceil(n / 2).

    Returns ``stages + 1`` sizes, the input size first:
    ``downsampled_sizes(28, 20, 2) == [(28, 20), (14, 10), (7, 5)]``.
    """
    sizes = [(height, width)]
    for _ in range(stages):
        h, w = sizes[-1]
        sizes.append(((h + 1) // 2, (w + 1) // 2))
    return sizes


def mlp(sizes: list[int], act) -> nn.Sequential:
    """Linear layers sizes[0] -> sizes[1] -> ... -> sizes[-1] with ``act()`` between
    them (none after the last): (B, sizes[0]) -> (B, sizes[-1])."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers += [nn.Linear(a, b)] + ([act()] if i < len(sizes) - 2 else [])
    return nn.Sequential(*layers)


class UpsampleConv(nn.Module):
    """Nearest-neighbour upsampling to an exact size, then a 3x3 convolution.

    The alternative to a stride-2 transposed convolution that avoids its
    checkerboard artefacts (Odena et al., 2016, "Deconvolution and checkerboard
    artifacts"). ``forward(x, size)`` takes the target (H, W), so a 7x5 map can
    go to 14x10 and a 4x4 map to 7x7 alike.

    Shapes: (B, in_ch, h, w) -> (B, out_ch, H, W).
    """

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 3):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel_size, padding=kernel_size // 2)

    def forward(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        return self.conv(F.interpolate(x, size=tuple(size), mode="nearest"))


class TransposedConvUp(nn.Module):
    """A stride-2 transposed convolution (kernel 4, padding 1: exactly 2x), then a
    crop to the target size (2 * ceil(n / 2) >= n, so a crop always suffices).

    Shapes: (B, in_ch, h, w) -> (B, out_ch, H, W) with H <= 2h, W <= 2w.
    """

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.conv = nn.ConvTranspose2d(in_ch, out_ch, 4, stride=2, padding=1)

    def forward(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        y = self.conv(x)
        h, w = size
        if y.shape[-2] < h or y.shape[-1] < w:  # only when asked to more than double
            return F.interpolate(y, size=(h, w), mode="nearest")
        return y[..., :h, :w]
