"""A small U-Net with a sinusoidal time embedding, shared by ``ddpm`` and ``flow-matching``.

The network of Ho et al. (2020, appendix B), itself the PixelCNN++ U-Net, cut
down so that a CPU trains it on 28x28 digits in minutes: residual blocks with
GroupNorm and SiLU, the time embedding added inside every block, one optional
self-attention layer at low resolution, stride-2 convolutions down and
nearest-neighbour upsampling + 3x3 convolutions up, with skip connections
concatenated between levels of the same size.

Class conditioning (``num_classes > 0``) adds a learned class embedding to the
time embedding. The embedding has one extra row, index ``num_classes``: the
*null class* of classifier-free guidance (Ho & Salimans 2021). Training drops
labels to it with some probability (:func:`drop_labels`); sampling mixes the
conditional and unconditional outputs (:func:`guided`).

Shapes: x (B, C, H, W), time (B,) floats in the caller's units (diffusion step
index 0..T-1, or 1000 t for continuous t in [0, 1]), labels (B,) long in
0..num_classes (num_classes = the null class) -> (B, out_channels, H, W).
Any H, W (odd sizes too: every upsampling goes to the exact size of its skip).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import ModelConfig
from ..distributions import draw
from ..errors import ConfigError


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Sinusoidal embedding of (B,) times -> (B, dim): [cos(t w_k), sin(t w_k)] with
    w_k = max_period^(-k / (dim/2)), k = 0..dim/2-1 (Vaswani et al. 2017); odd dim gets a zero column."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=1)
    return F.pad(emb, (0, dim % 2))


def _norm(channels: int, groups: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(groups, channels), channels)


class ResBlock(nn.Module):
    """GN, SiLU, 3x3 conv, + Linear(time embedding), GN, SiLU, dropout, 3x3 conv, plus a
    (1x1-projected) skip. (B, c_in, H, W), (B, E) -> (B, c_out, H, W)."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, groups: int, dropout: float):
        super().__init__()
        self.norm1, self.conv1 = _norm(c_in, groups), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, c_out)
        self.norm2, self.conv2 = _norm(c_out, groups), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.dropout = nn.Dropout(dropout)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(F.silu(emb))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


class SelfAttention(nn.Module):
    """Multi-head self-attention over the H*W positions, with a residual: (B, c, H, W) -> same."""

    def __init__(self, channels: int, groups: int, heads: int):
        super().__init__()
        if channels % heads:
            raise ValueError(f"attention: {channels} channels do not split into {heads} heads")
        self.heads = heads
        self.norm = _norm(channels, groups)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, h * w).transpose(-1, -2).unbind(1)
        a = F.scaled_dot_product_attention(q, k, v)  # (B, heads, HW, c/heads)
        return x + self.out(a.transpose(-1, -2).reshape(b, c, h, w))


class UNet(nn.Module):
    """U-Net eps/velocity network. See the module docstring for the layout.

    Args:
        in_channels / out_channels: image channels in, output channels (2 C for a
            mean and a variance).
        channels: width of the first level; level i has ``channels * channel_mult[i]``.
        channel_mult: one entry per resolution; (1, 2, 2) on 28x28 gives 28, 14, 7.
        num_blocks: residual blocks per level (down path; the up path has the same).
        attention_resolutions: feature-map sizes (the smaller side) that get
            self-attention after their blocks, e.g. (7,); () for none.
        num_classes: > 0 adds a class embedding with a null class at index num_classes.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        channels: int = 32,
        channel_mult: Sequence[int] = (1, 2, 2),
        num_blocks: int = 1,
        attention_resolutions: Sequence[int] = (7,),
        image_size: tuple[int, int] = (28, 28),
        groups: int = 8,
        heads: int = 1,
        dropout: float = 0.0,
        num_classes: int = 0,
    ):
        super().__init__()
        if channels < 1 or not channel_mult or num_blocks < 1:
            raise ValueError("the U-Net needs channels >= 1, a non-empty channel_mult and num_blocks >= 1")
        emb_dim = 4 * channels
        self.channels, self.num_classes = channels, num_classes
        self.time_mlp = nn.Sequential(nn.Linear(channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.class_emb = nn.Embedding(num_classes + 1, emb_dim) if num_classes > 0 else None
        self.conv_in = nn.Conv2d(in_channels, channels, 3, padding=1)
        widths = [channels * m for m in channel_mult]
        size = min(image_size)
        self.down, self.downsample, self.down_attn = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        c = channels
        level_sizes = []
        for i, w in enumerate(widths):
            self.down.append(
                nn.ModuleList(ResBlock(c if j == 0 else w, w, emb_dim, groups, dropout) for j in range(num_blocks))
            )
            self.down_attn.append(SelfAttention(w, groups, heads) if size in attention_resolutions else nn.Identity())
            level_sizes.append(size)
            c = w
            if i < len(widths) - 1:
                self.downsample.append(nn.Conv2d(w, w, 3, stride=2, padding=1))
                size = (size + 1) // 2
        self.mid1 = ResBlock(c, c, emb_dim, groups, dropout)
        self.mid_attn = SelfAttention(c, groups, heads) if attention_resolutions else nn.Identity()
        self.mid2 = ResBlock(c, c, emb_dim, groups, dropout)
        self.up, self.upsample, self.up_attn = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        for i in reversed(range(len(widths))):
            w = widths[i]
            self.up.append(
                nn.ModuleList(
                    ResBlock((c + w) if j == 0 else w, w, emb_dim, groups, dropout) for j in range(num_blocks)
                )
            )
            self.up_attn.append(
                SelfAttention(w, groups, heads) if level_sizes[i] in attention_resolutions else nn.Identity()
            )
            c = w
            if i > 0:
                self.upsample.append(nn.Conv2d(w, widths[i - 1], 3, padding=1))
                c = widths[i - 1]
        self.norm_out = _norm(c, groups)
        self.conv_out = nn.Conv2d(c, out_channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)  # the network starts as the zero function
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, x: Tensor, time: Tensor, labels: Tensor | None = None) -> Tensor:
        """x (B, C, H, W), time (B,) or a scalar, labels (B,) in 0..num_classes or None
        (= the null class for a conditional net) -> (B, out_channels, H, W)."""
        time = torch.as_tensor(time, device=x.device).float().reshape(-1).expand(x.shape[0])
        emb = self.time_mlp(timestep_embedding(time, self.channels))
        if self.class_emb is not None:
            if labels is None:
                labels = torch.full((x.shape[0],), self.num_classes, dtype=torch.long, device=x.device)
            emb = emb + self.class_emb(labels)
        h = self.conv_in(x)
        skips = []
        for i, blocks in enumerate(self.down):
            for block in blocks:
                h = block(h, emb)
            h = self.down_attn[i](h)
            skips.append(h)
            if i < len(self.downsample):
                h = self.downsample[i](h)
        h = self.mid2(self.mid_attn(self.mid1(h, emb)), emb)
        for i, blocks in enumerate(self.up):
            skip = skips.pop()
            h = torch.cat([h, skip], dim=1)
            for block in blocks:
                h = block(h, emb)
            h = self.up_attn[i](h)
            if i < len(self.upsample):
                h = self.upsample[i](F.interpolate(h, size=skips[-1].shape[-2:], mode="nearest"))
        return self.conv_out(F.silu(self.norm_out(h)))


def drop_labels(
    labels: Tensor | None, num_classes: int, p: float, generator: torch.Generator | None = None
) -> Tensor | None:
    """Classifier-free guidance training: each label becomes the null class ``num_classes``
    with probability ``p`` (labels (B,) long; None stays None)."""
    if labels is None or p <= 0:
        return labels
    drop = draw(torch.rand, labels.shape, generator=generator, device=labels.device) < p
    return torch.where(drop, torch.full_like(labels, num_classes), labels)


def guided(
    net: nn.Module, x: Tensor, time: Tensor, labels: Tensor | None, scale: float, channels: int | None = None
) -> Tensor:
    """Classifier-free guidance (Ho & Salimans 2021): out_u + scale * (out_c - out_u), with
    out_c = net(x, t, labels) and out_u = net(x, t, null class). scale = 1 is the plain
    conditional net (one evaluation), 0 the unconditional one; > 1 sharpens towards the class.
    ``channels``: guide only the first so many output channels (e.g. eps, not a learned
    variance), the others are the conditional output's. Shapes as :meth:`UNet.forward`."""
    if labels is None or scale == 1.0:
        return net(x, time, labels)
    null = torch.full_like(labels, net.num_classes)
    both = net(
        torch.cat([x, x]),
        torch.as_tensor(time, device=x.device).float().reshape(-1).expand(x.shape[0]).repeat(2),
        torch.cat([labels, null]),
    )
    cond, uncond = both.chunk(2)
    k = cond.shape[1] if channels is None else channels
    return torch.cat([uncond[:, :k] + scale * (cond[:, :k] - uncond[:, :k]), cond[:, k:]], dim=1)


@dataclass
class UNetModelConfig(ModelConfig):
    """The U-Net fields shared by the configs of ``ddpm`` and ``flow-matching``
    (see :class:`UNet`); the default (about 0.5 M parameters) trains on 28x28
    digits on one CPU thread at roughly 2 steps of 64 per second."""

    channels: int = 16
    channel_mult: tuple[int, ...] = (1, 2, 4)
    num_blocks: int = 1  # residual blocks per resolution (down; the up path has as many)
    attention_resolutions: tuple[int, ...] = (7,)
    heads: int = 1
    groups: int = 8
    dropout: float = 0.0
    label_dropout: float = 0.1  # classifier-free guidance: share of training labels replaced by the null class
    guidance_scale: float = 1.0  # sampling: out_u + scale (out_c - out_u); 1 = plain conditional, > 1 guided

    def validate(self) -> None:
        super().validate()
        self.check_positive("channels", "num_blocks", "heads", "groups")
        if not self.channel_mult or min(self.channel_mult) < 1:
            raise ConfigError(
                f"model.channel_mult must be a non-empty list of positive factors, got {list(self.channel_mult)}"
            )
        if not (0 <= self.dropout < 1 and 0 <= self.label_dropout <= 1):
            raise ConfigError(
                "model.dropout must be in [0, 1) and model.label_dropout in [0, 1], "
                f"got {self.dropout}, {self.label_dropout}"
            )


def unet_from_config(config: UNetModelConfig, out_channels: int) -> UNet:
    """The U-Net a :class:`UNetModelConfig` describes, for images of ``config.image_shape``."""
    c, h, w = config.image_shape
    return UNet(
        c,
        out_channels,
        channels=config.channels,
        channel_mult=config.channel_mult,
        num_blocks=config.num_blocks,
        attention_resolutions=config.attention_resolutions,
        image_size=(h, w),
        groups=config.groups,
        heads=config.heads,
        dropout=config.dropout,
        num_classes=config.num_classes,
    )
