"""Latent models: a prior trained over the codes of a frozen autoencoder, and decoded by it.

The two-stage recipe of the VQ-VAE (van den Oord, Vinyals & Kavukcuoglu 2017, "Neural Discrete
Representation Learning": an autoregressive prior over the code map), of VQGAN (Esser, Rombach &
Ommer 2021, "Taming Transformers for High-Resolution Image Synthesis": a transformer over it) and of
latent diffusion (Rombach, Blattmann, Lorenz, Esser & Ommer 2022, "High-Resolution Image Synthesis
with Latent Diffusion Models": a diffusion model over a KL-regularised autoencoder's latents, scaled
to unit variance), for any of genlab's autoencoders and priors.

The model
---------
``autoencoder``: a run folder or ``pretrained:NAME`` of a model with ``encode`` and ``decode``,
loaded with :func:`genlab.load` and frozen (it never trains here, it stays in eval mode, and its
weights are saved with the latent model's: ``genlab.load`` of a latent run rebuilds the autoencoder
from its folder's config and then loads the copy of the weights this run trained on, with a warning
when the folder's weights have changed since). ``new:MODEL`` builds a fresh, untrained registry
model MODEL from ``autoencoder_config`` (its config fields; its image shape is this model's) in
place: for tests and the contract suite, which have no saved autoencoder.

``prior``: a registry model (``pixelcnn``, ``gated-pixelcnn``, ``transformer``, ``ddpm`` or
``flow-matching``) with ``prior_config`` (its config fields), built over the codes' layout of
:mod:`genlab.data.latent` (the layout ``latent:RUN`` loads): a VQ-VAE's code maps c (1, h, w) with
K values, a VAE's codes z (d,) as a row (1, 1, d). The prior is this model's one train step
("prior"): every batch of images is encoded by the frozen autoencoder (a VAE's codes are fresh
draws z ~ q(z|x) every step, so the prior fits the aggregate posterior) and the prior takes a step
of its own loss on the codes, mapped to its input space:

==================  =========================================  ==========================================
prior               VQ-VAE code map c in {0..K-1}^(h x w)      VAE code z (continuous), u = z / sigma
==================  =========================================  ==========================================
pixelcnn,           c / (K - 1), a K-way categorical head:     refused (they model discrete values)
gated-pixelcnn,     log P(c) exact
transformer
ddpm                x_0 = 2 c / (K - 1) - 1; L_0 discretized   x_0 = u; L_0 a Gaussian density:
                    into K bins: -VLB <= log P(c)              -VLB(u) - d log sigma <= log p(z)
flow-matching       y = (c + U) / K, U ~ U[0, 1)^D (uniform    y = (u + 1) / 2, so x_1 = u: exact
                    dequantisation): log p(y) - D log K,       log p(z) = log p_1(u) - d log sigma
                    a bound on log P(c) in expectation over U  (ODE, exact divergence)
==================  =========================================  ==========================================

The scale sigma (continuous codes): ``scale`` when > 0, else the standard deviation of every number
of the codes of the first training batch, estimated once and kept with the weights (as latent
diffusion does; 1 until then). The prior's fields that the codes decide are set here and refused
when ``prior_config`` sets them otherwise: ``image_shape``, a categorical head with K levels for the
autoregressive priors, the exact divergence for flow matching (Hutchinson's estimate would make the
bound below neither exact nor a bound) and no clipping of x_0 for ddpm over continuous codes (they
leave [-1, 1]).

Sampling draws codes from the prior (unclamped: ``ddpm`` by its sampler with ``clip=False``,
``flow-matching`` by its ODE), maps them back (rounded to code indices, or z = sigma u) and returns
the autoencoder's ``decode`` of them. ``encode``, ``decode`` and ``latent_shape`` are the
autoencoder's; ``latent(n)`` draws from the learned prior in the autoencoder's latent space.

The likelihood bound (nats per image)
-------------------------------------
* VQ-VAE: for any code map c, p(x) = sum_c' P(c') p(x | c') >= P(c) p(x | c), so at the encoder's
  code map c(x)::

      log p(x) >= log P(c(x)) + log p(x | c(x))

  deterministic with an autoregressive prior (its log P is exact), as :meth:`VQVAE.log_prob` with its
  own PixelCNN; with ddpm or flow matching log P(c(x)) is replaced by a stochastic lower bound on it
  (a bound of a bound: still a lower bound on log p(x), in expectation).
* VAE with flow matching: the importance-weighted bound (Burda et al. 2016) with the prior's density
  in place of N(0, I), z_i ~ q(z|x)::

      log p(x) >= E[ log (1/k) sum_i p(x | z_i) p_prior(z_i) / q(z_i | x) ],   k = iw_samples

  (exact up to the ODE solver's error in p_prior).
* VAE with ddpm: the one-sample ELBO with -VLB(z), the diffusion model's variational bound
  (VLB(z) >= -log p(z), its loss terms summed), in place of log p(z):
  E_q[log p(x|z) - VLB(z) - log q(z|x)] <= E_q[log p(x|z) + log p(z) - log q(z|x)] <= log p(x),
  a bound of a bound, stochastic (one z, one x_t per diffusion term). No importance samples: the
  diffusion bound's own noise inside a log-mean-exp would no longer make it a bound.
* any other autoencoder (deterministic ``encode``, no p(x|z) or q(z|x), e.g. ``ali``): no bound;
  ``likelihood_kind`` is "none" and ``log_prob`` says why.

With a VAE on dequantised data (Gaussian likelihood) the bound is a density's, as the VAE's own:
``log_prob_offset`` (-D log 256) converts it. Left out: class-conditional priors, and training the
autoencoder and the prior together.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass, field, fields
from typing import Any

import torch
from torch import Tensor

from .. import distributions as D
from ..config import ModelConfig
from ..data.latent import code_space, codes_to_latent, encode_codes
from ..errors import ConfigError
from ..presets import Preset
from .base import GenerativeModel, TrainStep, capabilities_of

#: The priors a latent model can put over codes: autoregressive ones for discrete codes only.
AUTOREGRESSIVE = ("pixelcnn", "gated-pixelcnn", "transformer")
PRIORS = AUTOREGRESSIVE + ("ddpm", "flow-matching")
#: ``autoencoder`` = ``new:MODEL``: a fresh, untrained MODEL built in place (tests, the contract suite).
NEW = "new:"

#: Training defaults of the registry entry: those of the default prior, flow matching (and of ddpm):
#: gradients clipped to norm 1. Set train.* for other priors (see their registry entries).
TRAIN_DEFAULTS = {"grad_clip": 1.0}


def _json_object(value: Any, where: str) -> dict:
    """``value`` as it reads back from config.json (tuples become lists), or a ConfigError."""
    if not isinstance(value, dict):
        raise ConfigError(f'{where} must be a mapping of config fields, e.g. {{"channels": 8}}, got {value!r}')
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError):
        raise ConfigError(f"{where} must hold JSON values (numbers, strings, lists), got {value!r}") from None


def _within(where: str, error: ConfigError) -> ConfigError:
    """``error`` of a nested config, its message led by ``where`` (``model.prior_config``) once."""
    text = str(error)
    return ConfigError(text if text.startswith(where) else f"{where}: {text}")


def _check_fields(config_class: type, values: dict, where: str, set_here: str) -> None:
    """ConfigError for a key of ``values`` that ``config_class`` has not, or that this model sets."""
    known = [f.name for f in fields(config_class)]
    for key in values:
        if key == "image_shape":
            raise ConfigError(f"{where}.image_shape is set from {set_here}; leave it out")
        if key not in known:
            raise ConfigError(f"unknown {where}.{key}; valid keys: {', '.join(k for k in known if k != 'image_shape')}")


@dataclass
class LatentConfig(ModelConfig):
    """Configuration of :class:`LatentModel` (see the module docstring). ``image_shape`` is the
    autoencoder's (the Trainer fills it from the data: train on the autoencoder's data set)."""

    autoencoder: str = "pretrained:vae-mnist"  # a run folder, pretrained:NAME, or new:MODEL (fresh, untrained)
    autoencoder_config: dict[str, Any] = field(default_factory=dict)  # new:MODEL only: its config fields
    prior: str = "flow-matching"  # pixelcnn, gated-pixelcnn, transformer (discrete codes), ddpm, flow-matching
    prior_config: dict[str, Any] = field(default_factory=dict)  # the prior's config fields (not image_shape)
    scale: float = 0.0  # continuous codes: u = z / scale; 0: the std of the first training batch's codes

    def validate(self) -> None:
        super().validate()
        from .. import registry

        self.check_unconditional("the latent model")
        if not isinstance(self.autoencoder, str) or not self.autoencoder.strip():
            raise ConfigError(
                "model.autoencoder must name the autoencoder: a run folder, pretrained:NAME or new:MODEL, "
                f"e.g. pretrained:vae-mnist; got {self.autoencoder!r}"
            )
        self.autoencoder_config = _json_object(self.autoencoder_config, "model.autoencoder_config")
        self.prior_config = _json_object(self.prior_config, "model.prior_config")
        if self.autoencoder.startswith(NEW):
            name = self.autoencoder[len(NEW) :]
            if name not in registry.MODELS:
                raise ConfigError(
                    f"model.autoencoder={self.autoencoder!r}: unknown model {name!r}; use new:vae or new:vqvae"
                )
            missing = {"encode", "decode"} - capabilities_of(registry.get(name)[1])
            if missing:
                raise ConfigError(
                    f"model.autoencoder={self.autoencoder!r}: {name} has no {' and no '.join(sorted(missing))}; "
                    "an autoencoder needs encode and decode, e.g. new:vae or new:vqvae"
                )
            ae_class = registry.get(name)[0]
            _check_fields(ae_class, self.autoencoder_config, "model.autoencoder_config", "model.image_shape")
        elif self.autoencoder_config:
            raise ConfigError(
                "model.autoencoder_config builds a fresh autoencoder (model.autoencoder=new:MODEL); a saved one "
                f"({self.autoencoder}) brings its own config: leave model.autoencoder_config empty"
            )
        if self.prior not in PRIORS:
            raise ConfigError(f"unknown model.prior {self.prior!r}; choose one of: {', '.join(PRIORS)}")
        _check_fields(registry.get(self.prior)[0], self.prior_config, "model.prior_config", "the codes' shape")
        if not (math.isfinite(self.scale) and self.scale >= 0):
            raise ConfigError(f"model.scale must be >= 0 (0: estimated from the first batch), got {self.scale}")


#: The presets of ``genlab train latent --preset NAME``: none yet.
PRESETS: dict[str, Preset] = {}


def _load_autoencoder(config: LatentConfig):
    """The autoencoder ``config`` names, frozen and in eval mode."""
    from .. import load, registry
    from ..config import from_dict
    from ..errors import GenlabError

    if config.autoencoder.startswith(NEW):
        name = config.autoencoder[len(NEW) :]
        try:
            ae_config = from_dict(
                registry.get(name)[0],
                {**config.autoencoder_config, "image_shape": list(config.image_shape)},
                "model.autoencoder_config",
            )
        except ConfigError as e:
            raise _within("model.autoencoder_config", e) from None
        autoencoder = registry.build(name, ae_config)
    else:
        try:
            autoencoder = load(config.autoencoder)
        except GenlabError as e:  # not a run, unreadable weights, an unknown pretrained name
            raise ConfigError(f"model.autoencoder={config.autoencoder!r}: {e}") from None
        have, want = tuple(autoencoder.config.image_shape), tuple(config.image_shape)
        if have != want:
            raise ConfigError(
                f"model.image_shape={list(want)} (the data's), but the autoencoder {config.autoencoder} models images "
                f"of shape {list(have)}: train on the data set it was trained on (its config.json names it)"
            )
    autoencoder.requires_grad_(False)
    return autoencoder.eval()


def code_prior(name: str, space, prior_config: dict, autoencoder: str = "the autoencoder"):
    """A fresh registry model ``name`` built as a prior over codes of ``space`` (a
    :class:`~genlab.data.latent.CodeSpace`): its config is ``prior_config`` plus the fields the codes
    decide (refused when set otherwise). The one way genlab builds a prior over codes: the latent
    model's and the VQ-VAE's own PixelCNN (``code_prior("pixelcnn", its code space, ...)``)."""
    from .. import registry

    if name in AUTOREGRESSIVE and space.kind != "discrete":
        raise ConfigError(
            f"model.prior={name!r} models discrete values, but the codes of {autoencoder} are continuous; "
            "choose ddpm or flow-matching (or a vqvae autoencoder)"
        )
    return registry.build(name, _prior_config(name, space, prior_config))


def code_levels(codes: Tensor, levels: int) -> Tensor:
    """Code indices c in {0..K-1} (any shape) -> c / (K - 1) in [0, 1]: a code map as the image an
    autoregressive prior with a K-way categorical head reads (it rounds it back to c)."""
    return codes.float() / (levels - 1)


def _prior_config(name: str, space, prior_config: dict) -> Any:
    """The prior's config: ``prior_config`` plus the fields the codes decide (refused when set otherwise)."""
    from .. import registry
    from ..config import from_dict

    forced: dict[str, tuple[Any, str]] = {}
    if name in AUTOREGRESSIVE:
        why = f"the code maps take {space.levels} values"
        forced = {"likelihood": ("categorical", why), "grey_levels": (space.levels, why)}
    elif name == "flow-matching":
        forced = {"divergence": ("exact", "the bound needs the prior's exact log-density")}
    elif space.kind == "continuous":
        forced = {"clip_denoised": (False, "unit-variance codes leave [-1, 1]")}
    for key, (value, why) in forced.items():
        if key in prior_config and prior_config[key] != value:
            raise ConfigError(
                f"model.prior_config.{key}={prior_config[key]!r}, but the latent model sets it to "
                f"{value!r}: {why}; leave it out"
            )
    values = {**prior_config, **{k: v for k, (v, _) in forced.items()}, "image_shape": list(space.shape)}
    try:
        return from_dict(registry.get(name)[0], values, "model.prior_config")
    except ConfigError as e:
        raise _within("model.prior_config", e) from None


class LatentModel(GenerativeModel):
    """A prior over a frozen autoencoder's codes; images (B, C, H, W). See the module docstring."""

    config_class = LatentConfig
    data_kind = "image"

    def __init__(self, config: LatentConfig):
        super().__init__(config)
        autoencoder = _load_autoencoder(config)
        try:
            self.space = code_space(autoencoder)
        except ValueError as e:
            raise ConfigError(f"model.autoencoder={config.autoencoder!r}: {e}") from None
        self.input_mode = autoencoder.input_mode  # the autoencoder's input space is this model's
        self.family = {"ddpm": "ddpm", "flow-matching": "flow"}.get(config.prior, "autoregressive")
        self.prior = code_prior(config.prior, self.space, config.prior_config, config.autoencoder)
        steps = self.prior.train_steps()
        if len(steps) != 1:
            raise ConfigError(f"model.prior={config.prior!r} trains in {len(steps)} steps; a prior needs one")
        self._prior_step = steps[0]
        self.autoencoder = autoencoder
        # sigma of continuous codes, estimated once; an integer (sigma * 2^32) because the Trainer's weight
        # average (train.ema_decay) averages floating buffers but copies integer ones. 0: not estimated yet.
        self.register_buffer("scale_q32", torch.zeros((), dtype=torch.long))

    # ------------------------------------------------------------------ what the model provides
    @property
    def likelihood_kind(self) -> str:
        return "none" if self.space.kind == "continuous" and not self.space.posterior else "bound"

    @property
    def importance_sampled(self) -> bool:
        return self.space.posterior and self.family == "flow"

    @property
    def capabilities(self) -> frozenset[str]:
        caps = super().capabilities
        return caps if self.likelihood_kind != "none" else caps - {"log_prob"}

    @property
    def latent_shape(self) -> tuple[int, ...]:
        return tuple(self.autoencoder.latent_shape)

    @property
    def scale(self) -> float:
        """sigma: continuous codes are modelled as u = z / sigma (1 for discrete codes and before training)."""
        if self.space.kind == "discrete":
            return 1.0
        if self.config.scale > 0:
            return float(self.config.scale)
        q = int(self.scale_q32)
        return q / 2**32 if q else 1.0

    def likelihood_description(self, iw_samples: int | None = None) -> str:
        prior = self.config.prior
        if self.likelihood_kind == "none":
            return "no likelihood"
        if self.space.kind == "discrete":
            if self.family == "autoregressive":
                return (
                    "a deterministic lower bound on log p(x): log P(c(x)) + log p(x | c(x)) at the encoder's code map "
                    f"c(x), with the {prior} prior's exact log P, no importance samples"
                )
            how = "variational bound" if self.family == "ddpm" else "log-density of the dequantised code map - D log K"
            return (
                f"a stochastic lower bound on log p(x): log p(x | c(x)) at the encoder's code map c(x) plus the "
                f"{prior} prior's {how}, a lower bound on log P(c(x)) (a bound of a bound), no importance samples"
            )
        if self.importance_sampled:
            k = "the model's default number of" if iw_samples is None else f"k = {int(iw_samples)}"
            return (
                f"importance-weighted estimate (IWAE, Burda et al. 2016) with {k} samples of q(z|x) and the "
                "flow-matching prior's ODE log-density (exact divergence) of z: a stochastic lower bound on log p(x)"
            )
        return (
            "a stochastic lower bound on log p(x): one draw z ~ q(z|x), log p(x|z) - log q(z|x) plus the ddpm "
            "prior's variational bound on log p(z) (a bound of a bound), no importance samples"
        )

    def train(self, mode: bool = True):
        """Train or eval mode for the prior; the frozen autoencoder stays in eval mode."""
        super().train(mode)
        self.autoencoder.eval()
        return self

    # ------------------------------------------------------------------ codes <-> the prior's input space
    def codes(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Codes of images x in the autoencoder's input space, laid out for the prior: code indices
        (N, 1, h, w) long, or continuous codes z (N, *shape), unscaled (a VAE's: one draw of q(z|x))."""
        self.check_images(x)
        return encode_codes(self.autoencoder, x, self.space, generator)

    def prior_input(self, codes: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Codes (as :meth:`codes` gives them) -> the prior's input space (the module docstring's table);
        flow matching's dequantisation noise over code maps comes from ``generator``."""
        k = self.space.levels
        if self.space.kind == "continuous":
            u = codes / self.scale
            return (u + 1) / 2 if self.family == "flow" else u
        c = codes.float()
        if self.family == "autoregressive":
            return code_levels(c, k)
        if self.family == "ddpm":
            return 2 * c / (k - 1) - 1
        return (c + D.draw(torch.rand, c.shape, generator=generator, device=c.device)) / k

    def log_prior(self, codes: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """log P(c) of code maps, or the log-density of continuous codes z (unscaled, so with the scale's
        Jacobian -D log sigma), nats (N,): exact, or a stochastic lower bound (ddpm; flow matching over
        code maps, in expectation over the dequantisation), see the module docstring."""
        v = self.prior_input(codes, generator)
        dims = self.space.num_dims
        if self.family == "autoregressive":
            return self.prior.log_prob(v)
        if self.family == "ddpm":
            levels = self.space.levels if self.space.kind == "discrete" else None
            lp = -self.prior.bound(v, generator=generator, levels=levels)["total"]
        else:  # flow matching's log_prob is log p(y) - D log 256; y = (c + U) / K, or (u + 1) / 2
            cell = math.log(self.space.levels) if self.space.kind == "discrete" else math.log(2)
            lp = self.prior.log_prob(v, generator=generator) + dims * (math.log(256) - cell)
        return lp - dims * math.log(self.scale) if self.space.kind == "continuous" else lp

    def sample_codes(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        """n codes drawn from the prior, as :meth:`codes` gives them (indices, or unscaled z)."""
        p = self.prior
        with torch.no_grad():
            if self.space.kind == "discrete":
                v = p.sample(n, generator=generator).clone()  # in [0, 1]; a normal tensor, not an inference one
                k = self.space.levels
                c = torch.floor(v * k) if self.family == "flow" else torch.round(v * (k - 1))
                return c.clamp(0, k - 1).long()
            x = p.latent(n, generator=generator)
            if self.family == "flow":
                u = p.flow(x, 0.0, 1.0)
            elif p.config.sampler == "ancestral":
                u = p.ancestral_loop(x, generator=generator)  # clip_denoised is off for continuous codes
            else:
                u = p.ddim_loop(x, eta=p.config.eta, clip=False, generator=generator)
            return u * self.scale

    # ------------------------------------------------------------------ training
    def begin_iteration(self, step: int) -> None:
        self.prior.begin_iteration(step)

    def _estimate_scale(self, codes: Tensor) -> None:
        """Set sigma from these codes (the first training batch's) unless it is set or configured."""
        if self.space.kind == "discrete" or self.config.scale > 0 or int(self.scale_q32):
            return
        sigma = float(codes.float().std()) if codes.numel() > 1 else 1.0
        sigma = sigma if math.isfinite(sigma) and sigma > 0 else 1.0
        self.scale_q32.fill_(max(1, round(sigma * 2**32)))

    def prior_loss(self, batch: dict) -> dict:
        """The "prior" step: the prior's own loss on the codes of the batch's images (the frozen
        autoencoder's; a VAE's are fresh draws of q(z|x)), mapped to the prior's input space."""
        with torch.no_grad():
            codes = self.codes(batch["x"])
            self._estimate_scale(codes)
            v = self.prior_input(codes)
        return self._prior_step.loss({"x": v, "y": None})

    def train_steps(self) -> list[TrainStep]:
        return [TrainStep("prior", [self.prior], self.prior_loss)]

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
        """The bound of the module docstring on log p(x), nats per image (N,), x in the autoencoder's
        input space. ``iw_samples`` (default 1) for a VAE with a flow-matching prior, ignored otherwise;
        randomness from ``generator``; ``batch_size`` caps the (x, z) pairs evaluated at once."""
        self.check_images(x)
        self.check_labels(labels, x.shape[0])
        if self.likelihood_kind == "none":
            raise NotImplementedError(
                f"{type(self.autoencoder).__name__} has no decoder likelihood p(x|z) and no posterior q(z|x): "
                "a prior over its codes gives no bound on log p(x)"
            )
        ae = self.autoencoder
        with torch.no_grad():
            if self.space.kind == "discrete":
                codes = self.codes(x)
                recon = D.discretized_logistic_log_prob(x, *ae.decoder_params(ae.embed(codes[:, 0])))
                return self.log_prior(codes, generator) + recon
            k = 1 if iw_samples is None or not self.importance_sampled else int(iw_samples)
            if k < 1:
                raise ValueError(f"iw_samples must be >= 1, got {iw_samples}")
            mu, log_var, h = ae.encode_posterior(x)
            n, per = x.shape[0], max(1, batch_size // x.shape[0])
            log_w = []
            for start in range(0, k, per):
                s = min(per, k - start)
                z, log_q = ae.sample_posterior(
                    mu.repeat(s, 1), log_var.repeat(s, 1), h.repeat(s, 1) if h is not None else None, generator
                )
                log_px = ae.log_likelihood(x.repeat(s, 1, 1, 1), z)
                log_pz = self.log_prior(z.reshape(len(z), *self.space.shape), generator)
                log_w.append((log_px + log_pz - log_q).view(s, n))
            return D.log_mean_exp(torch.cat(log_w), dim=0)

    # ------------------------------------------------------------------ sampling, encode, decode
    def latent(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        """n codes drawn from the learned prior, in the autoencoder's latent space (n, *latent_shape)."""
        return codes_to_latent(self.autoencoder, self.sample_codes(n, generator=generator), self.space)

    def encode(self, x: Tensor) -> Tensor:
        """The autoencoder's ``encode``: x (N, C, H, W) in its input space -> (N, *latent_shape)."""
        return self.autoencoder.encode(x)

    def decode(self, z: Tensor, *, labels: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        """The autoencoder's ``decode``: codes (N, *latent_shape) -> images in [0, 1]."""
        self.check_labels(labels, z.shape[0])
        with torch.no_grad():
            return self.autoencoder.decode(z, generator=generator)

    def sample(self, n: int, *, labels: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        """n images (n, C, H, W) in [0, 1]: codes from the prior, decoded by the autoencoder."""
        self.check_labels(labels, n)
        return self.decode(self.latent(n, generator=generator), generator=generator)

    # ------------------------------------------------------------------ persistence
    def upgrade_state_dict(self, state: dict[str, Tensor]) -> dict[str, Tensor]:
        """Weights saved with this model (its copy of the autoencoder's included): warns when the
        autoencoder's own folder now holds other weights than the ones this prior was trained on."""
        state = super().upgrade_state_dict(state)
        if not self.config.autoencoder.startswith(NEW):
            own = {f"autoencoder.{k}": v for k, v in self.autoencoder.state_dict().items()}
            changed = [k for k, v in own.items() if k in state and not torch.equal(state[k].to(v.dtype), v)]
            if changed:
                warnings.warn(
                    f"the autoencoder {self.config.autoencoder} holds other weights than the ones this latent model's "
                    "prior was trained on; using the copy saved with the latent model",
                    stacklevel=3,
                )
        return state
