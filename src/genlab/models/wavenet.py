"""WaveNet: stacks of dilated causal 1-D convolutions with gated activations,
residual and skip connections, and a 256-way mu-law output.

van den Oord et al. (2016), "WaveNet: A Generative Model for Raw Audio",
section 2 and figure 4; fast generation with one queue per dilated layer as in
Paine et al. (2016), "Fast Wavenet Generation Algorithm", and Ramachandran et al.
(2017). The model is exact: log p(x) = sum_t log p(x_t | x_<t), each factor a
softmax over the 256 mu-law codes.

Data layout: a sequence of length L is stored like an image of shape
``(1, 1, L)``, so ``config.image_shape = (1, 1, L)`` (the Trainer fills it from the
data set) and there is no separate length field. Values are mu-law codes / 255
in [0, 1] (see :mod:`genlab.data.audio`); the model recovers the integer code.

Receptive field: output t sees x_{t-R} .. x_{t-1} with
``R = 1 + sum_l (block_kernel - 1) * dilation_l`` (:attr:`WaveNet.receptive_field`).

Shapes: x (B, 1, 1, L) -> logits (B, amplitude_levels, L).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import distributions as D
from ..config import ModelConfig
from ..errors import ConfigError
from ..nn.autoregressive import OutputHead
from ..nn.masked import CausalConv1d, caching
from ..presets import Preset
from .base import GenerativeModel, TrainStep


@dataclass
class WaveNetConfig(ModelConfig):
    """``amplitude_levels``: the values a sample takes (256 mu-law codes); ``block_kernel``:
    the kernel of every residual block's dilated convolution; ``dilations`` are repeated
    ``stacks`` times; ``num_classes`` > 0 adds a learned global class embedding to every gate;
    ``train_crop`` > 0 trains on a random window of that many samples of each clip (drawn from
    torch's global generator, which the Trainer seeds) instead of the whole clip: cheaper steps,
    more varied batches; ``log_prob`` and sampling always use whole ``image_shape`` sequences."""

    image_shape: tuple[int, int, int] = (1, 1, 256)
    amplitude_levels: int = 256
    residual_channels: int = 32
    skip_channels: int = 64
    block_kernel: int = 2
    dilations: tuple[int, ...] = (1, 2, 4, 8, 16, 32)
    stacks: int = 2
    train_crop: int = 0

    def validate(self) -> None:
        super().validate()
        if len(self.image_shape) != 3 or tuple(self.image_shape[:2]) != (1, 1):
            raise ConfigError(
                f"wavenet models sequences: model.image_shape must be (1, 1, length), got {tuple(self.image_shape)}"
            )
        if self.amplitude_levels < 2:
            raise ConfigError(
                f"model.amplitude_levels must be >= 2 (256 for 8-bit mu-law), got {self.amplitude_levels}"
            )
        self.check_positive("residual_channels", "skip_channels", "block_kernel", "stacks")
        if self.train_crop < 0 or self.train_crop == 1:
            raise ConfigError(f"model.train_crop must be 0 (whole clips) or >= 2 samples, got {self.train_crop}")
        if not self.dilations or min(self.dilations) < 1:
            raise ConfigError(
                f"model.dilations must list positive dilations, e.g. [1, 2, 4, 8], got {list(self.dilations)}"
            )


#: The data of ``genlab train wavenet`` when no --data is given: sine waves (embedded, no download).
DEFAULT_DATA = "sines"

#: Training defaults of the registry entry: TrainConfig's own.
TRAIN_DEFAULTS: dict = {}

#: The presets of ``genlab train wavenet``: ``fsdd``, applied to the spoken digits (--data fsdd).
PRESETS: dict[str, Preset] = {
    "fsdd": Preset(
        {
            "model.num_classes": 10,
            "model.residual_channels": 32,
            "model.skip_channels": 64,
            "model.dilations": (1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
            "model.stacks": 1,
            "model.train_crop": 1024,
            "train.batch_size": 16,
            "train.steps": 2000,
            "train.lr": 1e-3,
            "train.sample_every": 0,
            "train.checkpoint_every": 250,
        },
        data=("fsdd",),
        source=(
            "benchmarks/wavenet_fsdd.py: digit-conditional, receptive field 1,024 samples (128 ms at 8 kHz), 16 random "
            "1,024-sample windows per step; 1.2-5.0 s per step on 1 thread of a shared 2-core machine at load 17-22, "
            "where the image-sized defaults took 181 s per step; test NLL 5.47 bits/sample after 550 steps (18.6 min)"
        ),
    ),
}


class ResidualLayer(nn.Module):
    """z = tanh(W_f * h) . sigmoid(W_g * h); returns (h + 1x1(z), skip 1x1(z)).
    Shapes: (B, R, T) -> (B, R, T), (B, S, T)."""

    def __init__(self, channels: int, skip_channels: int, kernel_size: int, dilation: int, num_classes: int):
        super().__init__()
        self.dilated = CausalConv1d(channels, 2 * channels, kernel_size, dilation)
        self.residual = nn.Conv1d(channels, channels, 1)
        self.skip = nn.Conv1d(channels, skip_channels, 1)
        self.embed = nn.Embedding(num_classes, 2 * channels) if num_classes > 0 else None

    def forward(self, h: Tensor, labels: Tensor | None) -> tuple[Tensor, Tensor]:
        a = self.dilated(h)
        if self.embed is not None and labels is not None:
            a = a + self.embed(labels)[:, :, None]
        f, g = a.chunk(2, dim=1)
        z = torch.tanh(f) * torch.sigmoid(g)
        return h + self.residual(z), self.skip(z)


class WaveNet(GenerativeModel):
    config_class = WaveNetConfig
    input_mode = "unit"
    data_kind = "sequence"
    likelihood_kind = "exact"

    def __init__(self, config: WaveNetConfig):
        super().__init__(config)
        r = config.residual_channels
        self.head = OutputHead("categorical", config.amplitude_levels)
        self.embed = nn.Conv1d(config.amplitude_levels, r, 1)  # one-hot code -> features (an embedding)
        self.layers = nn.ModuleList(
            ResidualLayer(r, config.skip_channels, config.block_kernel, d, config.num_classes)
            for _ in range(config.stacks)
            for d in config.dilations
        )
        self.out1 = nn.Conv1d(config.skip_channels, config.skip_channels, 1)
        self.out2 = nn.Conv1d(config.skip_channels, config.amplitude_levels, 1)

    @property
    def receptive_field(self) -> int:
        """Number of past samples an output sees: 1 + sum (k - 1) * d."""
        return 1 + sum(layer.dilated.left_pad for layer in self.layers)

    def codes(self, x: Tensor) -> Tensor:
        """x (B, 1, 1, L) in [0, 1] -> integer codes (B, L) in 0..amplitude_levels-1."""
        return (
            torch.round(x[:, 0, 0, :] * (self.config.amplitude_levels - 1))
            .long()
            .clamp(0, self.config.amplitude_levels - 1)
        )

    def net(self, h: Tensor, labels: Tensor | None = None) -> Tensor:
        """Shifted input features (B, R, T): position t holds sample t - 1 -> logits (B, amplitude_levels, T)."""
        skips = 0
        for layer in self.layers:
            h, s = layer(h, labels)
            skips = skips + s
        return self.out2(F.relu(self.out1(F.relu(skips))))

    def logits_from_onehot(self, onehot: Tensor, labels: Tensor | None = None) -> Tensor:
        """One-hot codes (B, amplitude_levels, L) -> logits (B, amplitude_levels, L); output t sees samples < t only."""
        e = self.embed(onehot)
        return self.net(F.pad(e, (1, 0))[:, :, :-1], labels)  # shift right: predict x_t from x_<t

    def forward(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        """x (B, 1, 1, L) in [0, 1] -> logits (B, amplitude_levels, L)."""
        onehot = F.one_hot(self.codes(x), self.config.amplitude_levels).transpose(1, 2).to(self.embed.weight.dtype)
        return self.logits_from_onehot(onehot, labels)

    def log_prob(
        self,
        x: Tensor,
        *,
        labels: Tensor | None = None,
        iw_samples: int | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Exact log p(x) in nats per sequence, shape (B,); x (B, 1, 1, L) mu-law codes / 255.
        Deterministic: ``iw_samples`` and ``generator`` are ignored."""
        self.check_images(x)
        return self.sample_log_probs(x, self.check_labels(labels, x.shape[0])).sum(1)

    def sample_log_probs(self, x: Tensor, labels: Tensor | None = None) -> Tensor:
        """log p(x_t | x_<t) in nats for every position, shape (B, L), of sequences x (B, 1, 1, L)
        of any length L (the network is convolutional; x_<0 is the zero left padding)."""
        logp = F.log_softmax(self(x, labels), dim=1)
        return logp.gather(1, self.codes(x)[:, None, :])[:, 0, :]

    def random_crop(self, x: Tensor) -> Tensor:
        """x (B, 1, 1, L) -> one random window of ``train_crop`` samples per sequence (B, 1, 1, train_crop);
        x itself when train_crop is 0 or >= L. Offsets are uniform over 0..L - train_crop."""
        crop, length = self.config.train_crop, x.shape[-1]
        if crop <= 0 or crop >= length:
            return x
        start = torch.randint(0, length - crop + 1, (x.shape[0], 1), device=x.device)
        return x[:, 0, 0, :].gather(1, start + torch.arange(crop, device=x.device))[:, None, None, :]

    def train_steps(self) -> list[TrainStep]:
        def loss(batch: dict) -> dict:
            y = self.check_labels(batch.get("y"), batch["x"].shape[0]) if self.config.num_classes > 0 else None
            self.check_images(batch["x"])
            x = self.random_crop(batch["x"])
            nll = -self.sample_log_probs(x, y).sum(1).mean()
            return {"loss": nll, "nll": nll.detach(), "bpd": D.bits_per_dim(nll.detach(), x.shape[-1])}

        return [TrainStep("nll", [self], loss)]

    # ------------------------------------------------------------ sampling
    @torch.inference_mode()
    def sample(
        self, n: int, *, labels: Tensor | None = None, generator: torch.Generator | None = None, method: str = "cached"
    ) -> Tensor:
        """n sequences (n, 1, 1, L) of mu-law codes / 255 in [0, 1] (write them with
        :func:`genlab.data.audio.save_wav`). ``method``: "cached" (one queue per
        dilated layer, O(receptive field) per sample) or "naive" (full pass per sample)."""
        x = torch.zeros(n, *self.config.image_shape, device=self.device)
        return self._generate(
            x,
            torch.zeros(n, x.shape[-1], dtype=torch.bool, device=x.device),
            self.check_labels(labels, n),
            generator,
            method,
        )

    @torch.inference_mode()
    def complete(
        self,
        x: Tensor,
        observed_mask: Tensor,
        *,
        generator: torch.Generator | None = None,
        labels: Tensor | None = None,
        method: str = "cached",
    ) -> Tensor:
        """Keep samples where ``observed_mask`` (broadcastable to x (N, 1, 1, L)) is 1, draw the rest in order."""
        self.check_images(x)
        x = self.head.to_grid(x.to(self.device, torch.float32)).clone()
        observed = torch.as_tensor(observed_mask, device=self.device).bool().expand_as(x)[:, 0, 0, :].clone()
        return self._generate(x, observed, self.check_labels(labels, x.shape[0]), generator, method)

    def _generate(self, x: Tensor, observed: Tensor, labels, generator, method: str) -> Tensor:
        if method not in ("cached", "naive"):
            raise ValueError(f"method must be 'cached' or 'naive', got {method!r}")
        n, length = x.shape[0], x.shape[-1]
        was_training = self.training
        self.eval()
        try:
            if method == "naive":
                for t in range(length):
                    if not observed[:, t].all():
                        value = self.head.sample(self(x, labels)[:, :, t], generator)
                        x[:, 0, 0, t] = torch.where(observed[:, t], x[:, 0, 0, t], value)
                return x
            with caching(self, n):
                # The queues start as zeros, like the left padding; position 0 gets the zero input of the shift.
                h = x.new_zeros(n, self.config.residual_channels, 1)
                for t in range(length):
                    logits = self.net(h, labels)[:, :, 0]
                    if not observed[:, t].all():
                        value = self.head.sample(logits, generator)
                        x[:, 0, 0, t] = torch.where(observed[:, t], x[:, 0, 0, t], value)
                    onehot = (
                        F.one_hot(self.codes(x[:, :, :, t : t + 1]), self.config.amplitude_levels)
                        .transpose(1, 2)
                        .to(h.dtype)
                    )
                    h = self.embed(onehot)
            return x
        finally:
            self.train(was_training)
