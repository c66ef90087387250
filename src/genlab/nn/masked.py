"""Masked and causal convolutions, with the activation caches used for fast sampling.

Autoregressive models factor ``p(x) = prod_i p(x_i | x_<i)`` over an ordering
of the dimensions. For images the ordering is raster order (row by row, left
to right) and, inside a pixel, channel order R -> G -> B. A convolution stays
causal when its weights are multiplied by a fixed 0/1 mask:

* spatially, an output at pixel (r, c) may read input pixels strictly before
  (r, c) in raster order, and the pixel (r, c) itself only through the
  *channel* mask;
* through the channel mask, feature channels are split into ``C`` groups (one
  per data channel, :func:`channel_groups`). At the centre tap, output group
  ``g`` reads input groups ``< g`` (mask type ``"A"``, the first layer: a pixel
  must not see itself) or ``<= g`` (type ``"B"``, every later layer).

Fast sampling (Ramachandran et al. 2017, "Fast Generation for Convolutional
Autoregressive Models"): a model's ``forward`` is written once and runs in two
modes. Normally every layer sees whole images. In *cached* mode (inside
:func:`caching`) each convolution receives only its input at the current
position(s) (a shared :class:`Position`), writes it into a buffer of past
inputs, and returns its output at those positions only, computed from the
kernel-sized window of that buffer. Point-wise operations (gates, ReLUs,
residual sums) need no change. A new pixel thus costs work proportional to the
receptive field, not to the image. :class:`CausalConv1d` does the same for
sequences with the classic WaveNet queue of its last ``(k - 1) * d + 1`` inputs.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "channel_groups",
    "pixelcnn_mask",
    "Position",
    "MaskedConv2d",
    "pixelcnn_conv",
    "vertical_conv",
    "horizontal_conv",
    "pointwise_conv",
    "CausalConv1d",
    "caching",
]


def channel_groups(n: int, data_channels: int, repeats: int = 1) -> Tensor:
    """Group index (0..data_channels-1) of each of ``n`` feature channels.

    The channels are ``repeats`` contiguous blocks (e.g. the tanh and the sigmoid
    half of a gated layer), each cut into ``data_channels`` contiguous groups.
    Group ``g`` carries information about data channels ``<= g`` of the pixel.
    """
    if n % repeats:
        raise ValueError(f"{n} channels cannot form {repeats} equal blocks")
    per = n // repeats
    if per < data_channels:
        raise ValueError(
            f"need at least {data_channels} channels per block for {data_channels} data channels, got {per}"
        )
    return (torch.arange(per) * data_channels // per).repeat(repeats)


def _centre_channel_mask(out_groups: Tensor, in_groups: Tensor, mask_type: str) -> Tensor:
    """(out, in) 0/1 mask for the tap at the current pixel."""
    if mask_type == "A":
        return (out_groups[:, None] > in_groups[None, :]).float()
    if mask_type == "B":
        return (out_groups[:, None] >= in_groups[None, :]).float()
    raise ValueError(f"mask_type must be 'A' or 'B', got {mask_type!r}")


def pixelcnn_mask(
    out_groups: Tensor, in_groups: Tensor, kh: int, kw: int, centre: tuple[int, int], mask_type: str
) -> Tensor:
    """(out, in, kh, kw) mask: taps strictly before ``centre`` in raster order are 1,
    the centre tap follows the channel rule of ``mask_type``, later taps are 0."""
    cr, cc = centre
    mask = torch.zeros(len(out_groups), len(in_groups), kh, kw)
    mask[:, :, :cr, :] = 1
    mask[:, :, cr, :cc] = 1
    mask[:, :, cr, cc] = _centre_channel_mask(out_groups, in_groups, mask_type)
    return mask


@dataclass
class Position:
    """Where a cached forward pass computes its outputs: row ``row``, columns
    ``col_start`` to ``col_end - 1`` (one pixel, or a whole row)."""

    row: int = 0
    col_start: int = 0
    col_end: int = 1


class MaskedConv2d(nn.Conv2d):
    """A 2-D convolution whose weight is multiplied by a fixed ``mask`` and whose
    output has the input's height and width.

    Args:
        padding: (top, bottom, left, right), with top + bottom = kh - 1 and
            left + right = kw - 1 so that output (r, c) reads the input window
            rows r - top .. r + bottom, columns c - left .. c + right.
        mask: (out, in, kh, kw) 0/1 tensor, or None for no mask.

    Shapes: (B, in, H, W) -> (B, out, H, W). In cached mode (see
    :func:`caching`): (B, in, 1, w) at the current :class:`Position` ->
    (B, out, 1, w) there.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: tuple[int, int],
        padding: tuple[int, int, int, int],
        mask: Tensor | None = None,
    ):
        super().__init__(in_channels, out_channels, kernel_size, padding=0)
        kh, kw = kernel_size
        top, bottom, left, right = padding
        if top + bottom != kh - 1 or left + right != kw - 1:
            raise ValueError(f"padding {padding} does not keep the size for kernel {kernel_size}")
        self.pad = (left, right, top, bottom)  # F.pad order
        if mask is None:
            mask = torch.ones_like(self.weight)
        self.register_buffer("mask", mask.to(self.weight.dtype), persistent=False)
        # 1x1 convolutions over one data channel need neither mask nor padding: skip both.
        self._full_mask = bool(mask.all())
        # Kernel rows below the last row with a 1 in the mask only ever multiply zeros
        # (PixelCNN's k x k masks: the k//2 rows under the centre). The whole-image pass
        # convolves with the rows above them only and pads less at the bottom: the same
        # outputs for about (k//2 + 1)/k of the work. The weight keeps its full shape.
        rows = mask.amax(dim=(0, 1, 3)).nonzero()
        self._rows = int(rows.max()) + 1 if len(rows) else kh
        self._crop_pad = (left, right, top, bottom - (kh - self._rows))
        self._no_pad = not any(self._crop_pad)
        self._cache: Tensor | None = None  # padded buffer of every input seen so far
        self._pos: Position | None = None
        self._masked_weight: Tensor | None = None
        self._flat_weight: Tensor | None = None

    def forward(self, x: Tensor) -> Tensor:
        if self._cache is None:
            r = self._rows
            weight = self.weight[:, :, :r] if self._full_mask else self.weight[:, :, :r] * self.mask[:, :, :r]
            return F.conv2d(x if self._no_pad else F.pad(x, self._crop_pad), weight, self.bias)
        return self._cached_forward(x)

    # -------------------------------------------------------------- cached mode
    def start_cache(self, batch: int, height: int, width: int, pos: Position) -> None:
        left, right, top, bottom = self.pad
        self._pos = pos
        self._masked_weight = self.weight * self.mask
        self._flat_weight = self._masked_weight.reshape(self.out_channels, -1)
        if self.kernel_size != (1, 1):
            self._cache = self.weight.new_zeros(batch, self.in_channels, height + top + bottom, width + left + right)
        else:
            self._cache = self.weight.new_zeros(0)  # a 1x1 conv needs no past inputs; marks cached mode

    def stop_cache(self) -> None:
        self._cache = self._pos = self._masked_weight = self._flat_weight = None

    def _cached_forward(self, x: Tensor) -> Tensor:
        if self.kernel_size == (1, 1):
            window = x
        else:
            kh, kw = self.kernel_size
            left, _, top, _ = self.pad
            r, c0, c1 = self._pos.row, self._pos.col_start, self._pos.col_end
            # Remember the new input; the buffer is in padded coordinates.
            self._cache[:, :, r + top, c0 + left : c1 + left] = x[:, :, 0, :]
            # Output (r, c) reads buffer rows r .. r+kh-1 and columns c .. c+kw-1.
            window = self._cache[:, :, r : r + kh, c0 : c1 - 1 + kw]
        if window.shape[2:] == self.kernel_size:
            # One output position: a plain matrix product, much cheaper than a
            # conv2d call on a tiny input.
            out = F.linear(window.reshape(window.shape[0], -1), self._flat_weight, self.bias)
            return out[:, :, None, None]
        return F.conv2d(window, self._masked_weight, self.bias)


def pixelcnn_conv(
    in_channels: int, out_channels: int, kernel_size: int, mask_type: str, data_channels: int = 1, first: bool = False
) -> MaskedConv2d:
    """The k x k masked convolution of PixelCNN, type "A" or "B".

    ``first=True``: the inputs are the ``data_channels`` image channels
    themselves (input channel i is data channel i), otherwise feature channels
    in ``data_channels`` groups.
    """
    k = kernel_size
    if k % 2 == 0:
        raise ValueError(f"kernel_size must be odd, got {k}")
    in_groups = torch.arange(data_channels) if first else channel_groups(in_channels, data_channels)
    if first and in_channels != data_channels:
        raise ValueError("the first layer reads the data channels directly")
    out_groups = channel_groups(out_channels, data_channels)
    mask = pixelcnn_mask(out_groups, in_groups, k, k, (k // 2, k // 2), mask_type)
    return MaskedConv2d(in_channels, out_channels, (k, k), (k // 2, k // 2, k // 2, k // 2), mask)


def vertical_conv(in_channels: int, out_channels: int, kernel_size: int) -> MaskedConv2d:
    """Gated PixelCNN vertical stack: output (r, c) reads rows r - k//2 .. r and
    columns c - k//2 .. c + k//2 (a (k//2 + 1) x k kernel). It includes row r, so
    the model must shift it down one row before the horizontal stack uses it."""
    k = kernel_size
    return MaskedConv2d(in_channels, out_channels, (k // 2 + 1, k), (k // 2, 0, k // 2, k // 2))


def horizontal_conv(
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    mask_type: str,
    data_channels: int = 1,
    first: bool = False,
    out_repeats: int = 1,
) -> MaskedConv2d:
    """Gated PixelCNN horizontal stack: output (r, c) reads row r, columns
    c - k//2 .. c (a 1 x (k//2 + 1) kernel); the tap at c follows the channel rule."""
    k = kernel_size
    in_groups = torch.arange(data_channels) if first else channel_groups(in_channels, data_channels)
    out_groups = channel_groups(out_channels, data_channels, out_repeats)
    mask = pixelcnn_mask(out_groups, in_groups, 1, k // 2 + 1, (0, k // 2), mask_type)
    return MaskedConv2d(in_channels, out_channels, (1, k // 2 + 1), (0, 0, k // 2, 0), mask)


def pointwise_conv(
    in_channels: int,
    out_channels: int,
    data_channels: int = 1,
    masked: bool = True,
    out_repeats: int = 1,
    in_repeats: int = 1,
) -> MaskedConv2d:
    """A 1x1 convolution; ``masked`` applies the type-B channel rule (needed
    whenever it mixes channels of the current pixel and ``data_channels`` > 1)."""
    mask = None
    if masked:
        out_groups = channel_groups(out_channels, data_channels, out_repeats)
        in_groups = channel_groups(in_channels, data_channels, in_repeats)
        mask = _centre_channel_mask(out_groups, in_groups, "B")[:, :, None, None]
    return MaskedConv2d(in_channels, out_channels, (1, 1), (0, 0, 0, 0), mask)


class CausalConv1d(nn.Conv1d):
    """Dilated causal 1-D convolution: output t reads inputs t - (k-1)*d .. t.

    Shapes: (B, in, T) -> (B, out, T). In cached mode (see :func:`caching`):
    (B, in, 1), the input at the newest time step -> (B, out, 1), using a queue
    of the last ``(k - 1) * d + 1`` inputs.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 2, dilation: int = 1):
        super().__init__(in_channels, out_channels, kernel_size, dilation=dilation)
        self.left_pad = (kernel_size - 1) * dilation
        self._queue: Tensor | None = None

    @property
    def receptive_field(self) -> int:
        return self.left_pad + 1

    def forward(self, x: Tensor) -> Tensor:
        if self._queue is None:
            return super().forward(F.pad(x, (self.left_pad, 0)))
        # Drop the oldest input, append the newest; the queue starts as zeros,
        # exactly the left padding of the full pass.
        self._queue = torch.cat([self._queue[:, :, 1:], x], dim=2)
        return super().forward(self._queue)

    def start_cache(self, batch: int, height: int, width: int, pos: Position) -> None:
        self._queue = self.weight.new_zeros(batch, self.in_channels, self.left_pad + 1)

    def stop_cache(self) -> None:
        self._queue = None


@contextlib.contextmanager
def caching(module: nn.Module, batch: int, height: int = 1, width: int = 1):
    """Put every masked/causal convolution inside ``module`` in cached mode.

    Yields the shared :class:`Position` that the caller moves before each
    forward pass on the new position(s). The caches are freed on exit.
    """
    pos = Position()
    layers = [m for m in module.modules() if isinstance(m, (MaskedConv2d, CausalConv1d))]
    for m in layers:
        m.start_cache(batch, height, width, pos)
    try:
        yield pos
    finally:
        for m in layers:
            m.stop_cache()
