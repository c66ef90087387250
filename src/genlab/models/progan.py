"""Progressive growing of GANs (Karras, Aila, Laine & Lehtinen, 2018).

"Progressive Growing of GANs for Improved Quality, Stability, and Variation",
ICLR 2018, arXiv:1710.10196.

Both networks are built for every resolution up front; training starts at the
smallest one and grows by doubling. Each new block is **faded in** (section 2,
figure 2) while ``alpha`` goes from 0 to 1, then trained at full weight (the
*stabilisation* phase)::

    G:  x = (1 - alpha) * upsample(toRGB_{r}(h)) + alpha * toRGB_{2r}(block_{2r}(h))
    D:  h = (1 - alpha) * fromRGB_{r}(avgpool(x)) + alpha * block_{2r}(fromRGB_{2r}(x))

Resolutions: square images of side ``s * 2^k`` with ``4 <= s <= 7`` grow
``s -> 2s -> ... -> s * 2^k`` (the same layouts as ``dcgan``): 32x32 grows
4 -> 8 -> 16 -> 32 like the paper; 28x28 MNIST grows **7 -> 14 -> 28** (no padding,
so FID is computed on the real 28x28 test images). The paper's other ingredients:

* **equalized learning rate** (section 4.1): weights are drawn from N(0, 1) and
  multiplied at run time by He's constant ``c = gain / sqrt(fan_in)`` (gain sqrt(2),
  1 for the toRGB and output layers; G's first dense layer keeps sqrt(2), not the
  authors' sqrt(2)/4, see :class:`ProGenerator`), so Adam's per-parameter step sizes act on
  every layer at the same dynamic range;
* **pixelwise feature normalisation** in G after every convolution (section 4.2):
  ``b_xy = a_xy / sqrt(mean_j (a_xy^j)^2 + 1e-8)``;
* **minibatch standard deviation** (section 3) before D's last block: the standard
  deviation of each feature at each pixel over a group of ``mbstd_group`` examples,
  averaged to one number per group, appended as one constant feature map;
* **WGAN-GP loss** (Gulrajani et al., 2017) with the small drift term (appendix A.1),
  the default ``objective = "wgan-gp"``::

      L_D = E_z[D(G(z))] - E_x[D(x)] + lambda E_xhat[(||grad D(xhat)|| - 1)^2] + eps_drift E_x[D(x)^2]
      L_G = -E_z[D(G(z))]

  with lambda = 10 (``gp_weight``) and eps_drift = 0.001 (``drift``); any objective of
  :mod:`genlab.losses` (e.g. ``non-saturating``) is the alternative, with the same
  gradient penalty when ``gp_weight > 0`` and no drift term;
* real images are **downsampled** (2x2 average pooling) to the current resolution and,
  during a fade-in, **blended** like G's output:
  ``x_r = (1 - alpha) * upsample(avgpool(x_r)) + alpha * x_r`` (appendix A.1);
* Adam with lr 0.001, betas (0, 0.99) for both players, as in the paper (:data:`TRAIN_DEFAULTS`); sample from
  the Trainer's moving average of the weights (the paper uses decay 0.999:
  ``--set train.ema_decay=0.999``).

**Schedule.** Derived purely from the Trainer's 0-based iteration counter ``step``
(see :func:`growth_schedule`): ``stable_steps`` at the first resolution, then for each
new resolution ``fade_steps`` with ``alpha = (step - fade start) / fade_steps`` (0, 1/F,
..., (F-1)/F), then ``stable_steps`` at ``alpha = 1``; the last resolution then stays at
``alpha = 1`` for the rest of training. The Trainer calls :meth:`ProGAN.begin_iteration`
at the start of every iteration, so resuming at any step (also mid-fade) is exact.
The step of the last iteration is kept in the integer buffer ``growth_step`` (saved with
the weights; an integer so that the Trainer's EMA copies it instead of averaging it), so a
model from ``genlab.load`` samples at the resolution and alpha it was trained at.

Data: images (C, H, W) fed in [-1, 1] (``input_mode = "signed"``); G's output is
linear (no tanh, as in the paper). :meth:`ProGAN.sample` returns images in [0, 1] at the
**full data resolution**: when training stopped before the last resolution, the
current-resolution images are nearest-upsampled (blocky) to the data's size.

Left out (a CPU-sized version): per-resolution batch sizes (the Trainer has one batch
size), resetting Adam's moments at each new resolution, and class conditioning.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import losses
from ..config import ModelConfig
from ..distributions import draw
from ..errors import ConfigError
from ..nn.gan_blocks import dcgan_layout
from ..presets import Preset, Published
from .base import Batch, GenerativeModel, TrainStep

HE_GAIN = math.sqrt(2.0)
LEAK = 0.2


#: The training defaults of the registry entry: Adam lr 0.001, betas (0, 0.99) (section A.1).
TRAIN_DEFAULTS = {"lr": 1e-3, "betas": (0.0, 0.99)}


@dataclass
class ProGANConfig(ModelConfig):
    """``image_shape``: (C, H, W), square with side ``s * 2^k``, 4 <= s <= 7, k >= 2."""

    image_shape: tuple[int, ...] = (1, 28, 28)
    latent_dim: int = 64  # the paper: 512
    channels: int = 32  # width at the first resolution (the paper: 512); halves with every doubling ...
    min_channels: int = 16  # ... down to this (MNIST: 32 at 7x7, 16 at 14x14 and 28x28)
    objective: str = "wgan-gp"  # wgan-gp (the paper) or any genlab.losses objective, e.g. non-saturating
    gp_weight: float = 10.0  # lambda of the gradient penalty (0 disables it)
    drift: float = 0.001  # eps_drift: keeps D's outputs on reals near 0 (wgan-gp only)
    mbstd_group: int = 4  # group size of the minibatch standard deviation layer
    stable_steps: int = 400  # iterations at alpha = 1 per resolution (the last one: until the end)
    fade_steps: int = 400  # iterations of each fade-in

    def validate(self) -> None:
        """Raise ConfigError on a bad choice (called on build and by the model)."""
        super().validate()
        if self.objective != "wgan-gp":
            try:
                losses.check_objective(self.objective)
            except ConfigError:
                raise ConfigError(
                    f"unknown model.objective {self.objective!r}; choose wgan-gp or "
                    f"one of: {', '.join(losses.OBJECTIVES)}"
                ) from None
        self.check_positive("latent_dim", "channels", "min_channels", "mbstd_group")
        if self.stable_steps < 0 or self.fade_steps < 0 or self.stable_steps + self.fade_steps < 1:
            raise ConfigError(
                "model.stable_steps and model.fade_steps must be >= 0 with a positive sum, got "
                f"{self.stable_steps} and {self.fade_steps}"
            )
        if self.gp_weight < 0 or self.drift < 0:
            raise ConfigError(f"model.gp_weight and model.drift must be >= 0, got {self.gp_weight} and {self.drift}")
        if self.num_classes != 0:  # not check_unconditional: this message names the alternative
            raise ConfigError(
                "progan is unconditional: set model.num_classes=0 (use dcgan for class-conditional images)"
            )
        if len(self.image_shape) != 3:
            raise ConfigError(f"progan needs images (C, H, W), got image_shape={tuple(self.image_shape)}")
        dcgan_layout(*self.image_shape[1:])  # grows s -> 2s -> ... -> the side: s * 2^k, 4 <= s <= 7, k >= 2


#: The presets of ``genlab train progan --preset NAME``: the paper's.
PRESETS: dict[str, Preset] = {
    "paper": Preset(
        {
            "data.name": "cifar10",
            "model.image_shape": (3, 32, 32),
            "model.latent_dim": 128,
            "model.channels": 128,
            "model.min_channels": 128,
            "model.objective": "wgan-gp",
            "model.gp_weight": 10.0,
            "model.drift": 0.001,
            "model.mbstd_group": 16,
            "model.stable_steps": 25_000,
            "model.fade_steps": 25_000,
            "train.batch_size": 16,
            "train.lr": 1e-3,
            "train.betas": (0.0, 0.99),
            "train.steps": 1_250_000,
        },
        source=(
            "tkarras/progressive_growing_of_gans, branch original-theano-version, config.py, the block 'Section "
            "6.5: CIFAR10 inception scores' (Karras et al. 2018 (ProGAN), section 6.5; appendix A.1 for the "
            "layers): 128-d latent (latent_size), 128 feature maps at every resolution "
            "(fmap_base 4096, fmap_max 128), WGAN-GP (lambda 10, drift 0.001), minibatch stddev over the whole "
            "minibatch of 16 (mbstat_avg 'all'), equalized learning rate, pixel norm, Adam lr 1e-3, betas "
            "(0, 0.99), batch 16, 400k images per stabilisation and per fade-in "
            "(lod_training_kimg = lod_transition_kimg = 400: 25,000 steps each), 20,000k images in all "
            "(total_kimg: 1,250,000 steps), no learning-rate ramp-up, no mirroring. Not in genlab: the "
            "gradient-penalty target 750 (iwass_target; the penalty is lambda (|grad| - 750)^2 / 750^2, genlab's "
            "target is 1); G and D updated in one function (separate_funcs False; genlab: D, then G); the base "
            "config's generator EMA 0.999 (set train.ema_decay=0.999 for it). The paper's CIFAR-10 figure is an "
            "inception score, which genlab does not compute. Parameters: G 1,298,828 and D 1,298,689; the config's "
            "layers up to 32x32 at 128 maps: 1,295,747 and 1,297,153 (genlab keeps a toRGB / fromRGB layer per "
            "resolution and a bias per unit of G's first dense layer)."
        ),
        published=(
            Published(
                "inception score",
                8.80,
                "Karras et al. 2018, section 6.5, unsupervised CIFAR-10",
                "not comparable with genlab's FID/KID",
            ),
        ),
    ),
}


def growth_schedule(step: int, num_levels: int, stable_steps: int, fade_steps: int) -> tuple[int, float]:
    """(level, alpha) of 0-based iteration ``step``; the resolution is ``s * 2^level``.

    ``[0, S)``: level 0, alpha 1. Then for level l = 1, 2, ...: ``F`` fade steps with
    alpha = (step - start) / F, then ``S`` steps at alpha 1. After the last level's fade
    it stays at (num_levels - 1, 1.0).
    """
    if step < stable_steps:
        return 0, 1.0
    k, r = divmod(step - stable_steps, fade_steps + stable_steps)
    level = k + 1
    if level >= num_levels:
        return num_levels - 1, 1.0
    return (level, r / fade_steps) if r < fade_steps else (level, 1.0)


# --------------------------------------------------------------------------- layers


class EqualizedLinear(nn.Module):
    """``y = x (c W)^T + b`` with ``W ~ N(0, 1)`` and ``c = gain / sqrt(fan_in)`` applied at
    run time (equalized learning rate). x (N, in) -> (N, out)."""

    def __init__(self, in_features: int, out_features: int, gain: float = HE_GAIN):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(out_features))
        self.scale = gain / math.sqrt(in_features)

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight * self.scale, self.bias)


class EqualizedConv2d(nn.Module):
    """``k x k`` convolution (stride 1, "same" padding) with the run-time scale
    ``c = gain / sqrt(in_channels * k * k)``. (N, in, H, W) -> (N, out, H, W)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, gain: float = HE_GAIN):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.scale = gain / math.sqrt(in_channels * kernel_size * kernel_size)
        self.padding = kernel_size // 2

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, padding=self.padding)


def pixel_norm(a: Tensor, eps: float = 1e-8) -> Tensor:
    """``a / sqrt(mean over channels of a^2 + eps)`` per example and pixel; (N, C, ...) -> same shape."""
    return a * torch.rsqrt(a.pow(2).mean(dim=1, keepdim=True) + eps)


def minibatch_stddev(x: Tensor, group_size: int) -> Tensor:
    """Append one feature map: for each group of examples, the standard deviation of every
    feature at every pixel over the group (biased, +1e-8 inside the root), averaged to one
    number. (N, C, H, W) -> (N, C + 1, H, W).

    The group size is the largest divisor of N that is <= ``group_size``; as in the paper's
    code, example ``i`` belongs to group ``i mod (N / G)``.
    """
    n, c, h, w = x.shape
    g = max(d for d in range(1, min(group_size, n) + 1) if n % d == 0)
    y = x.reshape(g, n // g, c, h, w)
    y = (y - y.mean(0, keepdim=True)).pow(2).mean(0).add(1e-8).sqrt()  # (N/G, C, H, W)
    y = y.mean(dim=(1, 2, 3)).reshape(n // g, 1, 1, 1).repeat(g, 1, h, w)  # (N, 1, H, W)
    return torch.cat([x, y], dim=1)


def conv_act(cin: int, cout: int, k: int, norm: bool) -> list[nn.Module]:
    """Equalized conv, LeakyReLU(0.2), and pixel norm when ``norm`` (the generator)."""
    layers: list[nn.Module] = [EqualizedConv2d(cin, cout, k), nn.LeakyReLU(LEAK)]
    if norm:
        layers.append(PixelNorm())
    return layers


class PixelNorm(nn.Module):
    def forward(self, a: Tensor) -> Tensor:
        return pixel_norm(a)


def upsample(x: Tensor, factor: int = 2) -> Tensor:
    """Nearest-neighbour upsampling by an integer factor (each pixel becomes a factor x factor block)."""
    return x if factor == 1 else F.interpolate(x, scale_factor=factor, mode="nearest")


# --------------------------------------------------------------------------- networks


class ProGenerator(nn.Module):
    """z (N, latent_dim) -> images (N, C, s 2^level, s 2^level), linear output.

    ``blocks[0]``: pixel-normalised z -> dense to an s x s map -> 3x3 conv. The dense layer
    keeps He's gain sqrt(2), not the authors' ``gain=np.sqrt(2)/4`` (kept in their code to
    match their first, Theano, version): the pixel norm right after it removes the scale of
    its output, so the gain only sets how fast its weights move relative to its bias, and
    runs saved by genlab 0.1.0 must keep resuming to the same weights (issue #9);
    ``blocks[l]``: nearest x2, two 3x3 convs; all with LeakyReLU(0.2) + pixel norm.
    ``to_rgb[l]``: 1x1 equalized conv (gain 1) from level l's features to the image.
    """

    def __init__(self, latent_dim: int, image_channels: int, base: int, widths: list[int]):
        super().__init__()
        self.base, self.w0 = base, widths[0]
        self.dense = EqualizedLinear(latent_dim, widths[0] * base * base, gain=HE_GAIN)
        self.blocks = nn.ModuleList([nn.Sequential(PixelNorm(), *conv_act(widths[0], widths[0], 3, norm=True))])
        for lo, hi in zip(widths, widths[1:]):
            self.blocks.append(
                nn.Sequential(
                    nn.Upsample(scale_factor=2, mode="nearest"), *conv_act(lo, hi, 3, True), *conv_act(hi, hi, 3, True)
                )
            )
        self.to_rgb = nn.ModuleList([EqualizedConv2d(w, image_channels, 1, gain=1.0) for w in widths])

    def forward(self, z: Tensor, level: int, alpha: float) -> Tensor:
        h = F.leaky_relu(self.dense(pixel_norm(z)), LEAK).view(z.shape[0], self.w0, self.base, self.base)
        h = self.blocks[0](h)
        prev = h
        for lv in range(1, level + 1):
            prev, h = h, self.blocks[lv](h)
        out = self.to_rgb[level](h)
        if level > 0 and alpha < 1:
            out = (1 - alpha) * upsample(self.to_rgb[level - 1](prev)) + alpha * out
        return out


class ProDiscriminator(nn.Module):
    """images (N, C, s 2^level, s 2^level) -> scores (N,) (raw, no sigmoid).

    ``from_rgb[l]``: 1x1 conv + LeakyReLU; ``blocks[l]`` (l >= 1): two 3x3 convs and 2x2
    average pooling; ``blocks[0]``: minibatch stddev, 3x3 conv, dense, dense to 1.
    """

    def __init__(self, image_channels: int, base: int, widths: list[int], mbstd_group: int):
        super().__init__()
        self.mbstd_group = mbstd_group
        self.from_rgb = nn.ModuleList(
            [nn.Sequential(EqualizedConv2d(image_channels, w, 1), nn.LeakyReLU(LEAK)) for w in widths]
        )
        self.blocks = nn.ModuleList([nn.Identity()])
        for lo, hi in zip(widths, widths[1:]):
            self.blocks.append(nn.Sequential(*conv_act(hi, hi, 3, False), *conv_act(hi, lo, 3, False), nn.AvgPool2d(2)))
        w0 = widths[0]
        self.final_conv = nn.Sequential(*conv_act(w0 + 1, w0, 3, False))
        self.final_dense = EqualizedLinear(w0 * base * base, w0)
        self.out = EqualizedLinear(w0, 1, gain=1.0)

    def forward(self, x: Tensor, level: int, alpha: float) -> Tensor:
        h = self.from_rgb[level](x)
        if level > 0:
            h = self.blocks[level](h)
            if alpha < 1:
                h = (1 - alpha) * self.from_rgb[level - 1](F.avg_pool2d(x, 2)) + alpha * h
            for lv in range(level - 1, 0, -1):
                h = self.blocks[lv](h)
        h = self.final_conv(minibatch_stddev(h, self.mbstd_group))
        h = F.leaky_relu(self.final_dense(h.flatten(1)), LEAK)
        return self.out(h).squeeze(1)


# --------------------------------------------------------------------------- the model


class ProGAN(GenerativeModel):
    """Progressively grown G and D (unconditional images) with WGAN-GP + drift by default."""

    config_class = ProGANConfig
    input_mode = "signed"

    def __init__(self, config: ProGANConfig):
        super().__init__(config)
        config.validate()
        c_img, h, w = config.image_shape
        base, k = dcgan_layout(h, w)
        self.base, self.num_levels = base, k + 1
        widths = [max(config.min_channels, config.channels // 2**lv) for lv in range(self.num_levels)]
        self.G = ProGenerator(config.latent_dim, c_img, base, widths)
        self.D = ProDiscriminator(c_img, base, widths, config.mbstd_group)
        # the 0-based iteration the networks were last set to (see the module docstring)
        self.register_buffer("growth_step", torch.zeros((), dtype=torch.long))

    # ---------------------------------------------------------------- growth
    def begin_iteration(self, step: int) -> None:
        """Called by the Trainer before iteration ``step`` (0-based): sets the stage."""
        self.growth_step.fill_(int(step))

    @property
    def stage(self) -> tuple[int, float]:
        """(level, alpha) of the current step; the resolution is ``base * 2^level``."""
        c = self.config
        return growth_schedule(int(self.growth_step), self.num_levels, c.stable_steps, c.fade_steps)

    @property
    def resolution(self) -> int:
        return self.base * 2 ** self.stage[0]

    def real_at_stage(self, x: Tensor, level: int | None = None, alpha: float | None = None) -> Tensor:
        """Full-resolution images (N, C, H, W) -> the current resolution by 2x2 average
        pooling, blended with their own blurred version during a fade-in (like G's output)."""
        if level is None:
            level, alpha = self.stage
        for _ in range(self.num_levels - 1 - level):
            x = F.avg_pool2d(x, 2)
        if level > 0 and alpha < 1:
            x = (1 - alpha) * upsample(F.avg_pool2d(x, 2)) + alpha * x
        return x

    # ---------------------------------------------------------------- networks at the current stage
    @property
    def latent_shape(self) -> tuple[int, ...]:
        return (self.config.latent_dim,)

    def latent(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        """n draws of z ~ N(0, I), shape (n, latent_dim) (G normalises them to the sphere)."""
        return draw(torch.randn, n, self.config.latent_dim, generator=generator, device=self.device)

    def generate(self, z: Tensor) -> Tensor:
        """z (N, latent_dim) -> images at the current resolution, [-1, 1] scale (unclamped)."""
        return self.G(z, *self.stage)

    def discriminate(self, x: Tensor, *, labels: Tensor | None = None) -> Tensor:
        """D's scores (N,) on full-resolution images in [-1, 1], taken to the current stage."""
        self.check_images(x)
        if labels is not None:
            raise ValueError("progan is unconditional: discriminate() takes no labels")
        return self.D(self.real_at_stage(x), *self.stage)

    # ---------------------------------------------------------------- training
    def train_steps(self) -> list[TrainStep]:
        """D then G, each with Adam(train.lr, train.betas) (see :data:`TRAIN_DEFAULTS`)."""
        return [
            TrainStep("discriminator", [self.D], self.d_step_loss),
            TrainStep("generator", [self.G], self.g_step_loss),
        ]

    def d_step_loss(self, batch: Batch) -> dict:
        """``L_D`` on a real batch (full resolution, [-1, 1]) and as many fakes made without
        a graph (no gradient can reach G)."""
        c = self.config
        level, alpha = self.stage
        real = self.real_at_stage(batch["x"], level, alpha)
        with torch.no_grad():
            fake = self.G(self.latent(real.shape[0]), level, alpha)
        d_real = self.D(real, level, alpha)
        d_fake = self.D(fake, level, alpha)
        out = {
            "d/real": d_real.detach().mean(),
            "d/fake": d_fake.detach().mean(),
            "resolution": float(self.base * 2**level),
            "alpha": alpha,
        }
        if c.objective == "wgan-gp":
            adv = losses.wasserstein_d_loss(d_real, d_fake)
            drift = losses.drift_penalty(d_real, c.drift)
            out["d/drift"] = drift.detach()
        else:
            adv = losses.d_loss(c.objective, d_real, d_fake)
            drift = torch.zeros((), device=adv.device)
        total = adv + drift
        if c.gp_weight > 0:
            gp = losses.gradient_penalty(lambda inp: self.D(inp, level, alpha), real, fake, c.gp_weight)
            total = total + gp
            out["d/gp"] = gp.detach()
        out["d/loss"] = adv.detach()
        out["loss"] = total
        return out

    def g_step_loss(self, batch: Batch) -> dict:
        """``L_G`` on fresh fakes (D is frozen by the Trainer during this step)."""
        c = self.config
        level, alpha = self.stage
        d_fake = self.D(self.G(self.latent(batch["x"].shape[0]), level, alpha), level, alpha)
        g = losses.wasserstein_g_loss(d_fake) if c.objective == "wgan-gp" else losses.g_loss(c.objective, d_fake)
        return {"loss": g, "g/loss": g.detach()}

    # ---------------------------------------------------------------- sampling
    def decode(self, z: Tensor, *, labels: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        """Latent codes (N, latent_dim) -> images (N, C, H, W) in [0, 1] at the full data
        resolution (nearest-upsampled when the current stage is below it). Deterministic
        (``generator`` is ignored); unconditional (``labels`` must be None)."""
        z = torch.as_tensor(z, dtype=torch.float32, device=self.device)
        if z.dim() != 2 or z.shape[1] != self.config.latent_dim:
            raise ValueError(f"expected latent codes of shape (N, {self.config.latent_dim}), got {tuple(z.shape)}")
        self.check_labels(labels, z.shape[0])
        from ..data.transforms import from_signed

        level, alpha = self.stage
        with torch.inference_mode():
            x = upsample(self.G(z, level, alpha), 2 ** (self.num_levels - 1 - level))
        return from_signed(x).clamp(0, 1)

    def sample(self, n: int, *, labels: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        """n images (n, C, H, W) in [0, 1] at the full data resolution (see :meth:`decode`)."""
        self.check_labels(labels, n)
        return self.decode(self.latent(n, generator=generator))
