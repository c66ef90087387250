"""ALI / BiGAN: adversarially learned inference, flat or hierarchical.

Papers: Dumoulin et al., "Adversarially Learned Inference" (ICLR 2017, arXiv:1606.00704);
Donahue, Kraehenbuehl & Darrell, "Adversarial Feature Learning" (BiGAN, ICLR 2017,
arXiv:1605.09782); Belghazi et al., "Hierarchical Adversarially Learned Inference"
(HALI, arXiv:1802.01071; ALI's paper also trains a 2-level model).

Two joint distributions over (x, z) are matched by a discriminator that sees pairs:

* the encoder's ``q(x, z) = q(x) q(z | x)``: a data image and its code ``E(x)``;
* the generator's ``p(x, z) = p(z) p(x | z)``: a prior code ``z ~ N(0, I)`` and ``G(z)``.

ALI, eq. (1)::

    min_{G, E} max_D  V(D, G, E) = E_{q(x)}[log D(x, E(x))] + E_{p(z)}[log(1 - D(G(z), z))]

For fixed G and E the best discriminator is ``D*(x, z) = q(x, z) / (q(x, z) + p(x, z))``
(ALI prop. 1, BiGAN prop. 1), and at the optimum of the game ``q(x, z) = p(x, z)``, so
``E`` inverts ``G``. One iteration is ``d_steps`` discriminator steps, then one step of
``G`` and ``E`` together (:meth:`ALI.train_steps`); the Trainer freezes the other player.
The (G, E) objective is a config choice; ``"non-saturating"`` (the papers' practice) is
D's loss with the labels swapped::

    min_{G, E}  -E_{q(x)}[log(1 - D(x, E(x)))] - E_{p(z)}[log D(G(z), z)]

``"minimax"`` minimises ``V`` itself, ``"least-squares"`` swaps the LSGAN targets, and
``"hinge"`` uses ``E[D(x, E(x))] - E[D(G(z), z)]`` (see :func:`ge_loss`).

Options:

* ``encoder = "stochastic"`` (ALI): ``q(z | x) = N(mu(x), diag(sigma^2(x)))``, sampled by the
  reparameterisation ``z = mu + sigma * eps`` so gradients reach ``mu`` and ``sigma``;
  ``encoder = "deterministic"`` (BiGAN): ``z = E(x)``.
* ``cycle_weight > 0`` (ALICE, Li et al. 2017, explicit cycle consistency): the (G, E) loss
  adds ``cycle_weight * mean((x - G(E(x)))^2)`` (:meth:`ALI.cycle_loss`), which pushes
  ``E`` to invert ``G`` on data directly instead of only through ``D``; 0 (the default) is
  plain ALI/BiGAN. Registry preset ``alice``.
* ``latent_levels = 2`` (hierarchical, HALI): ``x -> z1 -> z2`` with ``z1`` a spatial map
  ``(z1_channels, s, s)`` at the smallest resolution of the DCGAN layout (7x7 for 28x28) and
  ``z2`` a vector of ``latent_dim``; the generator runs ``z2 -> z1 -> x`` with
  ``p(z1 | z2)`` Gaussian (a point mass for a deterministic model) and ``p(x | z1)``
  deterministic; D sees the triple ``(x, z1, z2)``. :meth:`ALI.encode` and
  :meth:`ALI.reconstruct` use ``z2`` unless ``level=1`` is asked for (reconstructions
  through ``z1`` keep more detail, through ``z2`` more of the class: HALI, section 4).

Networks: G is the DCGAN generator (:class:`genlab.nn.gan_blocks.ConvGenerator`,
tanh output: images in [-1, 1], ``input_mode = "signed"``); E is the DCGAN discriminator's
strided-convolution body with a Gaussian head; D runs that body on ``x``, an MLP on ``z``
(z2), concatenates ``z1`` to the image features, and joins everything in an MLP
(LeakyReLU 0.2, dropout ``dropout`` on the image features and after every hidden layer of
the MLPs; ``input_dropout`` on D's inputs x and z, ALI's 0.2 on the first layers of D(x)
and D(z), whose CIFAR-10 model uses 0.5 elsewhere). Images are square with side
``s * 2^k``, ``4 <= s <= 7``, ``k >= 2`` (28, 32, 64, ...): any other size is a
ConfigError when the config is built. Unconditional only.

Stability tools come from :class:`genlab.models.gan.GAN`: R1 or WGAN-GP penalties
(computed on the joint pair, both ``x`` and ``z``), spectral norm in D, the collapse
checks, and the Trainer's EMA (``train.ema_decay``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .. import losses
from ..errors import ConfigError, TrainingError
from ..nn import gan_blocks as blocks
from ..presets import Preset
from .base import Batch, TrainStep
from .gan import GAN, GANConfig
from .gan import TRAIN_DEFAULTS as GAN_TRAIN_DEFAULTS
from .vae import _randn, reparameterize

ENCODERS = ("stochastic", "deterministic")
LEVELS = (1, 2)


@dataclass
class ALIConfig(GANConfig):
    """``latent_dim``: size of z (latent_levels=1) or of the top code z2 (latent_levels=2).

    Inherited from :class:`GANConfig`: objective, channels, upsample, g_batchnorm,
    d_batchnorm, d_steps, penalty, penalty_weight, spectral_norm and the collapse checks;
    ``hidden_dim``/``hidden_layers`` size D's MLPs (z path and joint head) and the z1 -> z2
    maps. ``arch`` must stay "conv". The optimiser settings are ``train.lr``/``train.betas``
    (per step: ``train.step_lr.discriminator``, ``train.step_lr.generator-encoder``).
    """

    image_shape: tuple[int, ...] = (1, 28, 28)
    latent_dim: int = 64
    latent_levels: int = 1  # 1: x <-> z (ALI/BiGAN); 2: x <-> z1 (spatial map) <-> z2 (vector)
    encoder: str = "stochastic"  # stochastic: Gaussian q(z|x) (ALI) | deterministic: z = E(x) (BiGAN)
    z1_channels: int = 8  # latent_levels=2: channels of the z1 map (s x s, e.g. 7x7 for 28x28 images)
    arch: str = "conv"
    channels: int = 32
    hidden_dim: int = 256
    hidden_layers: int = 1
    g_batchnorm: bool = True
    e_batchnorm: bool = True  # batch norm in the encoder's convolutions (all but the first)
    d_batchnorm: bool = False  # D sees real and fake pairs in separate batches: off by default
    dropout: float = 0.2  # D's dropout on the image features and after its MLPs' hidden layers; 0 disables
    input_dropout: float = (
        0.0  # D's dropout on its inputs x and z (z2) (ALI's CIFAR-10 model: 0.2, with dropout 0.5); 0 disables
    )
    cycle_weight: float = (
        0.0  # ALICE's explicit cycle consistency: + weight * mean (x - G(E(x)))^2 in (G, E)'s loss; 0: plain ALI/BiGAN
    )
    collapse_patience: int = 1000

    def validate(self) -> None:
        super().validate()
        if self.arch != "conv":
            raise ConfigError(f"ALI is convolutional: model.arch must be conv, got {self.arch!r}")
        if self.latent_levels not in LEVELS:
            raise ConfigError(
                f"model.latent_levels must be 1 (x <-> z) or 2 (x <-> z1 <-> z2), got {self.latent_levels}"
            )
        self.check_choice("encoder", ENCODERS)
        self.check_unconditional("ALI")
        if len(self.image_shape) != 3:
            raise ConfigError(f"ALI needs images (C, H, W), got image_shape={tuple(self.image_shape)}")
        self.check_positive("z1_channels")
        for name in ("dropout", "input_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"model.{name} must be in [0, 1), got {getattr(self, name)}")
        if not self.cycle_weight >= 0.0:
            raise ConfigError(f"model.cycle_weight must be >= 0 (0 disables the cycle term), got {self.cycle_weight}")


#: Training defaults of the registry entry: the GAN's, Adam lr 2e-4, beta1 0.5 for both players.
TRAIN_DEFAULTS = GAN_TRAIN_DEFAULTS

#: The presets of ``genlab train ali --preset NAME``: the paper's, and ALICE's cycle term.
PRESETS: dict[str, Preset] = {
    "paper": Preset(
        {
            "data.name": "cifar10",
            "model.image_shape": (3, 32, 32),
            "model.latent_dim": 64,
            "model.encoder": "stochastic",
            "model.dropout": 0.5,
            "model.input_dropout": 0.2,
            "train.batch_size": 100,
            "train.lr": 1e-4,
            "train.betas": (0.5, 0.999),
            "train.steps": 2_913_750,
        },
        source=(
            "IshmaelBelghazi/ALI, experiments/ali_cifar10.py (the authors' code; Dumoulin et al. 2017 (ALI), "
            "appendix A, CIFAR-10 table): 64-d z, stochastic encoder, batch 100, Adam lr 1e-4, beta1 0.5, dropout "
            "0.2 on the inputs of the first layers of D(x) and D(z) (model.input_dropout) and 0.5 on D's later "
            "layers (model.dropout), 6,475 epochs of the 45,000 training images of ali/streams.py (2,913,750 "
            "steps). The table's 'beta2 = 1e-3' is in the convention of Blocks' Adam of 2016 (mila-iqia/blocks, "
            "blocks/algorithms/__init__.py before commit aa06451: decay rates as 1 - beta, defaults 0.1 and "
            "0.001), which the script leaves at its default: beta2 0.999 in PyTorch's convention. Not expressible "
            "in genlab's ALI: the paper's layer table (stride-1 and stride-2 convolutions of other widths, maxout "
            "units in D, leaky slope 0.1, a sigmoid output, weights N(0, 0.01)) and the 0.5 dropout between D(x)'s "
            "convolutions (genlab drops the image features after its conv body, and after each hidden layer of "
            "the z and joint MLPs); genlab keeps its DCGAN-shaped networks. The paper reports no sample-quality "
            "metric for CIFAR-10."
        ),
    ),
    "alice": Preset(
        {"model.cycle_weight": 1.0},
        source=(
            "Li et al. 2017 (ALICE), explicit cycle consistency: ALI/BiGAN plus an l2 reconstruction term "
            "x -> E -> G -> x in the (G, E) loss (model.cycle_weight); the weight was chosen for "
            "benchmarks/ali_mnist.py"
        ),
    ),
}


def ge_loss(objective: str, enc_logits: Tensor, gen_logits: Tensor) -> Tensor:
    """The (G, E) player's loss on D's logits for encoder pairs ``(x, E(x))`` (D's "real")
    and generator pairs ``(G(z), z)`` (D's "fake"), to minimise:

    * minimax: ``V = E[log D(x, E(x))] + E[log(1 - D(G(z), z))]`` (ALI eq. 1);
    * non-saturating / least-squares: D's loss with the labels swapped, e.g.
      ``-E[log(1 - D(x, E(x)))] - E[log D(G(z), z)]``;
    * hinge: ``E[D(x, E(x))] - E[D(G(z), z)]``.
    """
    if losses.check_objective(objective) == "minimax":
        return -losses.d_loss(objective, enc_logits, gen_logits)
    if objective == "hinge":
        return losses.hinge_g_loss(gen_logits) - losses.hinge_g_loss(enc_logits)
    return losses.d_loss(objective, gen_logits, enc_logits)


# --------------------------------------------------------------------------- networks


class ConvEncoder(nn.Module):
    """x (N, C, H, W) in [-1, 1] -> (N, out_dim) (flat head) or (N, out_dim, s, s) (1x1 conv head
    on the last map, ``spatial=True``): the DCGAN discriminator's body with a linear head."""

    def __init__(self, image_shape: tuple[int, int, int], channels: int, out_dim: int, batchnorm: bool, spatial: bool):
        super().__init__()
        c, h, w = image_shape
        s, k = blocks.dcgan_layout(h, w)
        self.body, width = blocks.conv_body(c, channels, k, batchnorm)
        self.head = (
            nn.Conv2d(width, out_dim, 1) if spatial else nn.Sequential(nn.Flatten(), nn.Linear(width * s * s, out_dim))
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.body(x))


class JointDiscriminator(nn.Module):
    """D(x, z1?, z): logits (N,) that the pair came from the encoder.

    x (N, C, H, W) -> conv body -> (N, W, s, s), concatenated with z1 (N, c1, s, s) when
    hierarchical, flattened, [dropout]; z (N, latent_dim) -> LeakyReLU MLP; both joined by
    a LeakyReLU MLP with a linear head. ``input_dropout`` > 0 drops entries of x and z
    (z2) before the x body and the z MLP.
    """

    def __init__(
        self,
        image_shape,
        channels: int,
        latent_dim: int,
        z1_channels: int,
        hidden: int,
        depth: int,
        dropout: float,
        batchnorm: bool,
        spectral_norm: bool,
        input_dropout: float = 0.0,
    ):
        super().__init__()
        c, h, w = image_shape
        s, k = blocks.dcgan_layout(h, w)
        self.in_drop = nn.Dropout(input_dropout) if input_dropout > 0 else nn.Identity()
        self.x_body, width = blocks.conv_body(c, channels, k, batchnorm, spectral_norm)
        self.x_drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.z_body, z_width = blocks.leaky_mlp(latent_dim, hidden, depth, spectral_norm, dropout)
        self.joint = blocks.MLPDiscriminator(
            (width + z1_channels) * s * s + z_width, hidden, depth, spectral_norm=spectral_norm, dropout=dropout
        )

    def forward(self, x: Tensor, zs: list[Tensor]) -> Tensor:
        h = self.x_body(self.in_drop(x))
        if len(zs) == 2:
            h = torch.cat([h, zs[0]], 1)
        return self.joint(torch.cat([self.x_drop(h.flatten(1)), self.z_body(self.in_drop(zs[-1]))], 1))


# --------------------------------------------------------------------------- the model


class ALI(GAN):
    """Generator ``G`` (ModuleDict: ``"x"``: z or z1 -> x; latent_levels=2 also ``"z1"``: z2 -> z1),
    encoder ``E`` (``"z"``, or ``"z1"`` and ``"z2"``) and joint discriminator ``D``.

    Latents are lists ``[z]`` or ``[z1, z2]``: z, z2 (N, latent_dim); z1 (N, z1_channels, s, s).
    Images in the model's input space are in [-1, 1]; :meth:`sample`, :meth:`decode` and
    :meth:`reconstruct` return [0, 1].
    """

    config_class = ALIConfig

    def __init__(self, config: ALIConfig):
        super().__init__(config)  # validates, builds G and D (build_networks) and sets input_mode "signed"
        self.E = self.build_encoder()

    # ---------------------------------------------------------------- networks
    @property
    def stochastic(self) -> bool:
        return self.config.encoder == "stochastic"

    @property
    def z1_shape(self) -> tuple[int, int, int]:
        """(z1_channels, s, s): the shape of one z1 map (latent_levels=2)."""
        s, _ = blocks.dcgan_layout(*self.config.image_shape[1:])
        return (self.config.z1_channels, s, s)

    def build_networks(self) -> tuple[nn.Module, nn.Module]:
        c = self.config
        c.validate()
        two = 2 if self.stochastic else 1  # a Gaussian is (mean, log-variance)
        if c.latent_levels == 1:
            G = nn.ModuleDict(
                {"x": blocks.ConvGenerator(c.latent_dim, c.image_shape, c.channels, c.upsample, c.g_batchnorm)}
            )
            z1_channels = 0
        else:
            z1_dim = c.z1_channels * self.z1_shape[1] * self.z1_shape[2]
            G = nn.ModuleDict(
                {
                    "z1": blocks.MLPGenerator(c.latent_dim, two * z1_dim, c.hidden_dim, c.hidden_layers),
                    "x": blocks.ConvGenerator(z1_dim, c.image_shape, c.channels, c.upsample, c.g_batchnorm),
                }
            )
            z1_channels = c.z1_channels
        D = JointDiscriminator(
            c.image_shape,
            c.channels,
            c.latent_dim,
            z1_channels,
            c.hidden_dim,
            c.hidden_layers,
            c.dropout,
            c.d_batchnorm,
            c.spectral_norm,
            c.input_dropout,
        )
        blocks.dcgan_init(G)
        blocks.dcgan_init(D)
        return G, D

    def build_encoder(self) -> nn.Module:
        c = self.config
        two = 2 if self.stochastic else 1
        if c.latent_levels == 1:
            E = nn.ModuleDict(
                {"z": ConvEncoder(c.image_shape, c.channels, two * c.latent_dim, c.e_batchnorm, spatial=False)}
            )
        else:
            z1_dim = c.z1_channels * self.z1_shape[1] * self.z1_shape[2]
            body, width = blocks.leaky_mlp(z1_dim, c.hidden_dim, c.hidden_layers)
            E = nn.ModuleDict(
                {
                    "z1": ConvEncoder(c.image_shape, c.channels, two * c.z1_channels, c.e_batchnorm, spatial=True),
                    "z2": nn.Sequential(nn.Flatten(), body, nn.Linear(width, two * c.latent_dim)),
                }
            )
        blocks.dcgan_init(E)
        return E

    def _gaussian(self, out: Tensor, generator: torch.Generator | None, mean_only: bool) -> tuple[Tensor, Tensor]:
        """Raw network output -> (a draw, the mean): split into (mean, log_var) along dim 1 and
        reparameterise for a stochastic model; the output itself for a deterministic one."""
        if not self.stochastic:
            return out, out
        mean, log_var = out.chunk(2, dim=1)
        return (mean if mean_only else reparameterize(mean, log_var, generator)), mean

    def posterior(self, x: Tensor) -> list[tuple[Tensor, Tensor]]:
        """Parameters (mean, log_var) of each encoder conditional for images x in [-1, 1]:
        ``[q(z|x)]`` or ``[q(z1|x), q(z2|z1 = mean)]``; deterministic: log_var is None.
        Uses the modules' current mode (train/eval)."""
        self.check_images(x)
        names = ["z"] if self.config.latent_levels == 1 else ["z1", "z2"]
        out, h = [], x
        for name in names:
            raw = self.E[name](h)
            mean, log_var = raw.chunk(2, dim=1) if self.stochastic else (raw, None)
            out.append((mean, log_var))
            h = mean
        return out

    def infer(self, x: Tensor, generator: torch.Generator | None = None, mean_only: bool = False) -> list[Tensor]:
        """Encoder pass with graph: x (N, C, H, W) in [-1, 1] -> ``[z]`` or ``[z1, z2]``, each
        drawn from q (z2 from q(z2 | z1) at the drawn z1); means with ``mean_only``."""
        if self.config.latent_levels == 1:
            return [self._gaussian(self.E["z"](x), generator, mean_only)[0]]
        z1 = self._gaussian(self.E["z1"](x), generator, mean_only)[0]
        return [z1, self._gaussian(self.E["z2"](z1), generator, mean_only)[0]]

    def generate_pairs(
        self, z: Tensor, generator: torch.Generator | None = None, mean_only: bool = False
    ) -> tuple[Tensor, list[Tensor]]:
        """Generator pass with graph: top code z (N, latent_dim) -> (x in [-1, 1], ``[z]`` or
        ``[z1, z2]``) with z1 ~ p(z1 | z2) (its mean with ``mean_only``)."""
        if self.config.latent_levels == 1:
            return self._image(z), [z]
        z1 = self._gaussian(self.G["z1"](z), generator, mean_only)[0].reshape(z.shape[0], *self.z1_shape)
        return self._image(z1), [z1, z]

    def _image(self, code: Tensor) -> Tensor:
        """z (N, latent_dim) or z1 (N, c1, s, s) -> x (N, C, H, W) in [-1, 1]."""
        return torch.tanh(self.G["x"](code.flatten(1)))

    def generate(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        """Top code z (N, latent_dim) -> images (N, C, H, W) in [-1, 1] (z1 drawn with the global RNG)."""
        return self.generate_pairs(z)[0]

    def discriminate(self, x: Tensor, *, labels: Tensor | None = None, zs: list[Tensor] | None = None) -> Tensor:
        """Logits (N,) of D on pairs: images x (N, C, H, W) in [-1, 1] and latents ``[z]`` /
        ``[z1, z2]`` (default: the encoder's means for x). Unconditional: ``labels`` must be None."""
        self.check_images(x)
        self.check_labels(labels, x.shape[0])
        if zs is None:
            zs = self.infer(x, mean_only=True)
        return self.D(x, list(zs))

    # ---------------------------------------------------------------- training
    def train_steps(self) -> list[TrainStep]:
        """``[D] * d_steps + [(G, E)]``; the D steps share one optimiser, the extra ones ask
        for a fresh batch. G and E share one optimiser (step "generator-encoder")."""
        c = self.config
        d = TrainStep("discriminator", [self.D], self.d_step_loss)
        steps = [d] + [dataclasses.replace(d, new_batch=True) for _ in range(2, c.d_steps + 1)]
        steps.append(TrainStep("generator-encoder", [self.G, self.E], self.ge_step_loss))
        return steps

    def _pairs(self, x: Tensor) -> tuple[list[Tensor], Tensor, list[Tensor]]:
        """Encoder latents for x, and a generator pair for as many prior codes."""
        z_enc = self.infer(x)
        x_gen, z_gen = self.generate_pairs(self.latent(x.shape[0]))
        return z_enc, x_gen, z_gen

    def d_step_loss(self, batch: Batch) -> dict:
        """D's loss (:meth:`GAN.d_objective`): encoder pairs (x, E(x)) are its "real" data
        (logged as ``d/real``), generator pairs (G(z), z) its "fake" (``d/fake``). Both are
        made without a graph, so this loss cannot reach G or E. A penalty (R1, WGAN-GP)
        takes its gradient with respect to the whole pair: x and every z, packed into one
        flat vector per example."""
        x = batch["x"]
        with torch.no_grad():
            z_enc, x_gen, z_gen = self._pairs(x)
        shapes = [x.shape[1:]] + [z.shape[1:] for z in z_enc]
        sizes = [s.numel() for s in shapes]

        def d_fn(flat: Tensor) -> Tensor:
            parts = [p.reshape(-1, *s) for p, s in zip(flat.split(sizes, 1), shapes)]
            return self.D(parts[0], parts[1:])

        def pack(x_: Tensor, zs: list[Tensor]) -> Tensor:
            return torch.cat([t.flatten(1) for t in [x_] + list(zs)], 1)

        return self.d_objective(d_fn, pack(x, z_enc), pack(x_gen, z_gen))

    def cycle_loss(self, x: Tensor, z_top: Tensor) -> Tensor:
        """ALICE's explicit cycle consistency (Li et al. 2017, "ALICE: Towards Understanding
        Adversarial Learning for Joint Distribution Matching", with an l2 norm): the
        mean over images and pixels of ``(x - G(z))^2`` with ``z`` the encoder's top code for
        images x (N, C, H, W) in [-1, 1] (a draw from q for a stochastic encoder; through a
        draw of z1 ~ p(z1 | z2) on a 2-level model). A scalar in [0, 4], with graph."""
        return (x - self.generate_pairs(z_top)[0]).pow(2).mean()

    def ge_step_loss(self, batch: Batch) -> dict:
        """G and E's loss (:func:`ge_loss`) on fresh pairs judged by D (frozen by the Trainer),
        plus ``cycle_weight`` times :meth:`cycle_loss` when that weight is > 0."""
        c = self.config
        z_enc, x_gen, z_gen = self._pairs(batch["x"])
        enc_logits = self.D(batch["x"], z_enc)
        gen_logits = self.D(x_gen, z_gen)
        loss = ge_loss(c.objective, enc_logits, gen_logits)
        total, extra = loss, {}
        if c.cycle_weight > 0:
            cycle = self.cycle_loss(batch["x"], z_enc[-1])
            total, extra = loss + c.cycle_weight * cycle, {"ge/cycle": cycle.detach()}
        if self._tracking() and self._streak("g", float(loss.detach()) > c.collapse_g_loss):
            raise TrainingError(
                f"the ALI generator/encoder loss exploded: above {c.collapse_g_loss:g} for {c.collapse_patience} "
                f"steps (now {float(loss.detach()):.3g}); try a lower train.step_lr.discriminator, model.penalty=r1 or "
                "raise model.collapse_g_loss / model.collapse_patience"
            )
        return {
            "loss": total,
            "ge/loss": loss.detach(),
            **extra,
            "ge/d_encoder": losses.d_output(c.objective, enc_logits.detach()).mean(),
            "ge/d_generator": losses.d_output(c.objective, gen_logits.detach()).mean(),
        }

    # ---------------------------------------------------------------- inference and sampling
    def _eval(self, fn):
        """Run fn() with every module in eval mode (batch norm's running statistics, no
        dropout) under inference mode, restoring the modes afterwards."""
        was_training = self.training
        self.eval()
        try:
            with torch.inference_mode():
                return fn()
        finally:
            self.train(was_training)

    def encode(
        self, x: Tensor, *, level: int | None = None, sample: bool = False, generator: torch.Generator | None = None
    ) -> Tensor:
        """Images x (N, C, H, W) in [-1, 1] (``model.prepare`` of [0, 1] data) -> codes: the
        posterior mean (a reparameterised draw with ``sample=True``) of the top latent,
        (N, latent_dim), or of z1 with ``level=1`` on a 2-level model, (N, c1, s, s)."""
        self.check_images(x)
        level = self._level(level)
        zs = self._eval(lambda: self.infer(x.to(self.device), generator, mean_only=not sample))
        return zs[level - 1]

    def _level(self, level: int | None) -> int:
        if level is None:
            return self.config.latent_levels
        if level not in range(1, self.config.latent_levels + 1):
            raise ValueError(
                f"level must be in 1..{self.config.latent_levels} for a "
                f"{self.config.latent_levels}-level model, got {level}"
            )
        return level

    def decode(self, z: Tensor, *, labels: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        """Codes -> images (N, C, H, W) in [0, 1]: top codes (N, latent_dim) through the mean of
        p(z1 | z2) when hierarchical, or z1 maps (N, c1, s, s) of a 2-level model straight to x.
        Deterministic: ``generator`` is ignored."""
        from ..data.transforms import from_signed

        self.check_labels(labels, len(z))
        z = torch.as_tensor(z, dtype=torch.float32, device=self.device)
        if z.dim() == 2 and z.shape[1] == self.config.latent_dim:
            fn = lambda: self.generate_pairs(z, mean_only=True)[0]  # noqa: E731
        elif self.config.latent_levels == 2 and tuple(z.shape[1:]) == self.z1_shape:
            fn = lambda: self._image(z)  # noqa: E731
        else:
            want = f"(N, {self.config.latent_dim})" + (
                f" or z1 maps (N, {', '.join(map(str, self.z1_shape))})" if self.config.latent_levels == 2 else ""
            )
            raise ValueError(f"expected latent codes of shape {want}, got {tuple(z.shape)}")
        return from_signed(self._eval(fn)).clamp(0, 1)

    def reconstruct(self, x: Tensor, *, level: int | None = None) -> Tensor:
        """decode(encode(x)): images x in [-1, 1] -> reconstructions (N, C, H, W) in [0, 1], through
        the top code's posterior mean (``level=1``: through z1's, on a 2-level model)."""
        return self.decode(self.encode(x, level=level))

    def sample(self, n: int, *, labels: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        """n images (n, C, H, W) in [0, 1]: z ~ N(0, I) (and z1 ~ p(z1 | z2)) from ``generator``."""
        from ..data.transforms import from_signed

        self.check_labels(labels, n)
        z = self.latent(n, generator=generator)
        x = self._eval(lambda: self.generate_pairs(z, generator)[0])
        return from_signed(x).clamp(0, 1)

    def latent(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        """n draws of the top code z ~ N(0, I), (n, latent_dim), from ``generator`` (any device)."""
        return _randn(torch.empty(n, self.config.latent_dim, device=self.device), generator)
