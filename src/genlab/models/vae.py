"""The variational autoencoder (Kingma & Welling, 2014, "Auto-Encoding Variational
Bayes", arXiv:1312.6114), with the importance-weighted likelihood estimate of
Burda, Grosse & Salakhutdinov (2016, "Importance Weighted Autoencoders",
arXiv:1509.00519), and optionally an inverse autoregressive flow posterior
(Kingma, Salimans, Jozefowicz, Chen, Sutskever & Welling, 2016, "Improving
Variational Inference with Inverse Autoregressive Flow", arXiv:1606.04934).

The model
---------
A latent code z in R^d with prior p(z) = N(0, I) and a decoder p(x | z) (a
convolutional network giving the parameters of a pixel-wise likelihood). The
encoder q(z | x) = N(mu(x), diag(sigma^2(x))) approximates the posterior.
Training maximises the evidence lower bound (ELBO), per example, in nats::

    log p(x) >= ELBO(x) = E_{q(z|x)}[ log p(x | z) ] - KL( q(z|x) || N(0, I) )

* the reconstruction term is estimated with one sample through the
  reparameterisation z = mu + sigma * eps, eps ~ N(0, I), so its gradient
  flows into mu and sigma;
* the KL term is in closed form: 0.5 * sum_j (mu_j^2 + sigma_j^2 - 1 - log sigma_j^2).

Posteriors (``posterior``)
--------------------------
* ``"gaussian"`` (default): q(z|x) = N(mu(x), diag(sigma^2(x))) as above.
* ``"iaf"``: the encoder also emits a context vector h(x) (``iaf_context``
  numbers), and z_0 = mu + sigma * eps goes through ``iaf_steps`` IAF steps
  (``genlab.nn.iaf``), each [m, s] = AR-NN(z, h), sigma_t = sigmoid(s),
  z <- sigma_t * z + (1 - sigma_t) * m, alternating the variable order. Then::

      log q(z_T|x) = sum_i [ -eps_i^2 / 2 - log(2 pi) / 2 - log sigma_{0,i} ] - sum_t sum_i log sigma_{t,i}

  and the KL term has no closed form: it is the one-sample estimate
  ``kl = log q(z_T|x) - log p(z_T)`` at the same z_T as the reconstruction term,
  so ELBO(x) ~ log p(x|z_T) + log p(z_T) - log q(z_T|x) (unbiased).

The training loss is the batch mean of ``-recon + kl_weight * kl``, where
kl_weight = beta (beta-VAE, Higgins et al. 2017; beta = 1 is the ELBO), ramped
linearly from 0 over the first ``kl_warmup_steps`` steps if asked. With
``train_iw_samples`` = k > 1 it is instead the batch mean of -L_k(x), the IWAE
bound below with k draws (Burda et al. 2016): the same model, trained on a tighter bound.

Networks: ``encoder="conv"`` / ``decoder="upsample"`` or ``"transposed"`` use the
stride-2 stages of ``channels``; ``"mlp"`` uses fully connected layers of
``mlp_hidden`` (the decoder mirrors them), as in the IWAE paper's 784-200-200-50 model.

Likelihoods (``likelihood``)
----------------------------
* ``"bernoulli"`` (default): dynamically binarised data (``input_mode="binary"``),
  x in {0, 1}; decode(z) gives the pixel probabilities.
* ``"logistic"``: a discretised logistic with 256 levels on 8-bit data in [0, 1]
  (``input_mode="unit"``); a proper discrete likelihood, so log p(x) is
  comparable across models. The decoder outputs a mean and a log-scale per pixel.
* ``"gaussian"``: N(mean, sigma^2) per pixel with a learned log-variance (one per
  pixel, or one global value: ``gaussian_variance``) on uniformly dequantised
  data (``input_mode="dequantize"``). This is a *density* on [0, 1]^D; a
  discrete image owns a cell of volume 256^-D, so the discrete log-likelihood is
  bounded by ``log p_continuous - D * log(256)`` nats (Theis et al., 2016).
  :meth:`VAE.log_prob` returns the continuous value; add ``log_prob_offset``
  (-D * log(256)) before comparing with the other likelihoods.

Likelihood estimate
-------------------
``log_prob(x, iw_samples=k)`` is the IWAE bound

    log p(x) >= L_k(x) = E[ log (1/k) sum_i p(x, z_i) / q(z_i | x) ],  z_i ~ q(z|x),

a lower bound (in expectation) that tightens monotonically as k grows and
converges to log p(x); L_1 is the ELBO.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .. import distributions as D
from ..config import ModelConfig
from ..errors import ConfigError
from ..nn.blocks import TransposedConvUp, UpsampleConv, downsampled_sizes, mlp
from ..nn.iaf import IAF
from ..presets import AND_BUDGET, MNIST_BINARY, Preset, Published, budget
from .base import GenerativeModel, TrainStep


@dataclass
class VAEConfig(ModelConfig):
    """Configuration of :class:`VAE`.

    ``channels`` gives one stride-2 encoder stage per entry (and the mirrored
    decoder stage): (32, 64) turns 28x28 into a 7x7 map. Use more entries for
    larger images, e.g. (32, 64, 128, 256) for 64x64 (a 4x4 map).
    """

    latent_dim: int = 32
    channels: tuple[int, ...] = (32, 64)
    hidden_dim: int = 256  # fully connected layer between the conv map and z (0: none)
    encoder: str = "conv"  # "conv" (the stride-2 stages of channels) or "mlp" (fully connected layers of mlp_hidden)
    decoder: str = "upsample"  # "upsample" (nearest + 3x3 conv), "transposed" (stride-2 transposed conv) or "mlp"
    mlp_hidden: tuple[int, ...] = (512, 512)  # widths of the "mlp" encoder's layers; the "mlp" decoder mirrors them
    likelihood: str = "bernoulli"  # "bernoulli", "logistic" (256 levels) or "gaussian" (dequantised)
    gaussian_variance: str = "pixel"  # learned log-variance: "pixel" (one per pixel) or "global"
    activation: str = "elu"  # "elu", "relu", "silu" or "leaky_relu"
    beta: float = 1.0  # weight of the KL term (1.0: the ELBO)
    kl_warmup_steps: int = 0  # ramp the KL weight linearly 0 -> beta over this many training steps
    train_iw_samples: int = 1  # k > 1 trains on the IWAE bound with k samples (Burda et al. 2016); 1: the ELBO
    min_log_scale: float = -7.0  # floor of the logistic log-scale / 0.5 * Gaussian log-variance
    channels_last: bool = True  # NHWC memory layout: about 2x faster convolutions on CPU
    posterior: str = "gaussian"  # "gaussian" (diagonal) or "iaf" (diagonal Gaussian + inverse autoregressive flow)
    iaf_steps: int = 2  # IAF steps T (posterior="iaf")
    iaf_hidden_dim: int = 256  # width of the two hidden layers of each step's AR-NN (posterior="iaf")
    iaf_context: int = 64  # size of the context h(x) the encoder feeds to every step (posterior="iaf"; 0: none)

    def validate(self) -> None:
        super().validate()
        self.check_unconditional("the VAE")
        for name, allowed in {
            "likelihood": _INPUT_MODES,
            "encoder": ("conv", "mlp"),
            "decoder": ("upsample", "transposed", "mlp"),
            "activation": _ACTIVATIONS,
            "gaussian_variance": ("pixel", "global"),
            "posterior": ("gaussian", "iaf"),
        }.items():
            self.check_choice(name, allowed)
        if not self.channels or min(self.channels) < 1:
            raise ConfigError(
                "model.channels must list one positive width per encoder stage, "
                f"e.g. [32, 64], got {list(self.channels)}"
            )
        self.check_positive("latent_dim", "train_iw_samples")
        if "mlp" in (self.encoder, self.decoder) and (not self.mlp_hidden or min(self.mlp_hidden) < 1):
            raise ConfigError(
                f"model.mlp_hidden must list one positive width per layer, e.g. [512, 512], got {list(self.mlp_hidden)}"
            )
        if self.train_iw_samples > 1 and (self.beta != 1.0 or self.kl_warmup_steps):
            raise ConfigError(
                f"model.train_iw_samples > 1 trains on the IWAE bound, which has no KL weight: model.beta must be 1 "
                f"and model.kl_warmup_steps 0, got {self.beta} and {self.kl_warmup_steps}"
            )
        if self.hidden_dim < 0 or self.kl_warmup_steps < 0 or self.beta < 0:
            raise ConfigError(
                f"model.hidden_dim (0: none), model.kl_warmup_steps and model.beta must be >= 0, "
                f"got {self.hidden_dim}, {self.kl_warmup_steps}, {self.beta}"
            )
        if self.posterior == "iaf":
            self.check_positive("iaf_steps", "iaf_hidden_dim")
            if self.iaf_context < 0:
                raise ConfigError(f"model.iaf_context must be >= 0 (0: none), got {self.iaf_context}")


#: Training defaults of the registry entry: TrainConfig's own.
TRAIN_DEFAULTS: dict = {}

_VAE_10MIN = {
    **MNIST_BINARY,
    "model.encoder": "mlp",
    "model.decoder": "mlp",
    "model.mlp_hidden": (512, 512),
    "model.latent_dim": 32,
    "train.batch_size": 128,
    "train.lr": 2e-3,
    "train.warmup_steps": 100,
    "train.ema_decay": 0.999,
}
#: mnist-10min on a CPU with bfloat16 instructions: autocast, batches of 1024, Adam 3e-3
_BF16 = {"train.amp": True, "train.batch_size": 1024, "train.lr": 3e-3}
#: the IAF posterior of the budget presets: 2 steps, AR-NN 256x2, context 64
_IAF = {"model.posterior": "iaf", "model.iaf_steps": 2, "model.iaf_hidden_dim": 256, "model.iaf_context": 64}

#: The presets of ``genlab train vae --preset NAME``: the quick start (applied to mnist-5k, the default data),
#: the papers' settings (``paper``: IWAE; ``paper-iaf``) and the networks sized for 10 CPU-minutes on binarised
#: MNIST (``mnist-10min...``, measured by benchmarks/vae_mnist.py and vae_iaf_mnist.py).
PRESETS: dict[str, Preset] = {
    # ``genlab train vae`` on its default data (the quick start): the fully connected networks of
    # mnist-10min (about 5x faster per image than the conv networks on a CPU, so 2.5x the steps in
    # half the time), with an EMA whose horizon (200 steps) is short against the run.
    "quickstart": Preset(
        {
            "model.encoder": "mlp",
            "model.decoder": "mlp",
            "model.mlp_hidden": (512, 512),
            "train.lr": 2e-3,
            "train.warmup_steps": 100,
            "train.ema_decay": 0.995,
            "train.steps": 5000,
        },
        data=("mnist-5k",),
        source=(
            "measured for the quick start on an AMD EPYC (no AVX512-BF16/AMX), 1 thread each, batch 128, test NLL by "
            "IWAE k=100 on the 500 mnist-5k test images (benchmarks/README.md, 'Quick-start runs'): these MLPs, 5,000 "
            "steps: 96.5 nats in 114 CPU-s (a cosine schedule: 96.1); the conv networks at equal CPU "
            "(1,000 steps, 112 CPU-s): 96.3; the conv networks' 2,000 steps, the default before: 93.7 in 236 CPU-s "
            "(4 to 6 minutes of wall clock on 2 cores); these MLPs with "
            "2,000 steps: 98.3 (102.5 without the EMA)"
        ),
    ),
    "paper": Preset(
        {
            "data.name": "mnist",
            "model.image_shape": (1, 28, 28),
            "model.likelihood": "bernoulli",
            "model.latent_dim": 50,
            "model.encoder": "mlp",
            "model.decoder": "mlp",
            "model.mlp_hidden": (200, 200),
            "model.activation": "tanh",
            "train.batch_size": 20,
            "train.lr": 1e-3,
            "train.betas": (0.99, 0.999),
            "train.steps": 9_840_000,
        },
        source=(
            "yburda/iwae, experiments.py, optimizers.py and datasets.py (the authors' code; Burda, Grosse & "
            "Salakhutdinov 2016 (IWAE), section 5 and appendix C): the one-stochastic-layer MNIST model "
            "(784-200-200-50 tanh MLP, mirrored decoder), MNIST binarised afresh at every use "
            "(dynamic binarisation, datasets.py and the paper's footnote 2; the fixed binarisation is its "
            "appendix D), batch 20, 3,280 passes (= 9,840,000 steps; the code trains on 59,600 images), "
            "Adam betas (0.99, 0.999): optimizers.py's "
            "defaults, which experiments.py keeps (the paper's text says beta1 0.9). Parameters: 425,284, the "
            "paper's layers exactly. Not in genlab: the learning-rate schedule 1e-3 * 10^(-i/7) for 3^i passes, "
            "i = 0..7 (genlab: constant 1e-3, the first stage's rate); Adam's epsilon 1e-4 and second moments "
            "started at 1 (genlab: PyTorch's 1e-8 and 0). The IWAE-trained rows: add model.train_iw_samples=50."
        ),
        published=(
            Published(
                "test NLL nats",
                86.76,
                "Burda et al. 2016, Table 1, MNIST, 1 stochastic layer, VAE k=1",
                "paper: k = 5000 importance samples on the 10,000 test digits",
            ),
            Published(
                "test NLL nats",
                84.78,
                "Burda et al. 2016, Table 1, MNIST, 1 stochastic layer, IWAE k=50",
                "trained with the k=50 IWAE bound (genlab: model.train_iw_samples=50)",
            ),
        ),
    ),
    "paper-iaf": Preset(
        {
            "data.name": "mnist",
            "model.image_shape": (1, 28, 28),
            "model.likelihood": "bernoulli",
            "model.posterior": "iaf",
            "model.latent_dim": 32,
            "model.iaf_steps": 2,
            "model.iaf_hidden_dim": 320,
        },
        source=(
            "Kingma et al. 2016 (IAF), section 6.1 and Table 1, MNIST row 'IAF (Depth = 2, Width = 320)': two IAF "
            "steps whose autoregressive networks have 320 hidden units, 32 latent units, dynamically binarised "
            "MNIST (Table 1; the statically binarised figure of section 6.1 is for the deepest IAF). Not "
            "expressible in genlab's VAE: the paper's ResNet encoder/decoder (genlab: plain stride-2 conv stages), "
            "its Adamax optimiser and schedule (genlab: Adam with its defaults), data-dependent initialisation and "
            "weight normalisation, and for CIFAR-10 the bidirectional hierarchy of latent maps (genlab has one "
            "latent vector, so no CIFAR-10 preset)."
        ),
        published=(
            Published(
                "test NLL nats",
                79.77,
                "Kingma et al. 2016, Table 1, MNIST, IAF (Depth = 2, Width = 320), log p(x)",
                "the same row's variational bound: 82.02 nats",
            ),
            Published(
                "test NLL nats", 81.08, "Kingma et al. 2016, Table 1, MNIST, diagonal covariance (no IAF), log p(x)"
            ),
        ),
    ),
    "mnist-10min": Preset(
        {**_VAE_10MIN, **budget(23_000)},
        source=(
            "benchmarks/vae_mnist.py --preset mnist-10min --minutes 10 --clock cpu --threads 1: 784-512-512-32 "
            "MLPs (ELU), Adam 2e-3, EMA 0.999; test NLL 87.73 nats (IWAE k=1000, all 10,000 test images, dynamic "
            "binarisation) after 10.1 CPU-minutes, 23,047 steps (49 epochs). The MLPs won 90-CPU-second probes "
            "against the conv networks (benchmarks/README.md, 'VAE on MNIST'). " + AND_BUDGET
        ),
    ),
    "mnist-10min-bf16": Preset(
        {**_VAE_10MIN, **budget(18_300), **_BF16},
        source=(
            "benchmarks/vae_mnist.py --preset mnist-10min-bf16 --minutes 10 --clock cpu --threads 1, for CPUs "
            "with bfloat16 instructions (AVX512-BF16, AMX; elsewhere autocast is emulated and slower): "
            "mnist-10min with bfloat16 autocast, batch 1024, Adam 3e-3; test NLL 85.52 nats "
            "(IWAE k=1000, all 10,000 test images) after 10.0 CPU-minutes, 18,343 steps "
            "(313 epochs, 31,000 images per CPU-second on an Intel Xeon with AMX). " + AND_BUDGET
        ),
    ),
    "mnist-10min-iaf-bf16": Preset(
        {**_VAE_10MIN, **budget(11_500), **_BF16, **_IAF},
        source=(
            "benchmarks/vae_iaf_mnist.py --preset mnist-10min --posteriors iaf --minutes 10 --clock cpu "
            "--threads 1 --set train.amp=true --set train.batch_size=1024 --set train.lr=3e-3, for CPUs "
            "with bfloat16 instructions: mnist-10min-bf16 with a 2-step IAF posterior "
            "(AR-NN 256x2, context 64); test NLL 84.70 nats (IWAE k=1000, all test images), -ELBO 87.34, "
            "after 10.0 CPU-minutes, 11,500 steps (196 epochs). " + AND_BUDGET
        ),
    ),
    "mnist-10min-iaf": Preset(
        {**_VAE_10MIN, **budget(17_000), **_IAF},
        source=(
            "benchmarks/vae_iaf_mnist.py --preset mnist-10min --posteriors iaf --minutes 10 --clock "
            "cpu --threads 1: mnist-10min with a 2-step IAF posterior (AR-NN 256x2, context 64); "
            "test NLL 87.82 nats (IWAE k=1000, all test images), -ELBO 90.81, after 10.1 "
            "CPU-minutes, 16,967 steps (36 epochs). " + AND_BUDGET
        ),
    ),
}


_ACTIVATIONS = {
    "elu": nn.ELU,
    "relu": nn.ReLU,
    "silu": nn.SiLU,
    "leaky_relu": lambda: nn.LeakyReLU(0.2),
    "tanh": nn.Tanh,
}
_INPUT_MODES = {"bernoulli": "binary", "logistic": "unit", "gaussian": "dequantize"}


# ----------------------------------------------------------------------------- shared maths


#: Bounds of q(z|x)'s log-variance (sigma from e^-15 to e^5). An image far from the training data can drive
#: the encoder's raw output past what float32 holds once squared (89.6 for a Fashion-MNIST image under
#: the shipped MNIST VAE: sigma^2 = e^89.6 overflows, and log_prob became NaN). Any q(z|x) gives a valid
#: bound, so bounding it keeps every estimate a bound; trained models stay far inside the range.
LOG_VAR_RANGE = (-30.0, 10.0)


def reparameterize(mu: Tensor, log_var: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """z = mu + sigma * eps with eps ~ N(0, I): a sample of N(mu, diag(exp(log_var)))
    that is differentiable in mu and log_var. eps comes from ``generator`` or the global RNG."""
    return mu + torch.exp(0.5 * log_var) * _randn(mu, generator)


def _randn(like: Tensor, generator: torch.Generator | None) -> Tensor:
    """Standard normal noise shaped like ``like``, drawn on the generator's device
    (a CPU generator works for a model on a GPU) and moved to ``like``'s device."""
    return D.draw(torch.randn, like.shape, generator=generator, device=like.device, dtype=like.dtype)


# ----------------------------------------------------------------------------- the model


class VAE(GenerativeModel):
    """Convolutional VAE. All images are (B, C, H, W); log-probabilities are per
    example, in nats, shape (B,). See the module docstring for the equations."""

    config_class = VAEConfig
    likelihood_kind = "bound"
    importance_sampled = True  # log_prob is the IWAE bound over iw_samples draws

    def __init__(self, config: VAEConfig):
        super().__init__(config)
        self.input_mode = _INPUT_MODES[config.likelihood]
        act = _ACTIVATIONS[config.activation]
        c, h, w = config.image_shape
        ch = list(config.channels)
        self.sizes = downsampled_sizes(h, w, len(ch))  # [(H, W), (H/2, W/2), ...] rounded up
        hs, ws = self.sizes[-1]
        flat = ch[-1] * hs * ws
        d, hid = config.latent_dim, config.hidden_dim
        iaf = config.posterior == "iaf"
        self.context_dim = config.iaf_context if iaf else 0
        n_out = 2 * d + self.context_dim

        # Encoder: stride-2 3x3 convs (each halves the size, rounding up), then mu and log sigma^2
        # (and the IAF context h); or fully connected layers on the flattened image.
        enc: list[nn.Module] = []
        for c_in, c_out in zip([c] + ch[:-1], ch):
            enc += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), act()]
        widths = list(config.mlp_hidden)
        if config.encoder == "mlp":
            self.encoder = nn.Flatten()
            self.enc_head = nn.Sequential(mlp([c * h * w] + widths, act), act(), nn.Linear(widths[-1], n_out))
        else:
            self.encoder = nn.Sequential(*enc, nn.Flatten())
            self.enc_head = (
                nn.Sequential(nn.Linear(flat, hid), act(), nn.Linear(hid, n_out)) if hid else nn.Linear(flat, n_out)
            )
        self.flow = (
            IAF(d, config.iaf_steps, (config.iaf_hidden_dim, config.iaf_hidden_dim), self.context_dim) if iaf else None
        )

        # Decoder: z -> small map -> (upsample + conv) stages back to exactly (H, W); or the
        # mirrored fully connected layers straight to every pixel's parameters.
        out_ch = 2 * c if config.likelihood == "logistic" else c
        if config.decoder == "mlp":
            self.dec_head = mlp([d] + widths[::-1] + [out_ch * h * w], act)
            self.up = nn.ModuleList()
        else:
            self.dec_head = (
                nn.Sequential(nn.Linear(d, hid), act(), nn.Linear(hid, flat), act())
                if hid
                else nn.Sequential(nn.Linear(d, flat), act())
            )
            up = UpsampleConv if config.decoder == "upsample" else TransposedConvUp
            outs = ch[::-1][1:] + [out_ch]
            self.up = nn.ModuleList(up(c_in, c_out) for c_in, c_out in zip(ch[::-1], outs))
        self.act = act()
        if config.likelihood == "gaussian":
            shape = (c, h, w) if config.gaussian_variance == "pixel" else (1, 1, 1)
            self.log_var = nn.Parameter(torch.full(shape, math.log(0.1**2)))
        if config.channels_last:
            self.to(memory_format=torch.channels_last)  # conv weights; load_state_dict keeps the layout
        # The Trainer's 0-based iteration (begin_iteration), for the KL warm-up; the Trainer
        # checkpoints it, so a resumed run continues the ramp exactly.
        self.iteration = 0

    # ------------------------------------------------------------------ networks
    @property
    def latent_shape(self) -> tuple[int, ...]:
        return (self.config.latent_dim,)

    def latent(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        """n draws of z ~ N(0, I), (n, latent_dim), from ``generator`` (any device)."""
        return _randn(torch.empty(n, self.config.latent_dim, device=self.device), generator)

    def posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """x (B, C, H, W) in the model's input space -> (mu, log_var), each (B, latent_dim).
        With posterior="iaf" these are the parameters of the flow's initial Gaussian q_0.
        log_var is kept in :data:`LOG_VAR_RANGE` (see there)."""
        mu, log_var = self._encoder_output(x)[:, : 2 * self.config.latent_dim].chunk(2, dim=1)
        return mu, log_var.clamp(*LOG_VAR_RANGE)

    def encode_posterior(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        """x -> (mu, log_var, h): q_0's parameters, each (B, latent_dim), and the IAF
        context h (B, iaf_context), or None for the Gaussian posterior."""
        if self.flow is None:
            return (*self.posterior(x), None)
        out = self._encoder_output(x)
        d = self.config.latent_dim
        mu, log_var = out[:, : 2 * d].chunk(2, dim=1)
        return mu, log_var.clamp(*LOG_VAR_RANGE), out[:, 2 * d :]

    def _encoder_output(self, x: Tensor) -> Tensor:
        """x -> the encoder head's output (B, 2 * latent_dim + context size)."""
        self.check_images(x)
        if self.config.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        # centred input; float32 out, so that log q, the KL and the weights are exact under train.amp
        return D.full_precision(self.enc_head(self.encoder(2.0 * x - 1.0)))

    def sample_posterior(
        self, mu: Tensor, log_var: Tensor, h: Tensor | None, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """One draw z ~ q(z|x) per row and its log-density log q(z|x), nats:
        ((B, latent_dim), (B,)). Differentiable (reparameterisation). For the IAF,
        log q(z_T|x) = log N(z_0; mu, sigma^2) - sum over steps of sum_i log sigma_{t,i}."""
        z = reparameterize(mu, log_var, generator)
        log_q = D.gaussian_log_prob(z, mu, log_var)
        if self.flow is not None:
            z, log_det = self.flow(z, h)
            log_q = log_q - log_det
        return z, log_q

    def encode(self, x: Tensor) -> Tensor:
        """One deterministic code for x, (B, latent_dim): mu(x), or for the IAF the
        flow's image of mu(x) (eps = 0), the point reconstructions are decoded from.
        The posterior's parameters come from :meth:`posterior`."""
        mu, _, h = self.encode_posterior(x)
        return mu if self.flow is None else self.flow(mu, h)[0]

    def decoder_output(self, z: Tensor) -> Tensor:
        """z (B, latent_dim) -> raw decoder output (B, C or 2C, H, W): Bernoulli logits,
        Gaussian means, or logistic (means, log-scales)."""
        hs, ws = self.sizes[-1] if len(self.up) else self.sizes[0]  # the "mlp" decoder gives the image itself
        h = self.dec_head(z).view(z.shape[0], -1, hs, ws)
        for i, block in enumerate(self.up):
            h = block(h, self.sizes[-2 - i])
            if i < len(self.up) - 1:
                h = self.act(h)
        return h

    def _params(self, out: Tensor) -> tuple[Tensor, Tensor | None]:
        """Raw decoder output -> (location, log-scale or log-variance) of p(x | z)."""
        lik = self.config.likelihood
        if lik == "bernoulli":
            return out, None  # logits
        if lik == "logistic":
            mean, log_scale = out.chunk(2, dim=1)
            return mean + 0.5, log_scale.clamp(min=self.config.min_log_scale)
        log_var = self.log_var.clamp(min=2 * self.config.min_log_scale).expand_as(out)
        return out + 0.5, log_var

    def log_likelihood(self, x: Tensor, z: Tensor) -> Tensor:
        """log p(x | z) per example, nats, shape (B,); x in the model's input space."""
        loc, scale = self._params(self.decoder_output(z))
        lik = self.config.likelihood
        if lik == "bernoulli":
            return D.bernoulli_log_prob(loc, x)
        if lik == "logistic":
            return D.discretized_logistic_log_prob(x, loc, scale)
        return D.gaussian_log_prob(x, loc, scale)

    def decode(self, z: Tensor, *, labels: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        """z (B, latent_dim) -> the mean image of p(x | z), (B, C, H, W) in [0, 1]:
        Bernoulli probabilities, or the logistic / Gaussian mean clipped to [0, 1].
        Deterministic (``generator`` is ignored); unconditional (``labels`` must be None)."""
        self.check_labels(labels, z.shape[0])
        loc, _ = self._params(self.decoder_output(z))
        if self.config.likelihood == "bernoulli":
            return torch.sigmoid(loc)
        return loc.clamp(0.0, 1.0)

    # ------------------------------------------------------------------ the ELBO
    def begin_iteration(self, step: int) -> None:
        """Called by the Trainer before every iteration with its 0-based number."""
        self.iteration = step

    def kl_weight(self) -> float:
        """beta, ramped linearly from 0 at iteration 0 to beta at iteration kl_warmup_steps."""
        cfg = self.config
        if cfg.kl_warmup_steps <= 0:
            return cfg.beta
        return cfg.beta * min(1.0, self.iteration / cfg.kl_warmup_steps)

    def elbo_terms(self, x: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """One-sample estimate of E_q[log p(x|z)] and KL(q(z|x) || N(0, I)), each (B,),
        nats. Differentiable (reparameterisation). The KL is in closed form for the
        Gaussian posterior, and the one-sample estimate log q(z|x) - log p(z) at the
        same z for the IAF (no closed form)."""
        mu, log_var, h = self.encode_posterior(x)
        if self.flow is None:
            z = reparameterize(mu, log_var, generator)
            recon = self.log_likelihood(x, z)
            kl = D.kl_gaussian_standard(mu, log_var)
            return recon, kl
        z, log_q = self.sample_posterior(mu, log_var, h, generator)
        recon = self.log_likelihood(x, z)
        kl = log_q - D.standard_normal_log_prob(z)
        return recon, kl

    def elbo(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """ELBO(x) = E_q[log p(x|z)] - KL(q || p), one-sample estimate, per example (B,), nats."""
        recon, kl = self.elbo_terms(x, generator)
        return recon - kl

    def loss(self, batch: dict) -> dict:
        """The "vae" step: mean over the batch of -recon + kl_weight * kl.

        Logs per-example means (nats) of "elbo", "recon" (E_q log p(x|z)) and "kl"
        (a one-sample estimate for the IAF posterior). With ``train_iw_samples`` = k > 1
        the loss is instead the batch mean of -L_k(x), the IWAE bound over k draws from
        q(z|x) (no KL weight), logged as "iw_bound"; "elbo", "recon" and "kl" are then
        the means over the k draws.
        """
        x = batch["x"]
        k = self.config.train_iw_samples
        if k > 1:  # the IWAE bound: log (1/k) sum_i w_i, the same model, a tighter objective
            log_px, log_ratio = self.log_weights(x, *self.encode_posterior(x), k)
            recon, kl, bound = log_px.mean(0), -log_ratio.mean(0), D.log_mean_exp(log_px + log_ratio, dim=0)
            return {
                "loss": -bound.mean(),
                "iw_bound": bound.mean().detach(),
                "elbo": (recon - kl).mean().detach(),
                "recon": recon.mean().detach(),
                "kl": kl.mean().detach(),
            }
        recon, kl = self.elbo_terms(x)
        w = self.kl_weight()
        loss = (-recon + w * kl).mean()
        return {
            "loss": loss,
            "elbo": (recon - kl).mean().detach(),
            "recon": recon.mean().detach(),
            "kl": kl.mean().detach(),
            "kl_weight": torch.tensor(w),
        }

    def train_steps(self) -> list[TrainStep]:
        return [TrainStep("vae", [self], self.loss)]

    # ------------------------------------------------------------------ likelihood
    def log_prob(
        self,
        x: Tensor,
        *,
        labels: Tensor | None = None,
        iw_samples: int | None = None,
        generator: torch.Generator | None = None,
        batch_size: int = 2048,
    ) -> Tensor:
        """Importance-weighted estimate of log p(x), per example (B,), nats:

            log (1/k) sum_i p(x | z_i) p(z_i) / q(z_i | x),  z_i ~ q(z | x),  k = iw_samples.

        A stochastic lower bound on log p(x) (Burda et al. 2016): its expectation
        increases with k towards log p(x); k = 1 (the default, ``iw_samples=None``)
        equals the ELBO in expectation.
        ``batch_size`` caps the number of (x, z) pairs decoded at once, so
        k = 1000 fits in memory. With posterior="iaf", z_i and q(z_i | x) come
        from the flow (see :meth:`sample_posterior`). For the Gaussian likelihood this is a density
        on dequantised data; add :attr:`log_prob_offset` for the discrete value.
        """
        self.check_labels(labels, x.shape[0])
        iw_samples = 1 if iw_samples is None else iw_samples
        if iw_samples < 1:
            raise ValueError("iw_samples must be >= 1")
        self.check_images(x)
        with torch.inference_mode():
            out = []
            for xb in x.split(max(1, batch_size)):
                posterior = self.encode_posterior(xb)
                per_chunk = max(1, batch_size // xb.shape[0])  # samples decoded per pass
                log_w = [
                    sum(self.log_weights(xb, *posterior, min(per_chunk, iw_samples - start), generator))
                    for start in range(0, iw_samples, per_chunk)
                ]
                out.append(D.log_mean_exp(torch.cat(log_w), dim=0))
            return torch.cat(out)

    def log_weights(
        self, x: Tensor, mu: Tensor, log_var: Tensor, h: Tensor | None, s: int, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """s draws z_i ~ q(z|x) per image (from q's parameters ``mu``, ``log_var``, ``h``
        of :meth:`encode_posterior`) -> (log p(x|z_i), log p(z_i) - log q(z_i|x)), each
        (s, B), nats; their sum is the log importance weight. Differentiable."""
        n = x.shape[0]
        z, log_q = self.sample_posterior(
            mu.repeat(s, 1), log_var.repeat(s, 1), h.repeat(s, 1) if h is not None else None, generator
        )
        log_px = self.log_likelihood(x.repeat(s, 1, 1, 1), z)  # (s*n,), sample-major
        return log_px.view(s, n), (D.standard_normal_log_prob(z) - log_q).view(s, n)

    # ------------------------------------------------------------------ sampling
    def sample(
        self,
        n: int,
        *,
        labels: Tensor | None = None,
        generator: torch.Generator | None = None,
        noisy: bool = False,
        temperature: float = 1.0,
    ) -> Tensor:
        """n images (n, C, H, W) in [0, 1].

        Draws z ~ N(0, temperature^2 I) with ``generator`` and returns the decoder's
        **mean image** (for Bernoulli: the pixel probabilities), the usual VAE
        figure. ``noisy=True`` returns a draw from p(x | z) instead (binary pixels
        for Bernoulli, 8-bit levels for logistic).
        """
        self.check_labels(labels, n)
        with torch.inference_mode():
            z = self.latent(n, generator=generator) * temperature
            if not noisy:
                return self.decode(z)
            loc, scale = self._params(self.decoder_output(z))
            lik = self.config.likelihood
            if lik == "bernoulli":
                p = torch.sigmoid(loc)
                if generator is None:
                    return torch.bernoulli(p)
                return torch.bernoulli(p.to(generator.device), generator=generator).to(p.device)
            if lik == "logistic":
                dev = generator.device if generator is not None else loc.device
                return D.discretized_logistic_sample(loc.to(dev), scale.to(dev), generator=generator).to(loc.device)
            return (loc + torch.exp(0.5 * scale) * _randn(loc, generator)).clamp(0.0, 1.0)
