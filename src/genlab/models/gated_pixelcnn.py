"""Gated PixelCNN: vertical and horizontal stacks, gated activations, class conditioning.

van den Oord, Kalchbrenner, Vinyals, Espeholt, Graves and Kavukcuoglu (2016),
"Conditional Image Generation with PixelCNN Decoders", figure 2 and eq. (2)-(4):

    y = tanh(W_f * x + V_f h) . sigmoid(W_g * x + V_g h)

with h a learned class embedding. Two stacks remove PixelCNN's blind spot:

* the *vertical* stack sees every pixel in the rows above (a (k//2+1) x k kernel
  covering rows r - k//2 .. r, shifted down one row before use);
* the *horizontal* stack sees the pixels to the left in the current row (a
  1 x (k//2+1) kernel), plus the vertical stack through a 1x1 convolution.

Together the output at pixel i depends on every pixel before i in raster order.
log p(x) = sum_i log p(x_i | x_<i) is exact.

Shapes: x (B, C, H, W) in the input space -> parameters (B, C*P, H, W).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import ModelConfig
from ..nn.autoregressive import check_head_config
from ..nn.masked import Position, horizontal_conv, pointwise_conv, vertical_conv
from ..presets import Preset, Published
from .autoregressive import AutoregressiveImageModel


@dataclass
class GatedPixelCNNConfig(ModelConfig):
    """``likelihood``: "auto" (Bernoulli for 1 channel, logistic mixture for RGB),
    "bernoulli", "categorical" or "logistic-mixture". ``num_classes`` > 0 adds a
    learned class embedding to every gate (then ``labels`` are required). ``num_blocks``
    gated blocks: the first reads the image with ``input_kernel`` (type-A masks), the
    others use ``block_kernel``."""

    image_shape: tuple[int, int, int] = (1, 28, 28)
    likelihood: str = "auto"
    grey_levels: int = 256
    mixtures: int = 5
    hidden_channels: int = 64
    num_blocks: int = 8
    input_kernel: int = 7
    block_kernel: int = 3
    output_channels: int = 64

    def validate(self) -> None:
        super().validate()
        check_head_config(self)
        self.check_positive("hidden_channels", "num_blocks", "input_kernel", "block_kernel", "output_channels")


#: Training defaults of the registry entry: TrainConfig's own.
TRAIN_DEFAULTS: dict = {}

#: The presets of ``genlab train gated-pixelcnn --preset NAME``: the paper's.
PRESETS: dict[str, Preset] = {
    "paper": Preset(
        {
            "data.name": "cifar10",
            "model.image_shape": (3, 32, 32),
            "model.likelihood": "categorical",
            "model.grey_levels": 256,
            "model.hidden_channels": 384,
            "model.num_blocks": 20,
            "model.input_kernel": 5,
            "model.block_kernel": 5,
            "model.output_channels": 384,
        },
        source=(
            "van den Oord et al. 2016b (Conditional PixelCNN), section 3.1 and Table 1 (CIFAR-10): 20 gated layers "
            "of 384 feature maps, 5x5 filters, a 256-way softmax per sub-pixel. The paper gives no output-head "
            "width: genlab's 1x1 head is 384 wide here. The paper reports no MNIST setting. Not in genlab: its "
            "32-GPU synchronous training schedule (genlab: Adam with its defaults)."
        ),
        published=(Published("bits/dim", 3.03, "van den Oord et al. 2016b, Table 1, CIFAR-10 test, Gated PixelCNN"),),
    ),
}


def gate(a: Tensor) -> Tensor:
    """(B, 2p, ...) -> tanh(first half) * sigmoid(second half), (B, p, ...)."""
    f, g = a.chunk(2, dim=1)
    return torch.tanh(f) * torch.sigmoid(g)


class GatedLayer(nn.Module):
    """One layer of both stacks. ``first``: reads the image (horizontal mask type A,
    no residual). Shapes: v, h (B, p, H, W) (or (B, C, H, W) when first) -> same with p."""

    def __init__(self, in_channels: int, channels: int, kernel: int, data_channels: int, num_classes: int, first: bool):
        super().__init__()
        c, p = data_channels, channels
        self.first = first
        self.v_conv = vertical_conv(in_channels, 2 * p, kernel)
        self.v_to_h = pointwise_conv(2 * p, 2 * p, masked=False)  # reads rows above only: no channel rule
        self.h_conv = horizontal_conv(in_channels, 2 * p, kernel, "A" if first else "B", c, first=first, out_repeats=2)
        self.h_out = pointwise_conv(p, p, c)
        self.embed = nn.Embedding(num_classes, 2 * p) if num_classes > 0 else None

    def vertical(self, v: Tensor, cond: Tensor | None) -> tuple[Tensor, Tensor]:
        """-> (pre-activation for the horizontal stack (B, 2p, H, W), gated output (B, p, H, W))."""
        a = self.v_conv(v)
        return a, gate(a if cond is None else a + cond)

    def horizontal(self, h: Tensor, v_above: Tensor, cond: Tensor | None) -> Tensor:
        """v_above: the vertical pre-activation of the row above, (B, 2p, H, W)."""
        a = self.h_conv(h) + self.v_to_h(v_above)
        out = self.h_out(gate(a if cond is None else a + cond))
        return out if self.first else h + out


def shift_down(v: Tensor) -> Tensor:
    """Row r receives row r - 1 (zeros in row 0): keeps the vertical stack strictly above."""
    return F.pad(v, (0, 0, 1, 0))[:, :, :-1, :]


class GatedPixelCNN(AutoregressiveImageModel):
    config_class = GatedPixelCNNConfig

    def __init__(self, config: GatedPixelCNNConfig):
        super().__init__(config)
        c = config.image_shape[0]
        p = config.hidden_channels
        k = config.num_classes
        self.layers = nn.ModuleList(
            [GatedLayer(c, p, config.input_kernel, c, k, first=True)]
            + [GatedLayer(p, p, config.block_kernel, c, k, first=False) for _ in range(config.num_blocks - 1)]
        )
        self.out1 = pointwise_conv(p, config.output_channels, c)
        self.out2 = pointwise_conv(config.output_channels, self.out_channels, c)
        self._v_above: list[Tensor] | None = None  # cached mode: vertical pre-activations of the previous row

    def _conditions(self, labels: Tensor | None) -> list[Tensor | None]:
        if labels is None or self.config.num_classes == 0:
            return [None] * len(self.layers)
        return [layer.embed(labels)[:, :, None, None] for layer in self.layers]

    def vertical_stack(self, x: Tensor, labels: Tensor | None) -> list[Tensor]:
        """x (B, C, H', W) -> the pre-activation of every layer's vertical conv (B, 2p, H', W)."""
        v, pre = self.network_input(x), []
        for layer, cond in zip(self.layers, self._conditions(labels)):
            a, v = layer.vertical(v, cond)
            pre.append(a)
        return pre

    def horizontal_stack(self, x: Tensor, v_above: list[Tensor], labels: Tensor | None) -> Tensor:
        """x (B, C, H', W'), v_above[l] (B, 2p, H', W') -> parameters (B, C*P, H', W')."""
        h = self.network_input(x)
        for layer, va, cond in zip(self.layers, v_above, self._conditions(labels)):
            h = layer.horizontal(h, va, cond)
        return self.out2(F.relu(self.out1(F.relu(h))))

    def forward(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        """x (B, C, H, W) in input space -> distribution parameters (B, C*P, H, W)."""
        return self.horizontal_stack(x, [shift_down(a) for a in self.vertical_stack(x, labels)], labels)

    # ---------------------------------------------------------- cached sampling
    def _cached_params(self, x: Tensor, labels: Tensor | None, pos: Position, row: int, col: int) -> Tensor:
        if row == 0 and col == 0:  # a new image: nothing above the first row
            n, p2, w = x.shape[0], 2 * self.config.hidden_channels, x.shape[3]
            self._v_above = [x.new_zeros(n, p2, 1, w) for _ in self.layers]
        pos.row, pos.col_start, pos.col_end = row, col, col + 1
        v_here = [va[:, :, :, col : col + 1] for va in self._v_above]
        return self.horizontal_stack(x[:, :, row : row + 1, col : col + 1], v_here, labels)[:, :, 0, 0]

    def _cached_row_done(self, x: Tensor, labels: Tensor | None, pos: Position, row: int) -> None:
        # The finished row enters the vertical stack; the next row reads it.
        pos.row, pos.col_start, pos.col_end = row, 0, x.shape[3]
        self._v_above = self.vertical_stack(x[:, :, row : row + 1, :], labels)
        if row == x.shape[2] - 1:
            self._v_above = None
