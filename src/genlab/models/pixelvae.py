"""PixelVAE: a VAE whose decoder is a small PixelCNN conditioned on the latent code.

Gulrajani, Kumar, Ahmed, Taiga, Visin, Vazquez and Courville (2017), "PixelVAE:
A Latent Variable Model for Natural Images", ICLR 2017, arXiv:1611.05013.

The model
---------
A conv encoder gives a diagonal Gaussian posterior. The decoder maps the latent
code to a feature map at image resolution (upsample + conv stages), and a few
PixelCNN masked convolutions (one type-A, then type-B residual layers) read x
with that map *added into every masked layer*, so the likelihood is
autoregressive and exact given z:

    p(x | z) = prod_i p(x_i | x_<i, z)        (raster order, channels R -> G -> B)

with a Bernoulli per pixel for binarised images (``likelihood="bernoulli"``), a
``grey_levels``-way softmax (``"categorical"``) or a discretised logistic mixture
(``"logistic-mixture"``) for grey/RGB 8-bit images. The conditioning map depends
on z only, so the masks alone make p(x | z) causal and normalised. With
``decoder="mlp"`` (one level) fully connected layers map z straight to
``map_channels`` maps at image size, a cheaper map than the upsampling stages.

One level (``latent_levels=1``): z in R^d, p(z) = N(0, I), q(z|x) = N(mu(x), diag sigma^2(x)).

Two levels (``latent_levels=2``, the paper's hierarchical model, section 3.2):
a top latent z2 in R^d with p(z2) = N(0, I), a spatial lower latent z1 of shape
(z1_channels, H/4, W/4) (7x7 for MNIST) with a learned conditional prior
p(z1 | z2) = N(m(z2), diag s^2(z2)) from an upsampling net, and p(x | z1) as
above. The posterior factorises as in the paper, q(z1, z2 | x) = q(z1|x) q(z2|x),
both heads on one shared encoder (z1 from its 7x7 map, z2 from a dense layer on it).

The ELBO (per image, nats) is what :meth:`PixelVAE.elbo_terms` computes::

    one level:   ELBO(x) = E_q(z|x)[ log p(x|z) ] - KL( q(z|x) || N(0, I) )

    two levels:  ELBO(x) = E_q(z1|x)[ log p(x|z1) ]
                           - E_q(z2|x)[ KL( q(z1|x) || p(z1|z2) ) ]
                           - KL( q(z2|x) || N(0, I) )

Every KL is in closed form (Gaussian vs Gaussian, :func:`genlab.distributions.kl_gaussian`);
the expectations over z (z1) and z2 are one reparameterised sample each.

Likelihood estimate: :meth:`PixelVAE.log_prob` is the importance-weighted bound
(Burda et al. 2016) with the exact autoregressive p(x|z),

    log p(x) >= L_k = E[ log (1/k) sum_i p(x, z_i) / q(z_i|x) ],  z_i ~ q(.|x),

where for two levels p(x, z) = p(x|z1) p(z1|z2) p(z2) and q = q(z1|x) q(z2|x).

Sampling draws z from the prior (z2, then z1 ~ p(z1|z2)) and then x pixel by
pixel with the cached sampler of :mod:`genlab.models.autoregressive` (the decoder's
map is computed once; each masked layer keeps its past inputs).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import distributions as D
from ..config import ModelConfig
from ..errors import ConfigError
from ..nn.autoregressive import check_head_config
from ..nn.blocks import UpsampleConv, downsampled_sizes, mlp
from ..nn.masked import pixelcnn_conv, pointwise_conv
from ..presets import AND_BUDGET, MNIST_BINARY, Preset, Published, budget
from .autoregressive import AutoregressiveImageModel
from .base import TrainStep
from .vae import reparameterize


@dataclass
class PixelVAEConfig(ModelConfig):
    """Configuration of :class:`PixelVAE`.

    ``latent_levels``: 1 (z in R^latent_dim) or 2 (top z2 in R^latent_dim, spatial
    z1 of ``z1_channels`` at the encoder's last resolution). ``channels``: one
    stride-2 encoder stage per entry, mirrored by upsample+conv decoder stages
    ((32, 64): 28x28 -> 7x7). ``likelihood``: "auto" (Bernoulli for 1 channel,
    logistic mixture for RGB), "bernoulli", "categorical" (``grey_levels``-way
    softmax) or "logistic-mixture" (``mixtures`` components over ``grey_levels``).
    The PixelCNN part: a type-A ``input_kernel`` conv, then ``pixel_blocks`` type-B
    ``block_kernel`` residual layers, all ``pixel_channels`` wide, each with the
    decoder's map added.
    """

    image_shape: tuple[int, int, int] = (1, 28, 28)
    latent_levels: int = 1
    latent_dim: int = 32
    z1_channels: int = 4
    channels: tuple[int, ...] = (32, 64)
    hidden_dim: int = 256
    decoder: str = "conv"  # z -> conditioning map: "conv" (dense, then upsample+conv stages) or "mlp" (one level only)
    mlp_hidden: tuple[int, ...] = (512, 512)  # the "mlp" decoder's layers: z -> ... -> map_channels maps at image size
    map_channels: int = 4  # maps the "mlp" decoder gives at image size (a 1x1 conv spreads them over the masked layers)
    likelihood: str = "auto"
    grey_levels: int = 256
    mixtures: int = 5
    pixel_channels: int = 16
    pixel_blocks: int = 2
    input_kernel: int = 7
    block_kernel: int = 3
    channels_last: bool = True  # NHWC memory layout: about 2x faster convolutions on CPU

    def validate(self) -> None:
        super().validate()
        self.check_unconditional("PixelVAE")
        if self.latent_levels not in (1, 2):
            raise ConfigError(f"model.latent_levels must be 1 (z) or 2 (z1 <- z2), got {self.latent_levels}")
        check_head_config(self)
        if not self.channels or min(self.channels) < 1:
            raise ConfigError(
                "model.channels must list one positive width per encoder stage, "
                f"e.g. [32, 64], got {list(self.channels)}"
            )
        self.check_positive("latent_dim", "z1_channels", "hidden_dim", "input_kernel", "block_kernel", "map_channels")
        self.check_choice("decoder", ("conv", "mlp"))
        if self.decoder == "mlp" and (self.latent_levels != 1 or not self.mlp_hidden or min(self.mlp_hidden) < 1):
            raise ConfigError(
                f"model.decoder=mlp needs model.latent_levels=1 and positive model.mlp_hidden widths, "
                f"got {self.latent_levels} and {list(self.mlp_hidden)}"
            )
        if self.pixel_channels < self.image_shape[0] or self.pixel_blocks < 0:
            raise ConfigError(
                f"model.pixel_channels must be >= the {self.image_shape[0]} image channels and "
                f"model.pixel_blocks >= 0, got {self.pixel_channels} and {self.pixel_blocks}"
            )


#: Training defaults of the registry entry: TrainConfig's own.
TRAIN_DEFAULTS: dict = {}

#: The presets of ``genlab train pixelvae --preset NAME``: the paper's, and one sized for 10 CPU-minutes on
#: binarised MNIST (benchmarks/pixelvae_mnist.py).
PRESETS: dict[str, Preset] = {
    "paper": Preset(
        {
            "data.name": "mnist",
            "model.image_shape": (1, 28, 28),
            "model.likelihood": "bernoulli",
            "model.latent_levels": 1,
        },
        source=(
            "Gulrajani et al. 2017 (PixelVAE), section 4.1 and Table 1 (binarised MNIST): one latent level and a "
            "PixelCNN decoder of a few masked layers conditioned on z. Not in genlab: the paper's MNIST layer "
            "sizes (genlab's defaults are kept), its gated masked layers, and its hierarchical LSUN / ImageNet "
            "64x64 models (genlab's 2-level model is sized for 28x28)."
        ),
        published=(
            Published(
                "test NLL nats",
                80.64,
                "Gulrajani et al. 2017, Table 1, binarised MNIST, PixelVAE (an upper bound)",
                "the gated variant without upsampling: <= 79.66, about 79.02 with 1,000 importance samples",
            ),
        ),
    ),
    "mnist-10min": Preset(
        {
            **MNIST_BINARY,
            "model.latent_levels": 1,
            "model.decoder": "mlp",
            "model.mlp_hidden": (512, 512),
            "train.batch_size": 128,
            "train.lr": 2e-3,
            "train.warmup_steps": 20,
            **budget(2_900),
        },
        source=(
            "benchmarks/pixelvae_mnist.py --preset mnist-10min --minutes 10 --clock cpu --threads 1: the z -> map "
            "network as 512-512 MLPs (model.decoder=mlp), which beat the upsampling stages in 90-CPU-second probes "
            "(benchmarks/README.md, 'PixelVAE on MNIST'); test NLL 84.15 nats (IWAE k=20, all 10,000 test images), "
            "-ELBO 85.05, after 10.1 CPU-minutes, 2,941 steps (6.3 epochs). " + AND_BUDGET
        ),
    ),
}


class PixelVAE(AutoregressiveImageModel):
    """PixelVAE with one or two latent levels. Images are (B, C, H, W) in the
    model's input space ({0, 1} for Bernoulli, the grid {0, 1/(grey_levels-1), ..., 1}
    otherwise); log-probabilities are per image, in nats, shape (B,)."""

    config_class = PixelVAEConfig
    likelihood_kind = "bound"
    importance_sampled = True  # log_prob is the IWAE bound over iw_samples draws

    def __init__(self, config: PixelVAEConfig):
        c, h, w = config.image_shape
        super().__init__(config)  # output head, likelihood and input_mode
        ch = list(config.channels)
        self.sizes = downsampled_sizes(h, w, len(ch))  # [(H, W), (H/2, W/2), ...] rounded up
        hs, ws = self.sizes[-1]
        flat = ch[-1] * hs * ws
        d, hid, act = config.latent_dim, config.hidden_dim, nn.ELU
        dense = lambda n_in, n_out: nn.Sequential(nn.Linear(n_in, hid), act(), nn.Linear(hid, n_out))  # noqa: E731

        # Encoder: stride-2 3x3 convs down to the (hs, ws) map; q(z|x) or q(z2|x) from a dense head on it.
        enc: list[nn.Module] = []
        for c_in, c_out in zip([c] + ch[:-1], ch):
            enc += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), act()]
        self.encoder = nn.Sequential(*enc)
        self.q_top = nn.Sequential(nn.Flatten(), dense(flat, 2 * d))
        if config.latent_levels == 2:
            k1 = config.z1_channels
            self.q_z1 = nn.Conv2d(ch[-1], 2 * k1, 3, padding=1)  # q(z1|x): a spatial Gaussian
            self.p_z1_net = nn.Sequential(dense(d, flat), act())  # p(z1|z2): z2 -> (hs, ws) map
            self.p_z1_head = nn.Conv2d(ch[-1], 2 * k1, 3, padding=1)
            self.dec_in = nn.Conv2d(k1, ch[-1], 3, padding=1)  # z1 -> decoder map
        elif config.decoder == "conv":
            self.dec_in = nn.Sequential(dense(d, flat))  # z -> decoder map (reshaped)
        # Decoder: (hs, ws) map -> upsample+conv stages to (H, W) -> a 1x1 conv to one
        # conditioning map per masked layer (cheaper than a 3x3 conv to all of them);
        # or fully connected layers straight to map_channels maps at (H, W), then the 1x1 conv.
        p = config.pixel_channels
        outs = ch[::-1][1:] + [p]
        if config.decoder == "mlp":
            self.dec_in = mlp([d, *config.mlp_hidden, config.map_channels * h * w], act)
            self.up = nn.ModuleList()
        else:
            self.up = nn.ModuleList(UpsampleConv(c_in, c_out) for c_in, c_out in zip(ch[::-1], outs))
        self.cond_proj = nn.Conv2d(
            config.map_channels if config.decoder == "mlp" else p, (1 + config.pixel_blocks) * p, 1
        )
        self.act = act()
        # The PixelCNN part of the decoder.
        self.input_conv = pixelcnn_conv(c, p, config.input_kernel, "A", c, first=True)
        self.pixel_convs = nn.ModuleList(
            pixelcnn_conv(p, p, config.block_kernel, "B", c) for _ in range(config.pixel_blocks)
        )
        self.out1 = pointwise_conv(p, p, c)
        self.out2 = pointwise_conv(p, self.out_channels, c)
        if config.channels_last:
            self.to(memory_format=torch.channels_last)  # conv weights; load_state_dict keeps the layout

    # ------------------------------------------------------------------ inference network
    def encode_all(self, x: Tensor) -> list[tuple[Tensor, Tensor]]:
        """x (B, C, H, W) -> the posterior's (mean, log_var) per latent level, bottom first:
        [q(z|x)] with (B, d) each, or [q(z1|x), q(z2|x)] with (B, z1_channels, hs, ws) and (B, d)."""
        self.check_images(x)
        if self.config.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        h = self.encoder(self.network_input(x))
        top = tuple(self.q_top(h).chunk(2, dim=1))
        if self.config.latent_levels == 1:
            return [top]
        return [tuple(self.q_z1(h).chunk(2, dim=1)), top]

    def posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(mean, log_var), each (B, latent_dim), of the top latent's posterior
        (q(z|x), or q(z2|x) for two levels): the code with the N(0, I) prior."""
        return self.encode_all(x)[-1]

    def encode(self, x: Tensor) -> Tensor:
        """x -> the posterior mean of the top latent, (B, latent_dim): one code per image."""
        return self.posterior(x)[0]

    @property
    def latent_shape(self) -> tuple[int, ...]:
        return (self.config.latent_dim,)

    def latent(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        """n draws of the top latent from its prior N(0, I), (n, latent_dim)."""
        zero = torch.zeros(n, self.config.latent_dim, device=self.device)
        return reparameterize(zero, torch.zeros_like(zero), generator)

    # ------------------------------------------------------------------ generative network
    def prior_z1(self, z2: Tensor) -> tuple[Tensor, Tensor]:
        """p(z1 | z2): z2 (B, d) -> (mean, log_var), each (B, z1_channels, hs, ws)."""
        hs, ws = self.sizes[-1]
        h = self.p_z1_net(z2).view(z2.shape[0], -1, hs, ws)
        mean, log_var = self.p_z1_head(h).chunk(2, dim=1)
        return mean, log_var

    def conditioning(self, z: Tensor) -> Tensor:
        """The bottom latent (z (B, d), or z1 (B, z1_channels, hs, ws)) -> the decoder's
        map (B, (1 + pixel_blocks) * pixel_channels, H, W): one slice per masked layer."""
        if self.config.decoder == "mlp":
            return self.cond_proj(self.dec_in(z).view(z.shape[0], -1, *self.sizes[0]))
        hs, ws = self.sizes[-1]
        h = self.act(self.dec_in(z).view(z.shape[0], -1, hs, ws))
        for i, block in enumerate(self.up):
            h = self.act(block(h, self.sizes[-2 - i]))
        return self.cond_proj(h)

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        """x (B, C, H, W) and the conditioning map (B, (1+L)*P, H, W) -> the parameters of
        p(x_i | x_<i, z), (B, C * params_per_channel, H, W). Output at pixel i reads x only
        before i (the masks); ``cond`` is added into every masked layer."""
        if self.config.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        cond = cond.split(self.config.pixel_channels, dim=1)
        h = self.input_conv(self.network_input(x)) + cond[0]
        for conv, c in zip(self.pixel_convs, cond[1:]):
            h = h + conv(F.relu(h)) + c
        return self.out2(F.relu(self.out1(F.relu(h))))

    def _cached_params(self, x: Tensor, cond: Tensor, pos, row: int, col: int) -> Tensor:
        pos.row, pos.col_start, pos.col_end = row, col, col + 1
        at = (slice(None), slice(None), slice(row, row + 1), slice(col, col + 1))
        return self(x[at], cond[at])[:, :, 0, 0]

    def log_likelihood(self, x: Tensor, z: Tensor) -> Tensor:
        """Exact log p(x | z) = sum_i log p(x_i | x_<i, z) per image (B,), nats;
        z is the bottom latent (z, or z1 for two levels)."""
        return self.head.log_prob(self(x, self.conditioning(z)), x)

    # ------------------------------------------------------------------ the ELBO
    def elbo_terms(self, x: Tensor, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """One-sample reconstruction term and closed-form KL terms, each (B,), nats:
        "recon" = log p(x | z) (z ~ q, reparameterised) and "kl" (one level) or
        "kl_z1" = KL(q(z1|x) || p(z1|z2)) at z2 ~ q(z2|x) and "kl_z2" = KL(q(z2|x) || N(0, I))."""
        post = self.encode_all(x)
        if self.config.latent_levels == 1:
            ((mu, log_var),) = post
            z = reparameterize(mu, log_var, generator)
            return {"recon": self.log_likelihood(x, z), "kl": D.kl_gaussian_standard(mu, log_var)}
        (m1, lv1), (m2, lv2) = post
        z2 = reparameterize(m2, lv2, generator)
        z1 = reparameterize(m1, lv1, generator)
        pm1, plv1 = self.prior_z1(z2)
        return {
            "recon": self.log_likelihood(x, z1),
            "kl_z1": D.kl_gaussian(m1, lv1, pm1, plv1),
            "kl_z2": D.kl_gaussian_standard(m2, lv2),
        }

    def elbo(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """ELBO(x) = recon - sum of the KL terms (one-sample estimate), (B,), nats."""
        t = self.elbo_terms(x, generator)
        return t["recon"] - sum(v for k, v in t.items() if k.startswith("kl"))

    def loss(self, batch: dict) -> dict:
        """The "pixelvae" step: -ELBO averaged over the batch. Logs the batch means
        (nats per image) of "elbo", "recon" and every KL term ("kl" is their sum)."""
        t = self.elbo_terms(batch["x"])
        kl = sum(v for k, v in t.items() if k.startswith("kl"))
        elbo = t["recon"] - kl
        logs = {k: v.mean().detach() for k, v in t.items()}
        logs.update(kl=kl.mean().detach(), elbo=elbo.mean().detach())
        return {"loss": -elbo.mean(), **logs}

    def train_steps(self) -> list[TrainStep]:
        return [TrainStep("pixelvae", [self], self.loss)]

    # ------------------------------------------------------------------ likelihood
    def log_weights(self, x: Tensor, generator: torch.Generator | None = None, posterior: list | None = None) -> Tensor:
        """log p(x, z) - log q(z | x) for one z ~ q(z|x) per image, (B,), nats.
        Its mean is the ELBO in expectation; its log-mean-exp over k draws is L_k.
        ``posterior``: :meth:`encode_all` of x when already computed."""
        post = self.encode_all(x) if posterior is None else posterior
        zs = [reparameterize(m, lv, generator) for m, lv in post]
        log_q = sum(D.gaussian_log_prob(z, m, lv) for z, (m, lv) in zip(zs, post))
        log_prior = D.standard_normal_log_prob(zs[-1])
        if self.config.latent_levels == 2:
            log_prior = log_prior + D.gaussian_log_prob(zs[0], *self.prior_z1(zs[1]))
        return self.log_likelihood(x, zs[0]) + log_prior - log_q

    def log_prob(
        self,
        x: Tensor,
        *,
        labels: Tensor | None = None,
        iw_samples: int | None = None,
        generator: torch.Generator | None = None,
        batch_size: int = 512,
    ) -> Tensor:
        """Importance-weighted estimate L_k of log p(x), per image (B,), nats, with
        k = ``iw_samples`` (default 1) and the exact autoregressive p(x | z). A stochastic
        lower bound: its expectation rises with k towards log p(x); k = 1 is the ELBO.
        ``batch_size`` caps the (x, z) pairs decoded at once."""
        self.check_labels(labels, x.shape[0])
        iw_samples = 1 if iw_samples is None else iw_samples
        if iw_samples < 1:
            raise ValueError(f"iw_samples must be >= 1, got {iw_samples}")
        self.check_images(x)
        with torch.inference_mode():
            out = []
            for xb in x.split(max(1, batch_size)):
                post = self.encode_all(xb)  # once per image, not once per importance sample
                reps = max(1, batch_size // xb.shape[0])  # importance samples per pass
                log_w = []
                for start in range(0, iw_samples, reps):
                    s = min(reps, iw_samples - start)
                    post_s = [tuple(t.repeat(s, *[1] * (t.dim() - 1)) for t in q) for q in post]  # sample-major
                    log_w.append(self.log_weights(xb.repeat(s, 1, 1, 1), generator, post_s).view(s, -1))
                out.append(D.log_mean_exp(torch.cat(log_w), dim=0))
            return torch.cat(out)

    # ------------------------------------------------------------------ sampling
    def _draw_prior(self, n: int, generator: torch.Generator | None) -> Tensor:
        """n draws of the bottom latent from the prior: z ~ N(0, I), or z2 ~ N(0, I) then z1 ~ p(z1|z2)."""
        return self._prior_bottom(self.latent(n, generator=generator), generator)

    def _prior_bottom(self, z_top: Tensor, generator: torch.Generator | None, mean: bool = False) -> Tensor:
        """Top latent -> bottom latent: itself for one level; z1 ~ p(z1|z2) (or its mean) for two."""
        if self.config.latent_levels == 1:
            return z_top
        m, lv = self.prior_z1(z_top)
        return m if mean else reparameterize(m, lv, generator)

    @torch.inference_mode()
    def sample_given(self, z: Tensor, *, generator: torch.Generator | None = None, method: str = "cached") -> Tensor:
        """x ~ p(x | z) pixel by pixel for a bottom latent z (B, d) or z1 (B, z1_channels, hs, ws):
        (B, C, H, W) in [0, 1]. "cached" and "naive" give the same images for one generator state."""
        x = torch.zeros(z.shape[0], *self.config.image_shape, device=self.device)
        return self._generate(x, torch.zeros_like(x, dtype=torch.bool), self.conditioning(z), generator, method)

    @torch.inference_mode()
    def sample(
        self, n: int, *, labels: Tensor | None = None, generator: torch.Generator | None = None, method: str = "cached"
    ) -> Tensor:
        """n images (n, C, H, W) in [0, 1]: z (or z2, then z1 ~ p(z1|z2)) from the prior,
        then x ~ p(x | z) pixel by pixel in raster order."""
        self.check_labels(labels, n)
        return self.sample_given(self._draw_prior(n, generator), generator=generator, method=method)

    @torch.inference_mode()
    def decode(self, z: Tensor, *, labels: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        """Top latent (B, latent_dim) -> one draw x ~ p(x | z), (B, C, H, W) in [0, 1]
        (two levels: given z1 = the mean of p(z1 | z2)). A *sample*, not a mean image:
        the PixelCNN decoder has no closed-form mean. Unconditional: ``labels`` must be None."""
        self.check_labels(labels, z.shape[0])
        return self.sample_given(self._prior_bottom(z, generator, mean=True), generator=generator)

    @torch.inference_mode()
    def reconstruct(self, x: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        """x ~ p(x | z) at the posterior mean of the bottom latent (z1 for two levels: more
        detail than decode(encode(x)), which goes through the top code), (B, C, H, W) in [0, 1]."""
        return self.sample_given(self.encode_all(x)[0][0], generator=generator)

    @torch.inference_mode()
    def complete(
        self,
        x: Tensor,
        observed_mask: Tensor,
        *,
        labels: Tensor | None = None,
        generator: torch.Generator | None = None,
        method: str = "cached",
        z: Tensor | None = None,
    ) -> Tensor:
        """Keep the observed pixels of x (N, C, H, W) in [0, 1] and sample the others
        from p(x_i | x_<i, z) in raster order, for a bottom latent ``z`` (default:
        drawn from the prior, so the observed pixels inform z only through the
        pixels they precede). Mask semantics as in :meth:`AutoregressiveImageModel.complete`."""
        self.check_images(x)
        self.check_labels(labels, x.shape[0])
        if z is None:
            z = self._draw_prior(x.shape[0], generator)
        x = self.head.to_grid(x.to(self.device, torch.float32)).clone()
        observed = torch.as_tensor(observed_mask, device=self.device).bool().expand_as(x).clone()
        return self._generate(x, observed, self.conditioning(z), generator, method)
