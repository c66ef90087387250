"""DDPM: denoising diffusion probabilistic models, with DDIM sampling and inversion.

Ho, Jain & Abbeel (2020), "Denoising Diffusion Probabilistic Models"; Nichol &
Dhariwal (2021), "Improved Denoising Diffusion Probabilistic Models" (cosine
schedule, hybrid loss with learned variances); Song, Meng & Ermon (2021),
"Denoising Diffusion Implicit Models" (DDIM); Ho & Salimans (2021),
"Classifier-Free Diffusion Guidance".

Data: 8-bit images scaled to [-1, 1] (``input_mode="signed"``: x0 = 2 k/255 - 1).
Steps t = 1..T are stored at index i = t - 1 (the network sees i).

Forward process: q(x_t | x_{t-1}) = N(sqrt(1 - beta_t) x_{t-1}, beta_t I), so
q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I) with abar_t = prod_{s<=t} (1 - beta_s).
Schedules: "linear" (beta from 1e-4 to 0.02 for T = 1000, both scaled by 1000/T)
and "cosine" (abar_t = f(t)/f(0), f(t) = cos^2((t/T + s)/(1 + s) pi/2), s = 0.008,
beta_t = min(1 - abar_t/abar_{t-1}, 0.999)).

Reverse process: p(x_{t-1} | x_t) = N(mu(x_t, t), sigma_t^2 I), mu from the
predicted noise eps(x_t, t): x0_hat = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t),
mu = the mean of q(x_{t-1} | x_t, x0_hat). sigma_t^2 is fixed ("small":
beta_tilde_t = beta_t (1 - abar_{t-1}) / (1 - abar_t); "large": beta_t) or,
with ``loss="hybrid"``, learned: log sigma_t^2 = v log beta_t + (1 - v) log beta_tilde_t,
v = (out + 1)/2 from C extra output channels.

Losses: "simple" = E_{t, eps} |eps - eps(x_t, t)|^2 (mean over dimensions);
"hybrid" = simple + ``vlb_weight`` * T * L_{t-1} in bits/dim with the mean's
gradient stopped (the variance learns from the bound only).

Variational bound (nats per image; ``log_prob`` returns its negative):

    -log p(x0) <= L_T + sum_{t=2}^T L_{t-1} + L_0
    L_T     = KL(q(x_T | x0) || N(0, I))
    L_{t-1} = KL(q(x_{t-1} | x_t, x0) || p(x_{t-1} | x_t)),   x_t ~ q(x_t | x0)
    L_0     = -log p(x0 | x_1), a Gaussian N(mu(x_1, 1), sigma_1^2) discretized into the
              256 bins of width 2/255 around each pixel value (edge bins open to +-inf).

``bound(x0, levels=K)`` discretizes L_0 into K bins instead (data on a K-value grid in [-1, 1],
e.g. the code maps of :mod:`genlab.models.latent`); ``levels=None`` makes L_0 the Gaussian
density -log N(x0; mu(x_1, 1), sigma_1^2), and the bound one on the log-density of continuous x0
(e.g. latent codes, which need not lie in [-1, 1]).

One x_t is drawn per term (as the papers evaluate it); ``bound_timesteps = k > 0``
replaces the T terms by an unbiased stratified estimate from k of them.
Bits/dim: :func:`genlab.distributions.bits_per_dim` of the bound (D = C H W).

Sampling: ancestral (T steps) or DDIM (``sample_steps`` evenly spaced steps,
stochasticity ``eta``: 0 deterministic, 1 ancestral-like). ``encode`` is DDIM
inversion with eta = 0 (latent_shape = image shape), ``decode`` the DDIM sampler
from a given x_T, so interpolating between the codes of two real images works.
Class conditioning uses classifier-free guidance (``genlab.nn.unet.guided``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .. import distributions as D
from ..errors import ConfigError
from ..nn.unet import UNetModelConfig, drop_labels, guided
from ..presets import Preset, Published
from .base import TrainStep
from .unet_image import UNetImageModel


@dataclass
class DDPMConfig(UNetModelConfig):
    """Configuration of :class:`DDPM` (the U-Net fields come from :class:`UNetModelConfig`)."""

    timesteps: int = 1000  # T
    schedule: str = "linear"  # "linear" (Ho et al.) or "cosine" (Nichol & Dhariwal)
    loss: str = "simple"  # "simple" (eps MSE, fixed variances) or "hybrid" (+ vlb_weight * L_vlb, learned variances)
    variance: str = "small"  # fixed sigma_t^2 with loss="simple": "small" (beta_tilde_t) or "large" (beta_t)
    vlb_weight: float = 0.001  # lambda of the hybrid loss
    sampler: str = "ddim"  # sample(): "ddim" (sample_steps steps) or "ancestral" (all T steps)
    sample_steps: int = 50  # DDIM steps of sample, encode and decode (capped at timesteps)
    eta: float = 0.0  # DDIM noise: 0 deterministic, 1 like ancestral sampling
    clip_denoised: bool = True  # sample(): clip x0_hat to [-1, 1] at every step (never in encode/decode/log_prob)
    inversion_iterations: int = (
        3  # encode: fixed-point refinements of each step's eps(x_{s_k}, s_k) (0: plain DDIM inversion)
    )
    bound_timesteps: int = 0  # log_prob: 0 sums all T terms; k > 0 an unbiased stratified estimate from k terms

    def validate(self) -> None:
        super().validate()
        if self.timesteps < 2:
            raise ConfigError(f"model.timesteps must be >= 2, got {self.timesteps}")
        for name, allowed in (
            ("schedule", ("linear", "cosine")),
            ("loss", ("simple", "hybrid")),
            ("variance", ("small", "large")),
            ("sampler", ("ddim", "ancestral")),
        ):
            self.check_choice(name, allowed)
        self.check_positive("sample_steps")
        if not 0 <= self.bound_timesteps <= self.timesteps:
            raise ConfigError(
                f"model.bound_timesteps must be in 0..{self.timesteps} (model.timesteps), got {self.bound_timesteps}"
            )
        if self.eta < 0 or self.inversion_iterations < 0:
            raise ConfigError(
                f"model.eta and model.inversion_iterations must be >= 0, got {self.eta}, {self.inversion_iterations}"
            )


#: Training defaults of the registry entry: gradients clipped to norm 1 (Ho et al. 2020, appendix B).
TRAIN_DEFAULTS = {"grad_clip": 1.0}

#: The presets of ``genlab train ddpm --preset NAME``: the paper's.
PRESETS: dict[str, Preset] = {
    "paper": Preset(
        {
            "data.name": "cifar10",
            "model.image_shape": (3, 32, 32),
            "model.timesteps": 1000,
            "model.schedule": "linear",
            "model.loss": "simple",
            "model.channels": 128,
            "model.channel_mult": (1, 2, 2, 2),
            "model.num_blocks": 2,
            "model.attention_resolutions": (16,),
            "model.groups": 32,
            "model.dropout": 0.1,
            "train.lr": 2e-4,
            "train.batch_size": 128,
            "train.steps": 800_000,
            "train.ema_decay": 0.9999,
        },
        source=(
            "Ho, Jain & Abbeel 2020 (DDPM), section 4 and appendix B (CIFAR-10): T = 1000, linear betas 1e-4 to "
            "0.02, L_simple, U-Net of 128 channels with multipliers (1, 2, 2, 2), 2 residual blocks per "
            "resolution, self-attention at 16x16, group norm, dropout 0.1, Adam lr 2e-4, batch 128, 800k steps, "
            "EMA 0.9999, gradients clipped to norm 1 (the registry entry's training default). Not in genlab: "
            "random horizontal flips; the paper's 5,000-step learning-rate warm-up (set train.warmup_steps=5000). "
            "Parameters: 35.7 M in the paper, 25,833,987 in genlab's U-Net "
            "with these settings (its residual blocks and attention differ in detail)."
        ),
        published=(
            Published(
                "FID",
                3.17,
                "Ho et al. 2020, Table 1, CIFAR-10, unconditional",
                "Inception FID on 50,000 samples; genlab's FID uses its own CIFAR-10 features",
            ),
            Published("bits/dim", 3.75, "Ho et al. 2020, Table 1, CIFAR-10 test NLL bound of the L_simple model"),
        ),
    ),
}


def linear_betas(timesteps: int, max_beta: float = 0.999) -> Tensor:
    """Ho et al.'s schedule, beta from 1e-4 to 0.02 over T = 1000 (both scaled by 1000/T, as
    Nichol & Dhariwal do; capped at 0.999 for very short chains), float64 (T,)."""
    scale = 1000.0 / timesteps
    return torch.linspace(scale * 1e-4, scale * 0.02, timesteps, dtype=torch.float64).clamp(max=max_beta)


def cosine_alpha_bar(t: Tensor, timesteps: int, s: float = 0.008) -> Tensor:
    """abar(t) = f(t) / f(0), f(t) = cos^2(((t/T + s) / (1 + s)) pi/2) (Nichol & Dhariwal eq. 17), t in [0, T]."""
    f = lambda u: torch.cos((u / timesteps + s) / (1 + s) * math.pi / 2) ** 2  # noqa: E731
    return f(t.double()) / f(torch.zeros((), dtype=torch.float64))


def cosine_betas(timesteps: int, max_beta: float = 0.999) -> Tensor:
    """beta_t = min(1 - abar(t)/abar(t-1), 0.999) for t = 1..T, float64 (T,)."""
    t = torch.arange(timesteps + 1, dtype=torch.float64)
    abar = cosine_alpha_bar(t, timesteps)
    return (1 - abar[1:] / abar[:-1]).clamp(max=max_beta)


def discretized_gaussian_log_prob(x: Tensor, mean: Tensor, log_var: Tensor, levels: int = 256) -> Tensor:
    """log P(x) for x on the grid {-1, -1 + 2/(levels-1), ..., 1} under N(mean, exp(log_var))
    integrated over each value's bin [x - 1/(levels-1), x + 1/(levels-1)] (the end bins reach
    -inf / +inf, so the probabilities of the grid sum to one). Shape (B, ...) -> (B,) nats."""
    half = 1.0 / (levels - 1)
    inv_std = torch.exp(-0.5 * log_var)
    upper, lower = (x - mean + half) * inv_std, (x - mean - half) * inv_std
    # Interior: log(Phi(b) - Phi(a)) = log Phi(b) + log1p(-exp(log Phi(a) - log Phi(b))), with
    # (a, b) = (-upper, -lower) in the upper tail (Phi(u) - Phi(l) = Phi(-l) - Phi(-u)), so that
    # b <= 0 or a <= 0 < b: log Phi never rounds to 0 for both, and there is no clamp to hit.
    flip = lower > 0
    a, b = torch.where(flip, -upper, lower), torch.where(flip, -lower, upper)
    log_cdf_b = torch.special.log_ndtr(b)
    log_mid = log_cdf_b + torch.log1p(-torch.exp(torch.special.log_ndtr(a) - log_cdf_b))
    # End bins: x = -1 takes (-inf, upper], log Phi(upper); x = +1 takes [lower, inf), log Phi(-lower).
    lp = torch.where(
        x < -1 + half, torch.special.log_ndtr(upper), torch.where(x > 1 - half, torch.special.log_ndtr(-lower), log_mid)
    )
    return lp.flatten(1).sum(1)


def _at(table: Tensor, i: Tensor, like: Tensor) -> Tensor:
    """table[i] shaped (B, 1, 1, ...) to broadcast against ``like``."""
    return table[i].float().view(-1, *([1] * (like.dim() - 1)))


class DDPM(UNetImageModel):
    """Diffusion model; images (B, C, H, W), x in [-1, 1]; nats per image. See the module docstring."""

    config_class = DDPMConfig
    input_mode = "signed"
    likelihood_kind = "bound"

    def likelihood_description(self, iw_samples: int | None = None) -> str:
        T, k = self.config.timesteps, self.config.bound_timesteps
        terms = f"all T = {T} terms" if k == 0 else f"an unbiased stratified estimate from k = {k} of its T = {T} terms"
        return (
            f"the variational lower bound on log p(x) (Ho et al. 2020), {terms}, one x_t drawn per term: "
            "a stochastic lower bound, no importance samples"
        )

    def __init__(self, config: DDPMConfig):
        c = config.image_shape[0]
        super().__init__(config, 2 * c if config.loss == "hybrid" else c)
        self.learned_variance = config.loss == "hybrid"
        betas = linear_betas(config.timesteps) if config.schedule == "linear" else cosine_betas(config.timesteps)
        abar = torch.cumprod(1 - betas, 0)
        abar_prev = torch.cat([torch.ones(1, dtype=torch.float64), abar[:-1]])
        post_var = betas * (1 - abar_prev) / (1 - abar)
        # beta_tilde_1 = 0: its log is replaced by log beta_tilde_2 (as in Ho et al.'s code); p's
        # step-1 variance only enters the discretized decoder L_0.
        post_log_var = torch.log(torch.cat([post_var[1:2], post_var[1:]]))
        tables = {
            "betas": betas,
            "alpha_bar": abar,
            "alpha_bar_prev": abar_prev,
            "post_log_var": post_log_var,
            "post_coef_x0": betas * abar_prev.sqrt() / (1 - abar),
            "post_coef_xt": (1 - abar_prev) * (1 - betas).sqrt() / (1 - abar),
            "log_betas": torch.log(betas),
            "large_log_var": torch.log(torch.cat([post_var[1:2], betas[1:]])),
        }
        for k, v in tables.items():  # derived from the config: not saved with the weights
            self.register_buffer(k, v.float(), persistent=False)

    # ------------------------------------------------------------------ processes
    def q_sample(self, x0: Tensor, i: Tensor, noise: Tensor) -> Tensor:
        """x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise, i (B,) step indices (t = i + 1)."""
        a = _at(self.alpha_bar, i, x0)
        return a.sqrt() * x0 + (1 - a).sqrt() * noise

    def q_posterior(self, x0: Tensor, xt: Tensor, i: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and log-variance of q(x_{t-1} | x_t, x0) (log-variance clipped at step 1, see __init__)."""
        mean = _at(self.post_coef_x0, i, xt) * x0 + _at(self.post_coef_xt, i, xt) * xt
        return mean, _at(self.post_log_var, i, xt).expand_as(xt)

    def network(self, xt: Tensor, i: Tensor, labels: Tensor | None, scale: float = 1.0) -> Tensor:
        """The U-Net's raw output (B, C or 2C, H, W): eps, then the variance channel v in [-1, 1] scale."""
        return guided(self.net, xt, i, labels, scale, channels=xt.shape[1])

    def p_from_output(
        self, out: Tensor, xt: Tensor, i: Tensor, *, clip: bool = False, detach_mean: bool = False
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Network output -> (mean, log_var, x0_hat) of p(x_{t-1} | x_t)."""
        c = xt.shape[1]
        eps = out[:, :c].detach() if detach_mean else out[:, :c]
        a = _at(self.alpha_bar, i, xt)
        x0_hat = (xt - (1 - a).sqrt() * eps) / a.sqrt()
        if clip:
            x0_hat = x0_hat.clamp(-1, 1)
        mean, post_log_var = self.q_posterior(x0_hat, xt, i)
        if self.learned_variance:
            frac = (out[:, c:] + 1) / 2
            log_var = frac * _at(self.log_betas, i, xt) + (1 - frac) * post_log_var
        else:
            table = self.post_log_var if self.config.variance == "small" else self.large_log_var
            log_var = _at(table, i, xt).expand_as(xt)
        return mean, log_var, x0_hat

    # ------------------------------------------------------------------ the bound
    def prior_term(self, x0: Tensor) -> Tensor:
        """L_T = KL(q(x_T | x0) || N(0, I)) in nats, (B,)."""
        a = self.alpha_bar[-1]
        return D.kl_gaussian_standard(a.sqrt() * x0, torch.log(1 - a).expand_as(x0))

    def term(
        self,
        x0: Tensor,
        i: Tensor,
        noise: Tensor,
        labels: Tensor | None = None,
        out: Tensor | None = None,
        detach_mean: bool = False,
        levels: int | None = 256,
    ) -> Tensor:
        """The bound's term for step t = i + 1 at x_t = q_sample(x0, i, noise), nats (B,):
        L_0 = -log p(x0 | x_1) where i = 0, else L_{t-1} = KL(q(x_{t-1} | x_t, x0) || p(x_{t-1} | x_t)).
        L_0 is discretized into ``levels`` bins, or a Gaussian density for ``levels=None``."""
        xt = self.q_sample(x0, i, noise)
        if out is None:
            out = self.network(xt, i, labels)
        mean, log_var, _ = self.p_from_output(out, xt, i, detach_mean=detach_mean)
        q_mean, q_log_var = self.q_posterior(x0, xt, i)
        kl = D.kl_gaussian(q_mean, q_log_var, mean, log_var)
        if levels is None:
            nll0 = -D.gaussian_log_prob(x0, mean, log_var)
        else:
            nll0 = -discretized_gaussian_log_prob(x0, mean, log_var, levels)
        return torch.where(i == 0, nll0, kl)

    def bound(
        self,
        x0: Tensor,
        *,
        labels: Tensor | None = None,
        generator: torch.Generator | None = None,
        levels: int | None = 256,
    ) -> dict[str, Tensor]:
        """The variational bound of x0 (B, C, H, W) in [-1, 1], nats per image: {"prior": L_T (B,),
        "terms": (B, T) L_0 .. L_{T-1} (or (B, k) stratified draws, already weighted),
        "steps": the step indices of those columns, "total": (B,)}. ``levels``: the bins of L_0
        (x0 on a grid of that many values), or None for continuous x0 (L_0 a Gaussian density)."""
        b, T, k = x0.shape[0], self.config.timesteps, self.config.bound_timesteps
        if k == 0:
            steps = torch.arange(T, device=x0.device)[None].expand(b, T)
            weights = torch.ones(T, device=x0.device)
        else:  # one step drawn uniformly from each of k strata, weighted by the stratum's size
            edges = torch.div(torch.arange(k + 1) * T, k, rounding_mode="floor").to(x0.device)
            u = D.draw(torch.rand, (b, k), generator=generator, device=x0.device)
            steps = edges[:-1] + (u * (edges[1:] - edges[:-1])).long()
            weights = (edges[1:] - edges[:-1]).float()
        terms = []
        for j in range(steps.shape[1]):
            noise = D.draw(torch.randn, x0.shape, generator=generator, device=x0.device)
            terms.append(self.term(x0, steps[:, j], noise, labels, levels=levels) * weights[j])
        terms = torch.stack(terms, 1)
        prior = self.prior_term(x0)
        return {"prior": prior, "terms": terms, "steps": steps, "total": prior + terms.sum(1)}

    def log_prob(
        self,
        x: Tensor,
        *,
        labels: Tensor | None = None,
        iw_samples: int | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """-bound(x) in nats per image, (N,): a lower bound on log P(x) of the 8-bit image x
        (2 k/255 - 1). ``iw_samples`` is accepted and ignored (the bound has no importance
        samples); labels None = the unconditional model (the null class for a conditional one)."""
        self.check_images(x)
        return -self.bound(x, labels=self._labels(labels, x.shape[0]), generator=generator)["total"]

    # ------------------------------------------------------------------ training
    def train_steps(self) -> list[TrainStep]:
        return [TrainStep("diffusion", [self.net], self.loss)]

    def loss(self, batch: dict) -> dict:
        x0 = batch["x"]
        b, T = x0.shape[0], self.config.timesteps
        labels = batch.get("y") if self.config.num_classes > 0 else None
        labels = drop_labels(labels, self.config.num_classes, self.config.label_dropout)
        i = torch.randint(0, T, (b,), device=x0.device)
        noise = torch.randn_like(x0)
        xt = self.q_sample(x0, i, noise)
        out = self.net(xt, i, labels)
        simple = (out[:, : x0.shape[1]] - noise).pow(2).flatten(1).mean(1)
        logs = {"mse": simple.mean().detach()}
        loss = simple.mean()
        if self.learned_variance:
            vlb = self.term(x0, i, noise, out=out, detach_mean=True)
            loss = loss + self.config.vlb_weight * T * D.bits_per_dim(vlb, self.num_dims).mean()
            logs["vlb_term_nats"] = vlb.mean().detach()
        return {"loss": loss, **logs}

    # ------------------------------------------------------------------ sampling
    def ddim_steps(self, steps: int) -> list[int]:
        """min(steps, T) step indices evenly spaced over 0..T-1, increasing, 0 and T-1 included."""
        T = self.config.timesteps
        return sorted(set(torch.linspace(0, T - 1, min(steps, T)).round().long().tolist()))

    def _abar(self, i: int) -> Tensor:
        return self.alpha_bar[i] if i >= 0 else torch.ones((), device=self.alpha_bar.device)

    def ddim_loop(
        self,
        x: Tensor,
        *,
        labels: Tensor | None = None,
        steps: int | None = None,
        eta: float = 0.0,
        clip: bool = False,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """DDIM from x_T (B, C, H, W) down to x0_hat in [-1, 1] (Song et al. eq. 12), no gradients."""
        seq = self.ddim_steps(steps or self.config.sample_steps)
        scale = self.config.guidance_scale if labels is not None else 1.0
        for i, i_prev in zip(reversed(seq), reversed([-1] + seq[:-1])):
            a, a_prev = self._abar(i), self._abar(i_prev)
            idx = torch.full((x.shape[0],), i, device=x.device, dtype=torch.long)
            eps = self.network(x, idx, labels, scale)[:, : x.shape[1]]
            x0 = (x - (1 - a).sqrt() * eps) / a.sqrt()
            if clip:
                x0 = x0.clamp(-1, 1)
                eps = (x - a.sqrt() * x0) / (1 - a).sqrt()
            sigma = eta * ((1 - a_prev) / (1 - a) * (1 - a / a_prev)).sqrt()
            x = a_prev.sqrt() * x0 + (1 - a_prev - sigma**2).clamp_min(0).sqrt() * eps
            if eta > 0 and i_prev >= 0:
                x = x + sigma * D.draw(torch.randn, x.shape, generator=generator, device=x.device)
        return x

    def ancestral_loop(
        self, x: Tensor, *, labels: Tensor | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        """Ho et al.'s algorithm 2 from x_T: T steps of p(x_{t-1} | x_t), x0_hat clipped; the last step is the mean."""
        scale = self.config.guidance_scale if labels is not None else 1.0
        for i in reversed(range(self.config.timesteps)):
            idx = torch.full((x.shape[0],), i, device=x.device, dtype=torch.long)
            mean, log_var, _ = self.p_from_output(
                self.network(x, idx, labels, scale), x, idx, clip=self.config.clip_denoised
            )
            x = mean + (
                torch.exp(0.5 * log_var) * D.draw(torch.randn, x.shape, generator=generator, device=x.device)
                if i > 0
                else 0
            )
        return x

    @torch.inference_mode()
    def sample(self, n: int, *, labels: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        """n images in [0, 1], (n, C, H, W): DDIM (``sample_steps``, ``eta``) or ancestral sampling
        per ``config.sampler``; conditional models take labels (None: the unconditional model)."""
        labels = self._labels(labels, n)
        x = self.latent(n, generator=generator)
        if self.config.sampler == "ancestral":
            x = self.ancestral_loop(x, labels=labels, generator=generator)
        else:
            x = self.ddim_loop(
                x, labels=labels, eta=self.config.eta, clip=self.config.clip_denoised, generator=generator
            )
        return ((x + 1) / 2).clamp(0, 1)

    @torch.inference_mode()
    def encode(self, x: Tensor) -> Tensor:
        """DDIM inversion (eta = 0, ``sample_steps`` steps, unconditional): x (N, C, H, W) in
        [-1, 1] -> x_T (N, C, H, W). Step s_{k-1} -> s_k uses eps(x_{s_{k-1}}, s_k), then
        ``inversion_iterations`` times eps(x_{s_k}, s_k) at the current guess of x_{s_k}: the
        fixed point is exactly what decode's step inverts. The cosine schedule's last step
        (beta capped at 0.999, abar_T ~ 1e-7 for T = 100..1000) makes the inversion
        ill-conditioned in float32; reconstructions need the linear schedule."""
        self.check_images(x)
        seq = self.ddim_steps(self.config.sample_steps)
        for i_prev, i in zip([-1] + seq[:-1], seq):
            a, a_prev = self._abar(i), self._abar(i_prev)
            idx = torch.full((x.shape[0],), i, device=x.device, dtype=torch.long)
            x_next = x
            for _ in range(1 + self.config.inversion_iterations):
                eps = self.network(x_next, idx, None)[:, : x.shape[1]]
                x_next = a.sqrt() * (x - (1 - a_prev).sqrt() * eps) / a_prev.sqrt() + (1 - a).sqrt() * eps
            x = x_next
        return x

    @torch.inference_mode()
    def decode(self, z: Tensor, *, labels: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        """Deterministic DDIM (eta = 0, no clipping) from x_T = z (N, C, H, W) -> images in [0, 1]."""
        z = z.reshape(len(z), *self.latent_shape).to(self.device)
        x = self.ddim_loop(z, labels=self._labels(labels, len(z)), eta=0.0, clip=False)
        return ((x + 1) / 2).clamp(0, 1)
