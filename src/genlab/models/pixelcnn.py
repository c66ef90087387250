"""PixelCNN: a type-A masked 7x7 convolution, type-B masked residual blocks, 1x1 outputs.

van den Oord, Kalchbrenner and Kavukcuoglu (2016), "Pixel Recurrent Neural
Networks", section 3.5 and figure 5. The model is exact:

    log p(x) = sum_i log p(x_i | x_<i)

in raster order, channels R -> G -> B inside a pixel (the channel masks of
:mod:`genlab.nn.masked`). Its receptive field has the well-known blind spot to
the upper right; :mod:`genlab.models.gated_pixelcnn` removes it.

Shapes: x (B, C, H, W) in the input space ({0, 1} for Bernoulli, the grid
{0, 1/(grey_levels-1), ..., 1} otherwise) -> parameters (B, C*P, H, W).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import ModelConfig
from ..errors import ConfigError
from ..nn.autoregressive import check_head_config
from ..nn.masked import pixelcnn_conv, pointwise_conv
from ..presets import Preset, Published
from .autoregressive import AutoregressiveImageModel


@dataclass
class PixelCNNConfig(ModelConfig):
    """``likelihood``: "auto" (Bernoulli for 1 channel, logistic mixture for RGB),
    "bernoulli", "categorical" (``grey_levels``-way softmax) or "logistic-mixture"
    (``mixtures`` components over ``grey_levels`` grey levels). A type-A ``input_kernel``
    convolution, then ``num_blocks`` residual blocks with type-B ``block_kernel`` convolutions."""

    image_shape: tuple[int, int, int] = (1, 28, 28)
    likelihood: str = "auto"
    grey_levels: int = 256
    mixtures: int = 5
    hidden_channels: int = 64
    num_blocks: int = 6
    input_kernel: int = 7
    block_kernel: int = 3
    output_channels: int = 64
    channels_last: bool = True  # NHWC memory layout for training and evaluation: faster convolutions on CPU

    def validate(self) -> None:
        super().validate()
        check_head_config(self)
        self.check_positive("hidden_channels", "input_kernel", "block_kernel", "output_channels")
        if self.num_blocks < 0:
            raise ConfigError(f"model.num_blocks must be >= 0, got {self.num_blocks}")


#: Training defaults of the registry entry: TrainConfig's own.
TRAIN_DEFAULTS: dict = {}

# Pixel RNN paper, section 3.5 / figure 5: 7x7 mask A, 15 residual blocks of 2h = 256 maps, 1x1 output layers of 1024.
_PIXELCNN_15 = {
    "model.hidden_channels": 256,
    "model.num_blocks": 15,
    "model.input_kernel": 7,
    "model.block_kernel": 3,
    "model.output_channels": 1024,
}

#: The presets of ``genlab train pixelcnn --preset NAME``: the Pixel RNN paper's, and one for 30 CPU-minutes.
PRESETS: dict[str, Preset] = {
    "paper": Preset(
        {"data.name": "mnist", "model.image_shape": (1, 28, 28), "model.likelihood": "bernoulli", **_PIXELCNN_15},
        source=(
            "van den Oord, Kalchbrenner & Kavukcuoglu 2016a (Pixel RNN), section 3.5, figure 5 and Table 4 "
            "(binarised MNIST): a 7x7 mask-A convolution, 15 residual blocks (1x1 2h->h, 3x3 mask B, 1x1 h->2h, "
            "h = 128), two 1x1 output layers (1024 units), a sigmoid per pixel. The paper "
            "states the depth and width for its CIFAR-10 models; this preset uses the same "
            "network on binarised MNIST. Not in genlab: the "
            "paper's RMSProp optimiser (genlab: Adam)."
        ),
        published=(Published("test NLL nats", 81.30, "van den Oord et al. 2016a, Table 4, binarised MNIST, PixelCNN"),),
    ),
    "paper-cifar10": Preset(
        {
            "data.name": "cifar10",
            "model.image_shape": (3, 32, 32),
            "model.likelihood": "categorical",
            "model.grey_levels": 256,
            **_PIXELCNN_15,
        },
        source=(
            "van den Oord et al. 2016a (Pixel RNN), sections 3.4-3.5 and 5, Table 5 (CIFAR-10): the network of "
            "'paper' with R->G->B channel masks and a 256-way softmax per sub-pixel. Not in genlab: RMSProp "
            "(genlab: Adam). ../shared/data holds CIFAR-10's test split only, as JPEGs: train on a machine that "
            "can download CIFAR-10. Parameters: 4,290,816, the paper's layers exactly."
        ),
        published=(Published("bits/dim", 3.14, "van den Oord et al. 2016a, Table 5, CIFAR-10 test, PixelCNN"),),
    ),
    # A CPU-budget preset: settings chosen by measurement for a short CPU run, not a paper's.
    "mnist-cpu": Preset(
        {
            "data.name": "mnist",
            "model.image_shape": (1, 28, 28),
            "model.likelihood": "bernoulli",
            "model.channels_last": True,
            "train.batch_size": 64,
            "train.lr": 2e-3,
            "train.warmup_steps": 100,
            "train.lr_schedule": "cosine",
            "train.steps": 4_000,
            "train.schedule_steps": 4_000,
            "train.ema_decay": 0.999,
        },
        source=(
            "benchmarks/pixelcnn_mnist.py --preset mnist-cpu: the default network for 30 CPU-minutes of one thread "
            "(about 4,000 steps of 64 at 150 images/s; the benchmark fits the schedule to its budget during the run)"
        ),
    ),
}


class ResidualBlock(nn.Module):
    """ReLU, 1x1 (h -> h/2), ReLU, kxk type-B, ReLU, 1x1 (h/2 -> h), plus the input.
    Shapes: (B, h, H, W) -> (B, h, H, W)."""

    def __init__(self, channels: int, kernel: int, data_channels: int):
        super().__init__()
        half = max(channels // 2, data_channels)
        self.reduce = pointwise_conv(channels, half, data_channels)
        self.conv = pixelcnn_conv(half, half, kernel, "B", data_channels)
        self.expand = pointwise_conv(half, channels, data_channels)

    def forward(self, h: Tensor) -> Tensor:
        return h + self.expand(F.relu(self.conv(F.relu(self.reduce(F.relu(h))))))


class PixelCNN(AutoregressiveImageModel):
    config_class = PixelCNNConfig

    def __init__(self, config: PixelCNNConfig):
        super().__init__(config)
        c = config.image_shape[0]
        h = config.hidden_channels
        self.input_conv = pixelcnn_conv(c, h, config.input_kernel, "A", c, first=True)
        self.blocks = nn.ModuleList(ResidualBlock(h, config.block_kernel, c) for _ in range(config.num_blocks))
        self.out1 = pointwise_conv(h, config.output_channels, c)
        self.out2 = pointwise_conv(config.output_channels, self.out_channels, c)
        # Class conditioning: a learned per-class bias on the first features.
        self.class_embedding = nn.Embedding(config.num_classes, h) if config.num_classes > 0 else None
        if config.channels_last:
            self.to(memory_format=torch.channels_last)  # conv weights; load_state_dict keeps the layout

    def forward(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        """x (B, C, H, W) in input space -> distribution parameters (B, C*P, H, W)."""
        x = self.network_input(x)
        if self.config.channels_last and x.shape[2] * x.shape[3] > 1:  # not in cached sampling's 1-pixel steps
            x = x.contiguous(memory_format=torch.channels_last)
        h = self.input_conv(x)
        if self.class_embedding is not None and labels is not None:
            h = h + self.class_embedding(labels)[:, :, None, None]
        for block in self.blocks:
            h = block(h)
        return self.out2(F.relu(self.out1(F.relu(h))))
