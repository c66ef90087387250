"""Log-likelihoods used by the models, all in nats, summed over every dimension
but the batch: each function returns a tensor of shape (B,).

Bits per dimension are derived in exactly one place: :func:`bits_per_dim`.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

LOG_2PI = math.log(2 * math.pi)


def draw(sampler: Callable, *args, generator: torch.Generator | None = None, device=None, **kwargs) -> Tensor:
    """``sampler(*args, **kwargs)`` (``torch.randn``, ``torch.rand``, ``torch.randint``)
    run on the generator's device and moved to ``device``: a CPU generator drives a
    model on a GPU, and one seed gives the same numbers wherever the model runs."""
    source = generator.device if generator is not None else device
    return sampler(*args, generator=generator, device=source, **kwargs).to(device)


def full_precision(t: Tensor) -> Tensor:
    """``t`` in at least float32: a network's bfloat16/float16 output under autocast
    (``train.amp``) is cast up before it enters a log-density; float32 and float64 pass."""
    return t.to(torch.promote_types(t.dtype, torch.float32))


def _sum_except_batch(t: Tensor) -> Tensor:
    return t.reshape(t.shape[0], -1).sum(1)


def log_mean_exp(t: Tensor, dim: int = 0) -> Tensor:
    """log (1/k) sum_i exp(t_i) along ``dim`` (k = its length), computed stably with
    logsumexp. With t_i = log p(x, z_i) - log q(z_i | x), z_i ~ q, this is the
    importance-weighted estimate of log p(x) (IWAE, Burda et al. 2016)."""
    return torch.logsumexp(t, dim=dim) - math.log(t.shape[dim])


def bits_per_dim(nll_nats: Tensor | float, num_dims: int) -> Tensor | float:
    """Negative log-likelihood in nats per example -> bits per dimension."""
    return nll_nats / (num_dims * math.log(2))


# ----------------------------------------------------------------- Bernoulli


def bernoulli_log_prob(logits: Tensor, x: Tensor) -> Tensor:
    """log p(x) for independent Bernoulli(sigmoid(logits)); x in {0, 1}, shape (B, ...)."""
    return -_sum_except_batch(F.binary_cross_entropy_with_logits(logits, x, reduction="none"))


# ----------------------------------------------------------------- Gaussian


def gaussian_log_prob(x: Tensor, mean: Tensor, log_var: Tensor) -> Tensor:
    """log N(x; mean, diag(exp(log_var))), shape (B,)."""
    return _sum_except_batch(-0.5 * (LOG_2PI + log_var + (x - mean) ** 2 * torch.exp(-log_var)))


def standard_normal_log_prob(z: Tensor) -> Tensor:
    """log N(z; 0, I), shape (B,)."""
    return _sum_except_batch(-0.5 * (LOG_2PI + z**2))


def kl_gaussian_standard(mean: Tensor, log_var: Tensor) -> Tensor:
    """KL( N(mean, diag(exp(log_var))) || N(0, I) ) in closed form, shape (B,)."""
    return _sum_except_batch(0.5 * (mean**2 + torch.exp(log_var) - 1.0 - log_var))


def kl_gaussian(mean_q: Tensor, log_var_q: Tensor, mean_p: Tensor, log_var_p: Tensor) -> Tensor:
    """KL( N(mean_q, diag(exp(log_var_q))) || N(mean_p, diag(exp(log_var_p))) ) in closed form,
    nats, shape (B,):  0.5 * sum_j [ log(s_p^2 / s_q^2) + (s_q^2 + (m_q - m_p)^2) / s_p^2 - 1 ]."""
    ratio = torch.exp(log_var_q - log_var_p)
    return _sum_except_batch(
        0.5 * (log_var_p - log_var_q + ratio + (mean_q - mean_p) ** 2 * torch.exp(-log_var_p) - 1.0)
    )


# ----------------------------------------------------------------- discretized logistic


def discretized_logistic_log_prob(x: Tensor, mean: Tensor, log_scale: Tensor, levels: int = 256) -> Tensor:
    """log P(x) for x on the grid {0, 1/(levels-1), ..., 1} under a logistic
    distribution discretised into ``levels`` bins (PixelCNN++, Salimans et al. 2017).

    Bin k covers [x - h, x + h] with h = 1 / (2 (levels - 1)); the two end bins
    extend to -inf and +inf, so the probabilities over the grid sum to one.
    ``mean`` is in [0, 1] units, shape like x. Returns shape (B,).
    """
    half = 0.5 / (levels - 1)
    inv_s = torch.exp(-log_scale)
    plus = inv_s * (x - mean + half)
    minus = inv_s * (x - mean - half)
    cdf_plus = torch.sigmoid(plus)
    cdf_minus = torch.sigmoid(minus)
    log_cdf_plus = F.logsigmoid(plus)  # log CDF at the upper edge (for x = 0)
    log_one_minus_cdf_minus = -F.softplus(minus)  # log (1 - CDF) at the lower edge (for x = 1)
    mid = (x - mean) * inv_s
    # Probability mass of a bin; fall back to density * width when the difference underflows.
    log_mass = torch.log(torch.clamp(cdf_plus - cdf_minus, min=1e-12))
    log_density_width = mid - log_scale - 2.0 * F.softplus(mid) + math.log(2 * half)
    log_mid = torch.where(cdf_plus - cdf_minus > 1e-5, log_mass, log_density_width)
    lp = torch.where(x < half, log_cdf_plus, torch.where(x > 1 - half, log_one_minus_cdf_minus, log_mid))
    return _sum_except_batch(lp)


def discretized_logistic_sample(
    mean: Tensor, log_scale: Tensor, levels: int = 256, generator: torch.Generator | None = None
) -> Tensor:
    """Sample from the discretised logistic: a logistic draw rounded to the grid, clipped to [0, 1]."""
    u = draw(torch.rand, mean.shape, generator=generator, device=mean.device).clamp(1e-5, 1 - 1e-5)
    x = mean + torch.exp(log_scale) * (torch.log(u) - torch.log1p(-u))
    return torch.round(x.clamp(0, 1) * (levels - 1)) / (levels - 1)


# ----------------------------------------------------------------- discretized logistic mixture


def discretized_logistic_mixture_log_prob(
    x: Tensor, logit_weights: Tensor, means: Tensor, log_scales: Tensor, levels: int = 256
) -> Tensor:
    """log P(x) under a mixture of K discretised logistics (Salimans et al. 2017, PixelCNN++),
    independently for every dimension of x, summed: shape (B,).

    x is on the grid {0, 1/(levels-1), ..., 1}, shape (B, ...); the parameters have
    shape (B, K, ...): mixture logits, means in [0, 1] units and log scales.
    Exact: the probabilities of the ``levels`` grid values sum to one.
    """
    xk = x.unsqueeze(1).expand_as(means)
    # The single-logistic function sums over all but dim 0: flattening everything
    # into dim 0 returns the log mass of every element.
    log_mass = discretized_logistic_log_prob(
        xk.reshape(-1, 1), means.reshape(-1, 1), log_scales.reshape(-1, 1), levels
    ).view_as(means)
    lp = torch.logsumexp(F.log_softmax(logit_weights, dim=1) + log_mass, dim=1)
    return _sum_except_batch(lp)


def discretized_logistic_mixture_sample(
    logit_weights: Tensor,
    means: Tensor,
    log_scales: Tensor,
    levels: int = 256,
    generator: torch.Generator | None = None,
) -> Tensor:
    """One draw per row from the mixture: parameters (B, K) -> values (B,) on the grid.

    Draws, in this order, one uniform per row to pick the component (inverse CDF of
    the softmax weights) and one for the logistic itself.
    """
    u = draw(torch.rand, logit_weights.shape[0], generator=generator, device=logit_weights.device)
    cdf = torch.softmax(logit_weights, dim=1).cumsum(dim=1)
    k = (cdf < u[:, None]).sum(dim=1).clamp(max=logit_weights.shape[1] - 1)
    mean = means.gather(1, k[:, None])[:, 0]
    log_scale = log_scales.gather(1, k[:, None])[:, 0]
    return discretized_logistic_sample(mean, log_scale, levels, generator=generator)
