"""Generative adversarial networks (Goodfellow et al., 2014).

A generator ``G`` maps noise ``z ~ N(0, I)`` to samples; a discriminator ``D`` tells
them from data. One training iteration is ``d_steps`` discriminator steps then one
generator step (:meth:`GAN.train_steps`); the Trainer updates only the step's own
player, with the other frozen. The objective (minimax, non-saturating, least squares,
hinge) is a config choice; the equations live in :mod:`genlab.losses`.

Data:

* images ``(C, H, W)``: fed in [-1, 1] (``input_mode = "signed"``, G ends in tanh);
  :meth:`GAN.sample` returns [0, 1];
* points ``(D,)``, e.g. the toy 2-D sets ``ring8``/``grid25``: set
  ``image_shape = (2,)`` (the Trainer copies the data set's ``shape``); the data are
  used as they are (``input_mode = "unit"``) and :meth:`GAN.sample` returns (n, D).
  The defaults below are for images; for toy 2-D points the registry applies
  :data:`POINT_PRESET` (``genlab train gan --data ring8``, before the user's ``--set`` flags).

Options: class-conditional (``num_classes > 0``: G takes a label embedding, D uses a
projection head or the label concatenated to its input); ``d_steps`` discriminator
steps per generator step; learning rates and Adam betas per player (``train.step_lr``,
``train.step_betas`` keyed by ``"discriminator"``/``"generator"``); R1 or WGAN-GP
gradient penalty; spectral norm in D. Sampling from the Trainer's exponential moving
average of the weights (``train.ema_decay > 0``) needs nothing here: the EMA copy is
another instance of this model.

Stability: every step logs both players' losses and D's mean outputs on real and
fake data (``d/real``, ``d/fake``, ``g/fake``: probabilities for the log-loss
objectives, raw scores for least squares and hinge). When the discriminator has won
(its loss below ``collapse_d_loss``), or the generator's loss stays above
``collapse_g_loss``, for ``collapse_patience`` consecutive steps, the step raises
:class:`genlab.errors.TrainingError`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .. import losses
from ..config import ModelConfig
from ..distributions import draw
from ..errors import ConfigError, TrainingError
from ..nn import gan_blocks as blocks
from ..presets import Preset
from .base import Batch, GenerativeModel, TrainStep

ARCHS = ("mlp", "conv")

#: Adam's settings for both players (``train.lr``, ``train.betas`` of the registry entry; DCGAN, section 4):
#: lr 2e-4, beta1 0.5. Give the players different ones with ``train.step_lr.discriminator=...``.
TRAIN_DEFAULTS = {"lr": 2e-4, "betas": (0.5, 0.999)}

#: The preset for toy 2-D point data (``ring8``, arch mlp), applied by
#: :func:`genlab.registry.build_run_config` whenever the data is ``ring8`` or ``grid25``
#: (before the user's overrides). MLP 3x256 (G ReLU, D LeakyReLU 0.2), z dim 8,
#: Adam lr 1e-3 betas (0.5, 0.999) for both players, a light R1 penalty (gamma 0.1) on D,
#: batch 256, 6000 iterations with the learning rate decayed to 0 by a cosine schedule (the
#: decay sharpens the modes: change train.schedule_steps with train.steps), no EMA.
#: Measured on ring8 with benchmarks/gan_ring8.py (seeds 0, 1, 2; about 90 s per run on one
#: thread): minimax and non-saturating cover 8/8 modes with 0.89-0.93 high-quality samples
#: on every seed; least squares (7/8, 8/8, 8/8) and hinge (8/8, 3/8, 8/8) miss on one seed.
POINT_PRESET = {
    "model.hidden_dim": 256,
    "model.hidden_layers": 3,
    "model.latent_dim": 8,
    "train.lr": 1e-3,
    "model.penalty": "r1",
    "model.penalty_weight": 1.0,
    "train.batch_size": 256,
    "train.steps": 6000,
    "train.lr_schedule": "cosine",
    "train.schedule_steps": 6000,
}


@dataclass
class GANConfig(ModelConfig):
    """``image_shape``: (C, H, W) for images or (D,) for points (toy 2-D data: (2,))."""

    image_shape: tuple[int, ...] = (1, 28, 28)
    latent_dim: int = 64
    objective: str = "non-saturating"  # minimax | non-saturating | least-squares | hinge
    arch: str = "mlp"  # mlp | conv
    hidden_dim: int = 256  # MLP width
    hidden_layers: int = 3  # MLP hidden layers (each player)
    channels: int = 64  # conv: D's first width; G's last hidden width
    upsample: str = "transposed"  # conv G: "transposed" (4x4 stride-2) or "upsample" (nearest x2 + 3x3 conv)
    g_batchnorm: bool = False
    d_batchnorm: bool = False
    conditioning: str = "projection"  # class-conditional D: "projection" or "concat"
    label_dim: int = 32  # size of G's label embedding
    d_steps: int = 1  # discriminator steps per generator step
    penalty: str = "none"  # none | r1 (gamma/2 E||grad D(x)||^2 on reals) | gp (WGAN-GP)
    penalty_weight: float = 10.0  # gamma for r1, lambda for gp
    spectral_norm: bool = False  # spectral normalisation of D's weights
    collapse_patience: int = 500  # consecutive steps before TrainingError; 0 disables the check
    collapse_d_loss: float = 1e-3  # D's loss below this counts as a collapsed (won) discriminator
    collapse_g_loss: float = 30.0  # G's loss above this counts as exploding

    def validate(self) -> None:
        """Raise ConfigError on a bad choice (called on build and by the model)."""
        super().validate()
        losses.check_objective(self.objective)
        losses.check_penalty(self.penalty)
        for name, allowed in {
            "arch": ARCHS,
            "conditioning": blocks.CONDITIONINGS,
            "upsample": blocks.UPSAMPLINGS,
        }.items():
            self.check_choice(name, allowed)
        self.check_positive("d_steps", "latent_dim", "hidden_dim", "hidden_layers", "channels")
        if len(self.image_shape) not in (1, 3):
            raise ConfigError(
                f"model.image_shape must be (C, H, W) for images or (D,) for points, got {self.image_shape}"
            )
        if self.arch == "conv":
            if len(self.image_shape) != 3:
                raise ConfigError("model.arch=conv needs images (C, H, W); use model.arch=mlp for points")
            blocks.dcgan_layout(*self.image_shape[1:])  # a side the convolutional networks can make


#: The presets of ``genlab train gan``: :data:`POINT_PRESET`, applied to ring8 and grid25.
PRESETS: dict[str, Preset] = {
    "points": Preset(
        POINT_PRESET,
        data=("ring8", "grid25"),
        source=(
            "benchmarks/gan_ring8.py: on ring8, seeds 0-2, minimax and non-saturating cover 8/8 modes with 0.89-0.93 "
            "high-quality samples (see the genlab.models.gan docstring)"
        ),
    ),
}


class GAN(GenerativeModel):
    """``G`` (generator) and ``D`` (discriminator, returns logits (N,)) with the GAN objectives."""

    config_class = GANConfig

    def __init__(self, config: GANConfig):
        super().__init__(config)
        config.validate()
        # images in [-1, 1] to match G's tanh; points as they are
        self.input_mode = "signed" if self.data_kind == "image" else "unit"
        self.G, self.D = self.build_networks()
        self._streaks = {"d": 0, "g": 0}  # consecutive steps with a collapsed D / an exploding G loss

    @property
    def data_kind(self) -> str:
        """ "image" for image_shape (C, H, W), "points" for (D,)."""
        return "image" if len(self.config.image_shape) == 3 else "points"

    @property
    def latent_shape(self) -> tuple[int, ...]:
        return (self.config.latent_dim,)

    # ---------------------------------------------------------------- networks
    def build_networks(self) -> tuple[nn.Module, nn.Module]:
        c = self.config
        k = c.num_classes
        if c.arch == "conv":
            G = blocks.ConvGenerator(c.latent_dim, c.image_shape, c.channels, c.upsample, c.g_batchnorm, k, c.label_dim)
            D = blocks.ConvDiscriminator(c.image_shape, c.channels, c.d_batchnorm, k, c.conditioning, c.spectral_norm)
            blocks.dcgan_init(G)
            blocks.dcgan_init(D)
            return G, D
        dim = 1
        for s in c.image_shape:
            dim *= s
        G = blocks.MLPGenerator(c.latent_dim, dim, c.hidden_dim, c.hidden_layers, k, c.label_dim, c.g_batchnorm)
        D = blocks.MLPDiscriminator(dim, c.hidden_dim, c.hidden_layers, k, c.conditioning, c.spectral_norm)
        return G, D

    @property
    def data_shape(self) -> tuple[int, ...]:
        """(C, H, W) for images, (D,) for points."""
        return tuple(self.config.image_shape)

    @property
    def num_dims(self) -> int:
        n = 1
        for s in self.data_shape:
            n *= s
        return n

    def generate(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        """z (N, latent_dim) -> samples in the model's input space ([-1, 1] images or points)."""
        out = self.G(z, labels)
        if self.data_kind == "image":
            out = torch.tanh(out.reshape(z.shape[0], *self.data_shape))
        return out

    def discriminate(self, x: Tensor, *, labels: Tensor | None = None) -> Tensor:
        """Logits (N,) of D on data in the model's input space."""
        self.check_images(x)
        return self.D(x, labels)

    def latent(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        """n draws of z ~ N(0, I), shape (n, latent_dim)."""
        return draw(torch.randn, n, self.config.latent_dim, generator=generator, device=self.device)

    # ---------------------------------------------------------------- training
    def train_steps(self) -> list[TrainStep]:
        """``[D] * d_steps + [G]``. The D steps share one name, so the Trainer gives
        them one optimiser (one set of Adam moments); the extra ones ask for a fresh batch."""
        c = self.config
        d = TrainStep("discriminator", [self.D], self.d_step_loss)
        steps = [d] + [dataclasses.replace(d, new_batch=True) for _ in range(2, c.d_steps + 1)]
        steps.append(TrainStep("generator", [self.G], self.g_step_loss))
        return steps

    def _batch(self, batch: Batch) -> tuple[Tensor, Tensor | None]:
        x = batch["x"]
        y = batch.get("y")
        if self.config.num_classes > 0:
            if y is None:
                raise ValueError(
                    f"this GAN is class-conditional ({self.config.num_classes} classes) but the batch has no labels"
                )
            y = self.check_labels(y, x.shape[0])
        else:
            y = None
        return x, y

    def d_step_loss(self, batch: Batch) -> dict:
        """D's loss on a real batch and as many fakes; the fakes are made without a graph,
        so this loss can never send a gradient into G."""
        real, y = self._batch(batch)
        with torch.no_grad():
            fake = self.generate(self.latent(real.shape[0]), y)
        return self.d_objective(lambda inp: self.D(inp, y), real, fake)

    def d_objective(self, d_fn, real: Tensor, fake: Tensor) -> dict:
        """D's loss under the objective on a real and a fake batch (``d_fn``: batch -> logits
        (N,)), plus the penalty (R1 on the reals, or WGAN-GP between the two), the logged
        means of D's outputs and the collapse check. Shared with models whose D judges
        other inputs (ALI: flattened (x, z) pairs)."""
        c = self.config
        real_logits = d_fn(real)
        fake_logits = d_fn(fake)
        d_loss = losses.d_loss(c.objective, real_logits, fake_logits)
        out = {"d/loss": d_loss.detach()}
        total = d_loss
        if c.penalty != "none":
            if c.penalty == "r1":
                pen = losses.r1_penalty(d_fn, real, c.penalty_weight)
            else:
                pen = losses.gradient_penalty(d_fn, real, fake, c.penalty_weight)
            total = total + pen
            out["d/penalty"] = pen.detach()
        d_real = losses.d_output(c.objective, real_logits.detach()).mean()
        d_fake = losses.d_output(c.objective, fake_logits.detach()).mean()
        out.update({"d/real": d_real, "d/fake": d_fake})
        if self._tracking():
            if self._streak("d", float(d_loss.detach()) < c.collapse_d_loss):
                raise TrainingError(
                    f"the discriminator collapsed: its {c.objective} loss stayed below {c.collapse_d_loss:g} for "
                    f"{c.collapse_patience} steps (now {float(d_loss.detach()):.3g}, D(real)={float(d_real):.3f}, "
                    f"D(fake)={float(d_fake):.3f}); the generator gets no useful signal. Try the non-saturating or "
                    "least-squares objective, a lower train.step_lr.discriminator, model.penalty=r1, "
                    "model.spectral_norm=true, or raise model.collapse_patience (0 disables this check)"
                )
        out["loss"] = total
        return out

    def g_step_loss(self, batch: Batch) -> dict:
        """G's loss on fresh fakes judged by D (D is frozen by the Trainer during this step)."""
        c = self.config
        real, y = self._batch(batch)
        fake = self.generate(self.latent(real.shape[0]), y)
        fake_logits = self.D(fake, y)
        g_loss = losses.g_loss(c.objective, fake_logits)
        g_fake = losses.d_output(c.objective, fake_logits.detach()).mean()
        if self._tracking():
            if self._streak("g", float(g_loss.detach()) > c.collapse_g_loss):
                raise TrainingError(
                    f"the generator's {c.objective} loss exploded: above {c.collapse_g_loss:g} for "
                    f"{c.collapse_patience} steps (now {float(g_loss.detach()):.3g}, D(G(z))={float(g_fake):.3g}): the "
                    f"discriminator rejects every fake. Try a lower train.step_lr.discriminator, model.penalty=r1 or "
                    f"model.spectral_norm=true, or raise model.collapse_g_loss / model.collapse_patience"
                )
        return {"loss": g_loss, "g/loss": g_loss.detach(), "g/fake": g_fake}

    def _streak(self, player: str, bad: bool) -> bool:
        """Count consecutive bad steps of one player; True (and reset) once they reach
        ``collapse_patience`` (never when the patience is 0)."""
        self._streaks[player] = self._streaks[player] + 1 if bad else 0
        if self.config.collapse_patience and self._streaks[player] >= self.config.collapse_patience:
            self._streaks[player] = 0
            return True
        return False

    def _tracking(self) -> bool:
        # count only real optimisation steps, not evaluation passes
        return self.training and torch.is_grad_enabled()

    # ---------------------------------------------------------------- sampling
    def decode(self, z: Tensor, *, labels: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        """Latent codes (N, latent_dim) -> samples: images in [0, 1] (N, C, H, W), or
        points (N, D). G runs in eval mode (batch norm uses its running statistics).
        Deterministic: ``generator`` is ignored."""
        z = torch.as_tensor(z, dtype=torch.float32, device=self.device)
        if z.dim() != 2 or z.shape[1] != self.config.latent_dim:
            raise ValueError(f"expected latent codes of shape (N, {self.config.latent_dim}), got {tuple(z.shape)}")
        labels = self.check_labels(labels, z.shape[0])
        was_training = self.G.training
        self.G.eval()
        try:
            with torch.inference_mode():
                x = self.generate(z, labels)
        finally:
            self.G.train(was_training)
        if self.data_kind == "image":
            from ..data.transforms import from_signed

            x = from_signed(x).clamp(0, 1)
        return x

    def sample(self, n: int, *, labels: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        """n samples: images (n, C, H, W) in [0, 1], or points (n, D) in data units.
        Class-conditional models need ``labels`` (n values, or one for all)."""
        labels = self.check_labels(labels, n)
        return self.decode(self.latent(n, generator=generator), labels=labels)

    def check_images(self, x: Tensor) -> None:
        if self.data_kind == "image":
            return super().check_images(x)
        if x.dim() != 2 or tuple(x.shape[1:]) != self.data_shape:
            raise ValueError(f"expected points of shape (N, {self.data_shape[0]}), got {tuple(x.shape)}")
