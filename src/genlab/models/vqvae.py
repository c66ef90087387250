"""VQ-VAE: a discrete-latent autoencoder with a PixelCNN prior over its code map
(van den Oord, Vinyals & Kavukcuoglu 2017, "Neural Discrete Representation Learning",
arXiv:1711.00937), with the exponential-moving-average codebook of its appendix A.1.

The model
---------
An encoder maps x (B, C, H, W) to z_e (B, d, h, w) (h = H / 2^downsamplings). Each of
the h*w vectors is replaced by its nearest codebook entry (section 3.1)::

    c_j = argmin_k || z_e,j - e_k ||,      z_q,j = e_{c_j}

and a decoder gives p(x | z_q), here a discretised logistic per pixel over the 256
grey levels (Salimans et al. 2017), so the likelihood is a proper discrete one.
Training minimises, per image, in nats (eq. 3, the codebook term replaced by EMA)::

    L = -log p(x | z_q) + beta * || z_e - sg[z_q] ||^2

* straight-through gradients: the decoder reads z_e + sg[z_q - z_e], so d L / d z_q is
  copied to z_e (section 3.2);
* the codebook follows the EMA updates of appendix A.1 with decay gamma: with n_k the
  number of vectors assigned to code k in the batch and s_k their sum,
  N_k <- gamma N_k + (1 - gamma) n_k,  m_k <- gamma m_k + (1 - gamma) s_k,
  e_k = m_k / N~_k with the Laplace-smoothed count N~_k = (N_k + eps) / (sum N + K eps) * sum N;
* dead codes: a code whose usage N_k falls below ``dead_code_threshold`` (vectors per
  batch) is restarted at a random encoder output of the batch (N_k = 1, m_k = e_k).
  The codebook starts with N = 0, so the first step places every code on the data.
* the codebook perplexity exp(-sum_k p_k log p_k) of the batch's assignments is logged
  (K when all codes are used equally, 1 when one code takes everything).

Prior and likelihood
--------------------
The prior p(c) over the h x w code map is genlab's own PixelCNN
(:class:`genlab.models.pixelcnn.PixelCNN`, one channel, a K-way categorical per position;
code k is fed as k / (K - 1)). It is the second, short stage of the one training run:
``train_steps`` are ["vqvae", "prior"]; before iteration ``prior_start`` only the
autoencoder trains, from then on only the prior, on the codes of the now fixed encoder
(``freeze_autoencoder=False`` keeps both training). A step outside its stage returns a
loss that touches none of its parameters, so Adam neither moves them nor counts the step.
The iteration comes from the Trainer's ``begin_iteration`` and is a buffer, so a resumed
run switches stage at the same iteration.

For any code map c, p(x) = sum_c' p(c') p(x | c') >= p(c) p(x | c), so with the encoder's
codes c(x)::

    log p(x) >= log p_prior(c(x)) + log p(x | z_q(c(x)))                        (nats)

:meth:`VQVAE.log_prob` returns this bound (``likelihood_kind="bound"``, deterministic:
no importance samples); bits/dim are derived from it in genlab.distributions.

Latents
-------
``encode(x)`` returns the quantised vectors z_q flattened, (N, d * h * w) floats; decode
reshapes and decodes them as they are (interpolating between two code maps moves through
the embedding space). ``codes(x)`` gives the indices (N, h, w) and ``latent(n)`` draws code
maps from the prior and returns their vectors. Left out: the paper's second-stage
PixelCNN conditioning on classes and the hierarchical VQ-VAE-2.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import distributions as D
from ..config import ModelConfig
from ..data.latent import CodeSpace
from ..errors import ConfigError
from ..nn.blocks import TransposedConvUp, downsampled_sizes
from ..presets import Preset, Published
from .base import GenerativeModel, TrainStep
from .latent import code_levels, code_prior


@dataclass
class VQVAEConfig(ModelConfig):
    """Configuration of :class:`VQVAE` (28x28 MNIST: a 7x7 code map)."""

    hidden_channels: int = 64  # width of encoder and decoder
    downsamplings: int = 2  # stride-2 stages: the code map is H / 2^n x W / 2^n
    residual_blocks: int = 2  # 3x3 residual blocks after the encoder / before the decoder
    num_codes: int = 64  # K, the codebook size
    code_dim: int = 16  # d, the length of each code vector
    beta: float = 0.25  # commitment weight
    ema_decay: float = 0.99  # gamma of the codebook's moving averages
    dead_code_threshold: float = 0.5  # restart codes used by fewer vectors per batch (EMA) than this
    min_log_scale: float = -7.0  # floor of the decoder's logistic log-scale
    prior_start: int = 1500  # iteration at which the prior starts training (the second stage)
    freeze_autoencoder: bool = True  # stop training the autoencoder at prior_start
    prior_channels: int = 64  # PixelCNN prior: hidden channels
    prior_blocks: int = 4  # PixelCNN prior: residual blocks

    def validate(self) -> None:
        super().validate()
        self.check_unconditional("vqvae")
        self.check_positive("hidden_channels", "code_dim", "prior_channels", "prior_blocks")
        if self.num_codes < 2 or self.downsamplings < 0 or self.residual_blocks < 0:
            raise ConfigError(
                f"vqvae needs model.num_codes >= 2, downsamplings >= 0 and residual_blocks >= 0; got "
                f"{self.num_codes}, {self.downsamplings}, {self.residual_blocks}"
            )
        if not 0.0 <= self.ema_decay < 1.0 or self.beta < 0 or self.prior_start < 0:
            raise ConfigError(
                f"vqvae needs 0 <= model.ema_decay < 1, beta >= 0 and prior_start >= 0; got "
                f"{self.ema_decay}, {self.beta}, {self.prior_start}"
            )


#: Training defaults of the registry entry: TrainConfig's own.
TRAIN_DEFAULTS: dict = {}

#: The presets of ``genlab train vqvae --preset NAME``: the paper's.
PRESETS: dict[str, Preset] = {
    "paper": Preset(
        {
            "data.name": "cifar10",
            "model.image_shape": (3, 32, 32),
            "model.hidden_channels": 256,
            "model.downsamplings": 2,
            "model.residual_blocks": 2,
            "model.num_codes": 512,
            "model.beta": 0.25,
            "model.ema_decay": 0.99,
            "train.lr": 2e-4,
            "train.batch_size": 128,
            "train.steps": 250_000,
        },
        source=(
            "van den Oord, Vinyals & Kavukcuoglu 2017 (VQ-VAE), section 4.1 (CIFAR-10) and section 3.2: two "
            "stride-2 4x4 convolutions and two 3x3 residual blocks of 256 units (an 8x8 code map), beta 0.25, Adam "
            "lr 2e-4, batch 128, 250,000 steps. The paper gives no K for CIFAR-10: section "
            "3.2's '8 x 8 x 10' counts its discrete latents (an 8x8 field of 10 latents each), "
            "and K = 512 is its ImageNet and DeepMind Lab "
            "value (section 4.2), kept here. Not in genlab: the codebook learned by the loss term "
            "|sg[z_e] - e|^2, as in the paper's experiments (section 3.2: the moving-average update of appendix "
            "A.1 was not used for them); genlab's VQ-VAE has only the EMA codebook (decay 0.99, appendix A.1) and "
            "one code per position; the paper's separately trained PixelCNN prior (genlab trains its own 4-block "
            "prior as the run's second stage); the code length d (none given for CIFAR-10) is left at genlab's 16. "
            "Parameters: 5,467,862."
        ),
        published=(
            Published(
                "bits/dim",
                4.67,
                "van den Oord et al. 2017, section 4.1, CIFAR-10 test, VQ-VAE",
                "the same section: a continuous VAE 4.51, VIMCO 5.14",
            ),
        ),
    ),
}


class ResBlock(nn.Module):
    """x + conv1x1(ReLU(conv3x3(ReLU(x)))) (section 4.1). (B, c, h, w) -> same."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


class EMACodebook(nn.Module):
    """K code vectors of length d, updated by moving averages (no gradients). Buffers:
    ``embedding`` (K, d), ``usage`` N (K,), ``embedding_sum`` m (K, d)."""

    def __init__(self, num_codes: int, dim: int, decay: float, dead_threshold: float, eps: float = 1e-5):
        super().__init__()
        self.decay, self.dead_threshold, self.eps = decay, dead_threshold, eps
        self.register_buffer("embedding", torch.randn(num_codes, dim))
        self.register_buffer("usage", torch.zeros(num_codes))
        self.register_buffer("embedding_sum", torch.zeros(num_codes, dim))

    def nearest(self, flat: Tensor) -> Tensor:
        """Vectors (n, d) -> index of the nearest code (n,), Euclidean distance."""
        dist = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ self.embedding.T + self.embedding.pow(2).sum(1)
        return dist.argmin(1)

    @torch.no_grad()
    def update(self, flat: Tensor, idx: Tensor) -> int:
        """One EMA step from vectors (n, d) assigned to codes idx (n,), then restart dead
        codes at random rows of ``flat`` (global RNG). Returns the number restarted."""
        k = self.embedding.shape[0]
        onehot = F.one_hot(idx, k).to(flat.dtype)
        self.usage.mul_(self.decay).add_((1 - self.decay) * onehot.sum(0))
        self.embedding_sum.mul_(self.decay).add_((1 - self.decay) * (onehot.T @ flat))
        total = self.usage.sum()
        smoothed = (self.usage + self.eps) / (total + k * self.eps) * total
        self.embedding.copy_(self.embedding_sum / smoothed[:, None])
        dead = self.usage < self.dead_threshold
        n_dead = int(dead.sum())
        if n_dead:
            pick = flat[torch.randint(0, flat.shape[0], (n_dead,), device=flat.device)]
            self.embedding[dead] = pick
            self.embedding_sum[dead] = pick
            self.usage[dead] = 1.0
        return n_dead


class VQVAE(GenerativeModel):
    """VQ-VAE with an EMA codebook and a PixelCNN prior; see the module docstring."""

    config_class = VQVAEConfig
    data_kind = "image"
    likelihood_kind = "bound"
    input_mode = "unit"

    def likelihood_description(self, iw_samples: int | None = None) -> str:
        return (
            "a deterministic lower bound on log p(x): log p_prior(c(x)) + log p(x | z_q(c(x))) at the "
            "encoder's code map c(x), no importance samples"
        )

    def __init__(self, config: VQVAEConfig):
        super().__init__(config)
        c, h, w = config.image_shape
        hid = config.hidden_channels
        self.sizes = downsampled_sizes(h, w, config.downsamplings)
        enc: list[nn.Module] = []
        for i in range(config.downsamplings):
            enc += [nn.Conv2d(c if i == 0 else hid, hid, 3, stride=2, padding=1), nn.ReLU()]
        if not config.downsamplings:
            enc += [nn.Conv2d(c, hid, 3, padding=1)]
        enc += [ResBlock(hid) for _ in range(config.residual_blocks)] + [nn.ReLU(), nn.Conv2d(hid, config.code_dim, 1)]
        self.encoder = nn.Sequential(*enc)
        self.codebook = EMACodebook(config.num_codes, config.code_dim, config.ema_decay, config.dead_code_threshold)
        self.decoder_in = nn.Sequential(
            nn.Conv2d(config.code_dim, hid, 3, padding=1), *[ResBlock(hid) for _ in range(config.residual_blocks)]
        )
        self.up = nn.ModuleList(TransposedConvUp(hid, hid) for _ in range(config.downsamplings))
        self.decoder_out = nn.Conv2d(hid, 2 * c, 3, padding=1)  # logistic means and log-scales
        # The prior is a latent model's prior over this model's own codes (models/latent.py builds both).
        space = CodeSpace("discrete", (1, *self.sizes[-1]), levels=config.num_codes)
        prior_config = {
            "hidden_channels": config.prior_channels,
            "num_blocks": config.prior_blocks,
            "output_channels": config.prior_channels,
        }
        self.prior = code_prior("pixelcnn", space, prior_config, "vqvae")
        self.register_buffer("iteration", torch.zeros((), dtype=torch.long))

    # ------------------------------------------------------------------ networks
    @property
    def code_shape(self) -> tuple[int, int]:
        return tuple(self.sizes[-1])

    @property
    def latent_shape(self) -> tuple[int, ...]:
        h, w = self.code_shape
        return (self.config.code_dim * h * w,)

    def encoder_output(self, x: Tensor) -> Tensor:
        """x (B, C, H, W) in [0, 1] -> z_e (B, d, h, w)."""
        self.check_images(x)
        return self.encoder(2 * x - 1)

    def quantize(self, z_e: Tensor) -> tuple[Tensor, Tensor]:
        """z_e (B, d, h, w) -> (codes (B, h, w) long, z_q (B, d, h, w) = their code vectors)."""
        b, d, h, w = z_e.shape
        idx = self.codebook.nearest(z_e.permute(0, 2, 3, 1).reshape(-1, d)).view(b, h, w)
        return idx, self.embed(idx)

    def embed(self, codes: Tensor) -> Tensor:
        """Code indices (B, h, w) -> their vectors (B, d, h, w)."""
        return self.codebook.embedding[codes].permute(0, 3, 1, 2)

    def decoder_params(self, z_q: Tensor) -> tuple[Tensor, Tensor]:
        """z_q (B, d, h, w) -> logistic (means in [0, 1] units, log-scales), each (B, C, H, W)."""
        y = self.decoder_in(z_q)
        for i, up in enumerate(self.up):
            y = up(F.relu(y), self.sizes[-2 - i])
        mean, log_scale = self.decoder_out(F.relu(y)).chunk(2, dim=1)
        return mean + 0.5, log_scale.clamp(min=self.config.min_log_scale)

    def _prior_input(self, codes: Tensor) -> Tensor:
        """Codes (B, h, w) -> the PixelCNN's one-channel image of k / (K - 1), (B, 1, h, w)."""
        return code_levels(codes.unsqueeze(1), self.config.num_codes)

    # ------------------------------------------------------------------ training
    def begin_iteration(self, step: int) -> None:
        """Called by the Trainer with the 0-based iteration: selects the training stage."""
        self.iteration.fill_(step)

    def _stage_active(self, name: str) -> bool:
        cfg, it = self.config, int(self.iteration)
        if name == "prior":
            return it >= cfg.prior_start
        return it < cfg.prior_start or not cfg.freeze_autoencoder

    def _idle(self) -> dict:
        """The loss of a step outside its stage: it reaches none of the step's parameters,
        so their gradients stay None and Adam skips them (no move, no step counted)."""
        return {"loss": torch.zeros((), device=self.device, requires_grad=True)}

    def autoencoder_loss(self, batch: dict) -> dict:
        """The "vqvae" step: mean over the batch of (-log p(x|z_q) + beta ||z_e - sg[z_q]||^2) / D,
        plus the EMA codebook update and dead-code restarts (training mode only). Logs
        "recon" (nats per image), "commitment", "perplexity" and "restarted" codes."""
        if not self._stage_active("vqvae"):
            return self._idle()
        x = batch["x"]
        z_e = self.encoder_output(x)
        idx, z_q = self.quantize(z_e)
        z_st = z_e + (z_q - z_e).detach()  # straight-through: forward z_q, gradient to z_e
        recon = D.discretized_logistic_log_prob(x, *self.decoder_params(z_st))
        commitment = (z_e - z_q.detach()).pow(2).flatten(1).sum(1)
        loss = (-recon + self.config.beta * commitment).mean() / self.num_dims
        counts = torch.bincount(idx.flatten(), minlength=self.config.num_codes).float()
        p = counts / counts.sum()
        perplexity = torch.exp(-(p * torch.log(p.clamp(min=1e-12))).sum())
        restarted = 0
        if self.training:
            flat = z_e.detach().permute(0, 2, 3, 1).reshape(-1, self.config.code_dim)
            restarted = self.codebook.update(flat, idx.flatten())
        return {
            "loss": loss,
            "recon": -recon.mean().detach(),
            "commitment": commitment.mean().detach(),
            "perplexity": perplexity,
            "restarted": torch.tensor(float(restarted)),
        }

    def prior_loss(self, batch: dict) -> dict:
        """The "prior" step: -log p_prior(c(x)) per code position, nats, on the codes of the
        current encoder (no gradient reaches it). Logs "nll" in nats per image."""
        if not self._stage_active("prior"):
            return self._idle()
        with torch.no_grad():
            codes, _ = self.quantize(self.encoder_output(batch["x"]))
        nll = -self.prior.log_prob(self._prior_input(codes)).mean()
        return {"loss": nll / codes[0].numel(), "nll": nll.detach()}

    def train_steps(self) -> list[TrainStep]:
        return [
            TrainStep("vqvae", [self.encoder, self.decoder_in, self.up, self.decoder_out], self.autoencoder_loss),
            TrainStep("prior", [self.prior], self.prior_loss),
        ]

    # ------------------------------------------------------------------ likelihood
    def log_prob(
        self,
        x: Tensor,
        *,
        labels: Tensor | None = None,
        iw_samples: int | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """The lower bound log p_prior(c(x)) + log p(x | z_q(c(x))) on log p(x), nats per
        image, shape (B,), for 8-bit images x in [0, 1]. Deterministic: ``iw_samples``,
        ``generator`` and ``labels`` are accepted for the contract and ignored."""
        codes, z_q = self.quantize(self.encoder_output(x))
        return self.prior.log_prob(self._prior_input(codes)) + D.discretized_logistic_log_prob(
            x, *self.decoder_params(z_q)
        )

    # ------------------------------------------------------------------ codes and sampling
    def codes(self, x: Tensor) -> Tensor:
        """Images (N, C, H, W) in [0, 1] -> code indices (N, h, w) long, in 0..K-1."""
        with torch.no_grad():
            return self.quantize(self.encoder_output(x))[0]

    def encode(self, x: Tensor) -> Tensor:
        """Images (N, C, H, W) in [0, 1] -> quantised vectors z_q flattened, (N, d * h * w)."""
        return self.embed(self.codes(x)).flatten(1)

    def decode(self, z: Tensor, *, labels: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        """Vectors (N, d * h * w) (e.g. from :meth:`encode`) -> the decoder's mean image
        (N, C, H, W) in [0, 1]. Vectors off the codebook are decoded as they are."""
        if z.dim() != 2 or z.shape[1] != self.latent_shape[0]:
            raise ValueError(f"expected latents of shape (N, {self.latent_shape[0]}), got {tuple(z.shape)}")
        with torch.no_grad():
            z_q = z.to(self.device).view(z.shape[0], self.config.code_dim, *self.code_shape)
            return self.decoder_params(z_q)[0].clamp(0.0, 1.0)

    def sample_codes(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        """n code maps (n, h, w) drawn from the PixelCNN prior."""
        grid = self.prior.sample(n, generator=generator).clone()  # a normal tensor, not an inference one
        return torch.round(grid[:, 0] * (self.config.num_codes - 1)).long()

    def latent(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        """(n, d * h * w): the vectors of n code maps drawn from the prior."""
        with torch.no_grad():
            return self.embed(self.sample_codes(n, generator=generator)).flatten(1)

    def sample(self, n: int, *, labels: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        """n images (n, C, H, W) in [0, 1]: codes from the prior, decoded to the mean image."""
        self.check_labels(labels, n)
        return self.decode(self.latent(n, generator=generator))
