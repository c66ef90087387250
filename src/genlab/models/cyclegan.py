"""CycleGAN: unpaired image-to-image translation (Zhu, Park, Isola & Efros, 2017,
"Unpaired Image-to-Image Translation using Cycle-Consistent Adversarial Networks",
arXiv:1703.10593).

Two generators, ``G: A -> B`` and ``F: B -> A``, and two discriminators, ``D_B``
(real B vs ``G(a)``) and ``D_A`` (real A vs ``F(b)``), trained on images of two
domains that are *not* paired. The full objective (paper eq. 3, plus the identity
term of sec. 5.2)::

    L(G, F, D_A, D_B) = L_GAN(G, D_B, A, B) + L_GAN(F, D_A, B, A)
                        + lambda_cyc * L_cyc(G, F) + lambda_id * lambda_cyc * L_identity(G, F)
    L_cyc(G, F)       = E_a ||F(G(a)) - a||_1 + E_b ||G(F(b)) - b||_1           (eq. 2)
    L_identity(G, F)  = E_b ||G(b) - b||_1 + E_a ||F(a) - a||_1

with the least-squares adversarial loss the paper uses (sec. 4: G minimises
``E_a[(D_B(G(a)) - 1)^2]``, D_B minimises ``E_b[(D_B(b) - 1)^2] + E_a[D_B(G(a))^2]``,
halved as in the reference code). ``||.||_1`` is the mean absolute error per pixel
in [-1, 1] units (the reference implementation's ``nn.L1Loss``). One iteration
(:meth:`CycleGAN.train_steps`) is the generators' step (G and F together, D frozen)
then the discriminators' step (D_A and D_B together, G and F frozen; fakes are made
anew without a graph by the just-updated generators; the reference code reuses the
fakes of the generator step, made one update earlier).

Networks (paper, appendix 7.2, sized down for 28x28 on a CPU): ResNet generators
``c7s1-k, d2k, d4k, R4k x blocks, u2k, uk, c7s1-C`` with reflection padding,
instance norm and a tanh output; 70x70-style PatchGAN discriminators
(4x4 convolutions, LeakyReLU 0.2, instance norm but on the first layer) that score
overlapping patches; weights ~ N(0, 0.02). With the defaults on 28x28 a patch is
34x34 pixels (the whole digit) and D outputs a 5x5 map of scores. Adam, lr 2e-4,
betas (0.5, 0.999), as in the paper (:data:`TRAIN_DEFAULTS`: ``train.lr``, ``train.betas``).

Left out: the paper's history buffer of 50 generated images for the discriminators
(with it, resuming a run would also have to restore the buffer; this model keeps no
such state, so a resumed run is bit-identical to an uninterrupted one); the linear
learning-rate decay of the paper is ``train.lr_schedule`` (cosine here).

Data: an unpaired data set (``--data unpaired:<A>,<B>``, :mod:`genlab.data.unpaired`)
whose images stack domain A and domain B along channels: ``image_shape`` is
``(2C, H, W)`` and each domain has ``C`` channels. The objective is a sum of terms
on A images and terms on B images, so which B shares a row with which A never
matters. Models work in [-1, 1] (``input_mode = "signed"``).

Use :meth:`CycleGAN.translate` (``x`` in [0, 1], ``"a2b"`` or ``"b2a"``). The
contract's :meth:`CycleGAN.sample` translates stored real images: the model keeps
the last ``exemplars`` training images of both domains (uint8 buffers, saved with
the weights) and ``sample(n)`` returns ``F(b)`` in channels ``[:C]`` and ``G(a)`` in
``[C:]`` (the data's layout) for n of them drawn at random. A model that has seen
no training image translates uniform noise instead (only useful to check shapes).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .. import losses
from ..config import DEFAULT_DATA as DIGITS
from ..config import ModelConfig
from ..data.transforms import from_signed, to_signed, to_uint8
from ..distributions import draw
from ..errors import ConfigError
from ..nn.gan_blocks import dcgan_init
from ..presets import Preset
from .base import Batch, GenerativeModel, TrainStep

DIRECTIONS = ("a2b", "b2a")

#: the data of ``genlab train cyclegan`` when no --data is given (embedded, no download)
DEFAULT_DATA = f"unpaired:{DIGITS},{DIGITS}+invert"

#: The training defaults of the registry entry (the user's overrides win): Adam lr 2e-4,
#: betas (0.5, 0.999) as in the paper; batch 32 (the paper uses 1) and 600 iterations, a few
#: CPU minutes. On MNIST <-> inverted MNIST, 300 such iterations already keep the digit in 97%
#: of held-out translations (see benchmarks/cyclegan_mnist.py).
TRAIN_DEFAULTS = {"lr": 2e-4, "betas": (0.5, 0.999), "batch_size": 32, "steps": 600}


@dataclass
class CycleGANConfig(ModelConfig):
    """``image_shape`` = (2C, H, W): both domains stacked along channels (the Trainer
    copies it from the unpaired data set); each domain has C channels."""

    image_shape: tuple[int, int, int] = (2, 28, 28)
    g_channels: int = 8  # k: width of the generators' first layer (64 in the paper)
    g_downsamplings: int = 2  # stride-2 convolutions before the residual blocks (2 in the paper)
    g_blocks: int = 3  # residual blocks (6 at 128x128, 9 at 256x256 in the paper)
    d_channels: int = 16  # width of the discriminators' first layer (64 in the paper)
    d_downsamplings: int = 2  # stride-2 convolutions of the PatchGAN (3 in the paper: 70x70 patches)
    objective: str = "least-squares"  # the paper's; any of genlab.losses.OBJECTIVES works
    lambda_cyc: float = 10.0  # lambda in eq. 3
    lambda_id: float = 0.0  # identity loss weight, relative to lambda_cyc (the paper uses 0.5 for painting -> photo)
    exemplars: int = 64  # training images kept (per domain) for sample()

    def validate(self) -> None:
        """Raise ConfigError on a bad choice (called on build)."""
        super().validate()
        losses.check_objective(self.objective)
        if len(self.image_shape) != 3:
            raise ConfigError(
                "model.image_shape must be (2C, H, W) "
                f"(two domains stacked along channels), got {tuple(self.image_shape)}"
            )
        c2, h, w = self.image_shape
        if c2 % 2:
            raise ConfigError(
                "cyclegan needs unpaired two-domain data (both domains stacked along channels, an even count), but the "
                f"data have {c2} channel(s); train on --data unpaired:<A>,<B>, e.g. --data {DEFAULT_DATA}"
            )
        self.check_unconditional("cyclegan")
        self.check_positive("g_channels", "d_channels", "exemplars")
        if self.g_blocks < 0 or self.g_downsamplings < 0 or self.d_downsamplings < 1:
            raise ConfigError("model.g_blocks and model.g_downsamplings must be >= 0, model.d_downsamplings >= 1")
        f = 2**self.g_downsamplings
        if h % f or w % f or h // f < 2 or w // f < 2:
            raise ConfigError(
                f"the generators halve {h}x{w} images {self.g_downsamplings} times and double them back: the sides "
                f"must be multiples of {f} with at least 2 pixels left (e.g. 28x28 with 2); change "
                "model.g_downsamplings or resize the data"
            )
        f = 2**self.d_downsamplings
        if h // f < 3 or w // f < 3:
            raise ConfigError(
                f"the PatchGAN halves {h}x{w} images {self.d_downsamplings} times and needs at least 3x3 left "
                f"(it outputs a {h // f - 2}x{w // f - 2} map); lower model.d_downsamplings"
            )
        if self.lambda_cyc < 0 or self.lambda_id < 0:
            raise ConfigError(
                f"model.lambda_cyc and model.lambda_id must be >= 0, got {self.lambda_cyc} and {self.lambda_id}"
            )


#: The presets of ``genlab train cyclegan --preset NAME``: the paper's.
PRESETS: dict[str, Preset] = {
    "paper": Preset(
        {
            "model.image_shape": (6, 256, 256),
            "model.g_channels": 64,
            "model.g_downsamplings": 2,
            "model.g_blocks": 9,
            "model.d_channels": 64,
            "model.d_downsamplings": 3,
            "model.objective": "least-squares",
            "model.lambda_cyc": 10.0,
            "model.lambda_id": 0.0,
            "train.batch_size": 1,
            "train.lr": 2e-4,
            "train.betas": (0.5, 0.999),
            "train.steps": 266_800,
        },
        source=(
            "Zhu et al. 2017 (CycleGAN), section 4 and appendix 7.1-7.2: generator c7s1-64, d128, d256, 9 x R256, "
            "u128, u64, c7s1-3 at 256x256; 70x70 PatchGAN (C64-C128-C256-C512); least squares; lambda = 10; Adam "
            "lr 2e-4, beta1 0.5, batch 1; 200 epochs of horse2zebra's larger domain (1,334 images) = "
            "266,800 steps. Not in genlab: the data "
            "(give it with --data unpaired:folder:<A>,folder:<B>); the history of 50 "
            "generated images; the linear decay of the rate to 0 over the last 100 epochs (genlab: constant, or "
            "train.lr_schedule=cosine). The paper reports FCN scores and AMT studies, not FID. Parameters: G and F "
            "11,378,179 each, D_A and D_B 2,764,737 each: the appendix's layers exactly."
        ),
    ),
}


# --------------------------------------------------------------------------- networks


class ResidualBlock(nn.Module):
    """``x + [pad, conv3x3, IN, ReLU, pad, conv3x3, IN](x)``, shape-preserving (paper's R_k)."""

    def __init__(self, width: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(width, width, 3),
            nn.InstanceNorm2d(width),
            nn.ReLU(),
            nn.ReflectionPad2d(1),
            nn.Conv2d(width, width, 3),
            nn.InstanceNorm2d(width),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """(N, C, H, W) in [-1, 1] -> (N, C, H, W) in [-1, 1] (tanh): ``c7s1-k``, ``downsamplings``
    stride-2 3x3 convolutions doubling the width, ``blocks`` residual blocks, as many
    stride-2 transposed convolutions back, ``c7s1-C``. Instance norm and ReLU inside."""

    def __init__(self, channels: int, width: int, downsamplings: int, blocks: int):
        super().__init__()
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(channels, width, 7),
            nn.InstanceNorm2d(width),
            nn.ReLU(),
        ]
        w = width
        for _ in range(downsamplings):
            layers += [nn.Conv2d(w, 2 * w, 3, stride=2, padding=1), nn.InstanceNorm2d(2 * w), nn.ReLU()]
            w *= 2
        layers += [ResidualBlock(w) for _ in range(blocks)]
        for _ in range(downsamplings):
            layers += [
                nn.ConvTranspose2d(w, w // 2, 3, stride=2, padding=1, output_padding=1),
                nn.InstanceNorm2d(w // 2),
                nn.ReLU(),
            ]
            w //= 2
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(w, channels, 7), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class PatchDiscriminator(nn.Module):
    """PatchGAN: (N, C, H, W) in [-1, 1] -> a map of patch scores (N, 1, H/2^d - 2, W/2^d - 2).

    ``d`` stride-2 4x4 convolutions (width doubling), one stride-1 4x4 convolution, then a
    stride-1 4x4 convolution to one channel; LeakyReLU(0.2), instance norm on all but
    the first layer. Each score looks at a ``(9 * 2^d - 2)``-pixel square patch: 34x34
    for d = 2, 70x70 for d = 3 (the paper's)."""

    def __init__(self, channels: int, width: int, downsamplings: int):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(channels, width, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
        w = width
        for _ in range(downsamplings - 1):
            layers += [nn.Conv2d(w, 2 * w, 4, stride=2, padding=1), nn.InstanceNorm2d(2 * w), nn.LeakyReLU(0.2)]
            w *= 2
        layers += [nn.Conv2d(w, 2 * w, 4, stride=1, padding=1), nn.InstanceNorm2d(2 * w), nn.LeakyReLU(0.2)]
        layers += [nn.Conv2d(2 * w, 1, 4, stride=1, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def l1(x: Tensor, y: Tensor) -> Tensor:
    """``||x - y||_1`` as the mean absolute difference per element (a scalar)."""
    return (x - y).abs().mean()


# --------------------------------------------------------------------------- the model


class CycleGAN(GenerativeModel):
    """G: A -> B, F: B -> A, D_A, D_B. Batches hold (N, 2C, H, W) in [-1, 1]: A then B."""

    config_class = CycleGANConfig
    input_mode = "signed"

    def __init__(self, config: CycleGANConfig):
        super().__init__(config)
        config.validate()
        c2, h, w = config.image_shape
        c = self.domain_channels = c2 // 2
        self.G = ResnetGenerator(c, config.g_channels, config.g_downsamplings, config.g_blocks)  # A -> B
        self.F = ResnetGenerator(c, config.g_channels, config.g_downsamplings, config.g_blocks)  # B -> A
        self.D_A = PatchDiscriminator(c, config.d_channels, config.d_downsamplings)
        self.D_B = PatchDiscriminator(c, config.d_channels, config.d_downsamplings)
        for m in (self.G, self.F, self.D_A, self.D_B):
            dcgan_init(m)  # N(0, 0.02), as in the paper's code
        # the last training images of both domains (uint8, the data's layout), for sample()
        self.register_buffer("exemplar_images", torch.zeros(config.exemplars, c2, h, w, dtype=torch.uint8))
        self.register_buffer("exemplars_seen", torch.zeros((), dtype=torch.int64))

    # ---------------------------------------------------------------- helpers
    def split(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(N, 2C, H, W) -> (a, b), each (N, C, H, W)."""
        self.check_images(x)
        c = self.domain_channels
        return x[:, :c], x[:, c:]

    def patch_scores(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Stacked images (N, 2C, H, W) in [-1, 1] -> (D_A(a), D_B(b)), patch-score maps (N, 1, h, w)."""
        a, b = self.split(x)
        return self.D_A(a), self.D_B(b)

    def adversarial(self, scores: Tensor) -> Tensor:
        """A generator's L_GAN on D's scores of its fakes. losses.py's least squares carries
        Mao et al.'s 1/2; the CycleGAN paper (sec. 4) minimises E[(D(G(a)) - 1)^2], so x2
        keeps lambda_cyc on the paper's scale."""
        g = losses.g_loss(self.config.objective, scores)
        return 2 * g if self.config.objective == "least-squares" else g

    # ---------------------------------------------------------------- training
    def train_steps(self) -> list[TrainStep]:
        """The generators' step (G and F), then the discriminators' step (D_A and D_B)."""
        return [
            TrainStep("generators", [self.G, self.F], self.generator_loss),
            TrainStep("discriminators", [self.D_A, self.D_B], self.discriminator_loss),
        ]

    def generator_loss(self, batch: Batch) -> dict:
        """``L_GAN(G, D_B) + L_GAN(F, D_A) + lambda_cyc (L_cyc + lambda_id L_identity)``."""
        c = self.config
        real_a, real_b = self.split(batch["x"])
        fake_b, fake_a = self.G(real_a), self.F(real_b)
        gan_g = self.adversarial(self.D_B(fake_b))  # G: A -> B fools D_B
        gan_f = self.adversarial(self.D_A(fake_a))  # F: B -> A fools D_A
        cyc_a, cyc_b = l1(self.F(fake_b), real_a), l1(self.G(fake_a), real_b)  # forward and backward cycles
        loss = gan_g + gan_f + c.lambda_cyc * (cyc_a + cyc_b)
        out = {
            "g/gan_ab": gan_g.detach(),
            "g/gan_ba": gan_f.detach(),
            "g/cycle_a": cyc_a.detach(),
            "g/cycle_b": cyc_b.detach(),
        }
        if c.lambda_id > 0:
            identity = l1(self.G(real_b), real_b) + l1(self.F(real_a), real_a)
            loss = loss + c.lambda_id * c.lambda_cyc * identity
            out["g/identity"] = identity.detach()
        if self.training and torch.is_grad_enabled():
            self._remember(batch["x"])
        out["g/loss"] = loss.detach()
        out["loss"] = loss
        return out

    def discriminator_loss(self, batch: Batch) -> dict:
        """``L_D_A + L_D_B`` on real images and fakes made without a graph (no gradient can
        reach G or F from here)."""
        obj = self.config.objective
        real_a, real_b = self.split(batch["x"])
        with torch.no_grad():
            fake_b, fake_a = self.G(real_a), self.F(real_b)
        real_a_scores, fake_a_scores = self.D_A(real_a), self.D_A(fake_a)
        real_b_scores, fake_b_scores = self.D_B(real_b), self.D_B(fake_b)
        d_a = losses.d_loss(obj, real_a_scores, fake_a_scores)
        d_b = losses.d_loss(obj, real_b_scores, fake_b_scores)
        out = {"d/loss_a": d_a.detach(), "d/loss_b": d_b.detach()}
        for name, s in (
            ("d/real_a", real_a_scores),
            ("d/fake_a", fake_a_scores),
            ("d/real_b", real_b_scores),
            ("d/fake_b", fake_b_scores),
        ):
            out[name] = losses.d_output(obj, s.detach()).mean()
        out["loss"] = d_a + d_b
        return out

    @torch.no_grad()
    def _remember(self, x: Tensor) -> None:
        """Write the batch's images (in [-1, 1]) into the ring buffer of exemplars."""
        k, n = self.exemplar_images.shape[0], x.shape[0]
        keep = min(k, n)  # only the last k of a larger batch survive
        pos = (self.exemplars_seen + n - keep + torch.arange(keep, device=self.exemplars_seen.device)) % k
        self.exemplar_images[pos] = to_uint8(from_signed(x[n - keep :])).to(self.exemplar_images.device)
        self.exemplars_seen += n

    # ---------------------------------------------------------------- translation
    def translate(self, x: Tensor, direction: str) -> Tensor:
        """Translate images (N, C, H, W) in [0, 1]: ``"a2b"`` applies G, ``"b2a"`` applies F.
        Returns (N, C, H, W) in [0, 1]."""
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be 'a2b' (G: A -> B) or 'b2a' (F: B -> A), got {direction!r}")
        c2, h, w = self.config.image_shape
        want = (self.domain_channels, h, w)
        if not isinstance(x, Tensor) or x.dim() != 4 or tuple(x.shape[1:]) != want:
            raise ValueError(
                f"translate expects one domain's images of shape (N, {want[0]}, {h}, {w}) in "
                f"[0, 1], got {tuple(getattr(x, 'shape', ()))}"
            )
        if x.numel() and (x.min() < 0 or x.max() > 1):
            raise ValueError("translate expects images in [0, 1]")
        net = self.G if direction == "a2b" else self.F
        was_training = net.training
        net.eval()
        try:
            with torch.inference_mode():
                y = net(to_signed(x.float().to(self.device)))
        finally:
            net.train(was_training)
        return from_signed(y).clamp(0, 1)

    def sample(self, n: int, *, labels: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        """n translations of stored training images, (n, 2C, H, W) in [0, 1]: ``F(b)`` in
        channels [:C], ``G(a)`` in [C:] (a and b drawn independently from the exemplars;
        uniform noise inputs if the model has seen no training images). For your own
        images use :meth:`translate`."""
        self.check_labels(labels, n)
        c = self.domain_channels
        seen = int(self.exemplars_seen.clamp(max=self.exemplar_images.shape[0]))
        if seen == 0:
            x = draw(torch.rand, n, *self.config.image_shape, generator=generator, device=self.device)
        else:
            idx_a = draw(torch.randint, seen, (n,), generator=generator, device=self.device)
            idx_b = draw(torch.randint, seen, (n,), generator=generator, device=self.device)
            x = torch.cat([self.exemplar_images[idx_a, :c], self.exemplar_images[idx_b, c:]], 1).float() / 255
        return torch.cat([self.translate(x[:, c:], "b2a"), self.translate(x[:, :c], "a2b")], 1)
