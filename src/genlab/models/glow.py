"""Glow: a multi-scale normalizing flow with exact log-likelihood (Kingma & Dhariwal 2018,
"Glow: Generative Flow with Invertible 1x1 Convolutions", arXiv:1807.03039), and
RealNVP (Dinh, Sohl-Dickstein & Bengio 2017, "Density estimation using Real NVP",
arXiv:1605.08803) as its configuration without 1x1 convolutions (``invertible_conv=False``:
a fixed channel reversal between couplings).

The model
---------
An invertible map f from an image y in R^D to latents z, with a simple density p(z)::

    log p(y) = log p(f(y)) + log |det df/dy|                                 (Glow eq. 1-3)

f is the multi-scale architecture of RealNVP section 3.6 / Glow figure 2b. At each of
``num_scales`` scales: squeeze (2x2 blocks -> channels), ``steps_per_scale`` steps of
flow (actnorm, invertible 1x1 convolution, affine coupling: see
:mod:`genlab.nn.flow_layers`), then, except at the last scale, split off half the
channels as z_i. The split-off z_i has a learned conditional prior
N(mu_i(h_i), sigma_i(h_i)^2) computed from the half h_i that continues (a zero-initialised
convolution, Glow's "learned prior"); the last z has a learned per-position mean and scale.

Data and likelihood
-------------------
8-bit images k in {0..255}^D are dequantised, y = (k + u) / 256 with u ~ U[0, 1)
(``input_mode="dequantize"``), centred to y - 1/2 and fed to f. A density on [0, 1)^D
gives each 8-bit image a cell of volume 256^-D, so (Theis et al. 2016; Glow eq. 2)::

    log P(k) >= E_u[ log p(y) ] - D log 256

:meth:`Glow.log_prob` returns log p(y) - D log 256 in nats per image, the dequantisation
and [0, 1]-scaling offset included (``log_prob_offset`` is therefore 0), so bits/dim
= -log_prob / (D log 2) is the number the papers report. ``likelihood_kind="exact"``:
the value is the exact density of the dequantised image (a bound only on the discrete
P(k), as in the papers).

Latents
-------
:meth:`encode` returns the *standardised* latents eps_i = (z_i - mu_i) / sigma_i of all
scales, flattened and concatenated: (N, D). Under the model eps ~ N(0, I), so
``latent`` draws randn, interpolation works in a Gaussian space, and encode/decode are
exact inverses. Sampling (and ``latent``) multiply eps by ``temperature`` (Glow
section 5: T = 0.7 gives the cleaner samples of its figures; T = 1 samples the model).

Left out: Glow's additive coupling option, class-conditional priors and the auxiliary
classification loss, multi-GPU data-dependent init (each process initialises actnorm
from its own first batch; weights are broadcast before that).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .. import distributions as D
from ..config import ModelConfig
from ..errors import ConfigError
from ..nn.flow_layers import FlowStep, ZeroConv2d, squeeze, unsqueeze
from ..presets import Preset, Published
from .base import GenerativeModel, TrainStep


@dataclass
class GlowConfig(ModelConfig):
    """Configuration of :class:`Glow`. Height and width must be divisible by
    2 ** num_scales (28x28 MNIST: 2 scales, 14x14 then 7x7)."""

    num_scales: int = 2  # L in the Glow paper: squeeze/steps/split levels
    steps_per_scale: int = 8  # K in the Glow paper: flow steps per scale
    hidden_channels: int = 96  # width of each coupling network
    invertible_conv: bool = True  # False: RealNVP-style channel reversal instead of the 1x1 convolution
    temperature: float = 0.7  # standard deviation multiplier of the latents in sample() and latent()

    def validate(self) -> None:
        super().validate()
        self.check_unconditional("glow")
        self.check_positive("num_scales", "steps_per_scale", "hidden_channels")
        _, h, w = self.image_shape
        if h % 2**self.num_scales or w % 2**self.num_scales:
            raise ConfigError(
                f"glow: image height and width ({h}x{w}) must be divisible by 2**num_scales = "
                f"{2**self.num_scales}; lower model.num_scales"
            )
        if self.temperature <= 0:
            raise ConfigError(f"glow: model.temperature must be > 0, got {self.temperature}")


#: Training defaults of the registry entry: TrainConfig's own.
TRAIN_DEFAULTS: dict = {}

#: The presets of ``genlab train glow --preset NAME``: the paper's.
PRESETS: dict[str, Preset] = {
    "paper": Preset(
        {
            "data.name": "cifar10",
            "model.image_shape": (3, 32, 32),
            "model.num_scales": 3,
            "model.steps_per_scale": 32,
            "model.hidden_channels": 512,
            "model.invertible_conv": True,
            "train.lr": 1e-3,
        },
        source=(
            "Kingma & Dhariwal 2018 (Glow), section 5 and Table 2 (CIFAR-10): L = 3 levels of K = 32 steps "
            "(actnorm, invertible 1x1 convolution, affine coupling), coupling networks 512 wide, learned prior, "
            "Adam lr 1e-3. Not in genlab: the paper's multi-GPU batch and its learning-rate warm-up (genlab: "
            "train.warmup_steps, unset). Parameters: 44,055,408."
        ),
        published=(Published("bits/dim", 3.35, "Kingma & Dhariwal 2018, Table 2, CIFAR-10 test, Glow"),),
    ),
}


class GaussianPrior(nn.Module):
    """Learned prior of one scale's z: N(mu, sigma^2) per element, from a zero-initialised
    3x3 convolution of the continuing half h (split scales), or a learned per-position
    mean and log-sigma (the last scale). Starts as N(0, I)."""

    def __init__(self, z_shape: tuple[int, int, int], cond_channels: int):
        super().__init__()
        if cond_channels:
            self.net = ZeroConv2d(cond_channels, 2 * z_shape[0])
        else:
            self.net = None
            self.params = nn.Parameter(torch.zeros(1, 2 * z_shape[0], *z_shape[1:]))

    def forward(self, h: Tensor | None, n: int) -> tuple[Tensor, Tensor]:
        """(mean, log_sigma), each (n, *z_shape)."""
        out = self.net(h) if self.net is not None else self.params.expand(n, -1, -1, -1)
        mean, log_sigma = out.chunk(2, dim=1)
        return mean, log_sigma


class Glow(GenerativeModel):
    """Multi-scale Glow / RealNVP on images (B, C, H, W); see the module docstring."""

    config_class = GlowConfig
    data_kind = "image"
    likelihood_kind = "exact"
    input_mode = "dequantize"
    #: log_prob already includes -D log 256 (dequantisation and [0, 1] scaling): nothing to add.
    log_prob_offset = 0.0

    def __init__(self, config: GlowConfig):
        super().__init__(config)
        c, h, w = config.image_shape
        L, K = config.num_scales, config.steps_per_scale
        self.scales = nn.ModuleList()
        self.priors = nn.ModuleList()
        self.z_shapes: list[tuple[int, int, int]] = []
        for i in range(L):
            c, h, w = 4 * c, h // 2, w // 2
            self.scales.append(
                nn.ModuleList(FlowStep(c, config.hidden_channels, config.invertible_conv) for _ in range(K))
            )
            if i < L - 1:
                z_shape = (c - c // 2, h, w)  # split off: the second half; c // 2 channels continue
                self.priors.append(GaussianPrior(z_shape, c // 2))
                c = c // 2
            else:
                z_shape = (c, h, w)
                self.priors.append(GaussianPrior(z_shape, 0))
            self.z_shapes.append(z_shape)

    # ------------------------------------------------------------------ the flow
    @property
    def latent_shape(self) -> tuple[int, ...]:
        return (self.num_dims,)

    def _forward_flow(self, x: Tensor) -> tuple[list[Tensor], Tensor]:
        """x (B, C, H, W) in [0, 1) -> (standardised eps_i per scale, log-density of x in nats (B,)).

        The log-density is the continuous log p(y) of y = x - 1/2 (no -D log 256 yet)."""
        h = x - 0.5
        log_p = h.new_zeros(h.shape[0])
        eps = []
        for i, (steps, prior) in enumerate(zip(self.scales, self.priors)):
            h = squeeze(h)
            for step in steps:
                h, log_det = step(h)
                log_p = log_p + log_det
            if i < len(self.scales) - 1:
                h, z = h[:, : h.shape[1] // 2], h[:, h.shape[1] // 2 :]
                mean, log_sigma = prior(h, h.shape[0])
            else:
                z = h
                mean, log_sigma = prior(None, h.shape[0])
            log_p = log_p + D.gaussian_log_prob(z, mean, 2 * log_sigma)
            eps.append((z - mean) * torch.exp(-log_sigma))
        return eps, log_p

    def _reverse_flow(self, eps: list[Tensor]) -> Tensor:
        """Standardised latents per scale -> images x (B, C, H, W) (not clipped)."""
        n = eps[0].shape[0]
        h = None
        for i in reversed(range(len(self.scales))):
            prior = self.priors[i]
            mean, log_sigma = prior(h, n)
            z = mean + torch.exp(log_sigma) * eps[i]
            h = z if h is None else torch.cat([h, z], 1)
            for step in reversed(self.scales[i]):
                h = step.reverse(h)
            h = unsqueeze(h)
        return h + 0.5

    def _pack(self, eps: list[Tensor]) -> Tensor:
        return torch.cat([e.flatten(1) for e in eps], 1)

    def _unpack(self, z: Tensor) -> list[Tensor]:
        sizes = [math.prod(s) for s in self.z_shapes]
        return [part.view(z.shape[0], *s) for part, s in zip(z.split(sizes, dim=1), self.z_shapes)]

    # ------------------------------------------------------------------ likelihood
    def log_prob(
        self,
        x: Tensor,
        *,
        labels: Tensor | None = None,
        iw_samples: int | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Exact log-density of dequantised images x (B, C, H, W) in [0, 1), in nats per
        image, *including* -D log 256 (see the module docstring), shape (B,).
        bits/dim = -log_prob / (D log 2). ``labels``, ``iw_samples`` and ``generator`` are
        accepted for the contract and ignored (the value is exact)."""
        self.check_images(x)
        _, log_p = self._forward_flow(x)
        return log_p - self.num_dims * math.log(256)

    def loss(self, batch: dict) -> dict:
        """The "flow" step: mean negative log-likelihood in bits/dim (the Glow objective).
        Logs "nll" (nats per image) and "bits_per_dim"."""
        lp = self.log_prob(batch["x"])
        nll = -lp.mean()
        bpd = D.bits_per_dim(nll, self.num_dims)
        return {"loss": bpd, "nll": nll.detach(), "bits_per_dim": bpd.detach()}

    def train_steps(self) -> list[TrainStep]:
        return [TrainStep("flow", [self], self.loss)]

    # ------------------------------------------------------------------ latents and sampling
    def encode(self, x: Tensor) -> Tensor:
        """Images x (N, C, H, W) in [0, 1] -> standardised latents (N, D), exactly invertible."""
        self.check_images(x)
        with torch.no_grad():
            return self._pack(self._forward_flow(x)[0])

    def decode(self, z: Tensor, *, labels: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        """Standardised latents (N, D) -> images (N, C, H, W) clipped to [0, 1]. Exact inverse of
        :meth:`encode` for images in [0, 1]."""
        if z.dim() != 2 or z.shape[1] != self.num_dims:
            raise ValueError(f"expected latents of shape (N, {self.num_dims}), got {tuple(z.shape)}")
        with torch.no_grad():
            return self._reverse_flow(self._unpack(z.to(self.device))).clamp(0.0, 1.0)

    def latent(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        """(n, D) draws of eps ~ N(0, temperature^2 I): the prior at the configured temperature."""
        eps = D.draw(torch.randn, (n, self.num_dims), generator=generator, device=self.device)
        return eps * self.config.temperature

    def sample(self, n: int, *, labels: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        """n images (n, C, H, W) in [0, 1] at the configured temperature (``model.temperature``)."""
        self.check_labels(labels, n)
        return self.decode(self.latent(n, generator=generator))
