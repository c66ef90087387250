"""Output distributions of autoregressive models: one distribution per pixel (or
audio sample) and channel, with exact log-likelihoods and inverse-CDF sampling.
The model base class that uses them is :class:`genlab.models.autoregressive.AutoregressiveImageModel`.

An image model factors ``p(x) = prod_i p(x_i | x_<i)`` in raster order
(rows top to bottom, columns left to right, channels R -> G -> B inside a
pixel). Its network maps a batch (B, C, H, W) to distribution parameters
(B, C * P, H, W): for every pixel and channel, P numbers describing
``p(x_i | x_<i)``, laid out channel-major (channel c owns ``c*P .. c*P+P-1``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .. import distributions as D
from ..errors import ConfigError

LIKELIHOODS = ("bernoulli", "categorical", "logistic-mixture")


class OutputHead:
    """One output distribution per pixel and channel.

    * ``"bernoulli"``: x in {0, 1}; P = 1 logit.
    * ``"categorical"``: x on the grid {0, 1/(L-1), ..., 1} with L = ``levels``;
      P = L logits (the 256-way softmax of PixelRNN for 8-bit data).
    * ``"logistic-mixture"``: x on the same grid; P = 3K (K mixture logits,
      K means in [0, 1] units, K log scales) of a discretised logistic mixture
      (Salimans et al. 2017).

    All three are exact discrete likelihoods.
    """

    def __init__(self, likelihood: str, levels: int = 256, mixtures: int = 5):
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"unknown likelihood {likelihood!r}; choose one of {', '.join(LIKELIHOODS)}")
        if likelihood != "bernoulli" and levels < 2:
            raise ValueError(f"levels must be >= 2, got {levels}")
        self.likelihood, self.levels, self.mixtures = likelihood, levels, mixtures
        self.params_per_channel = {"bernoulli": 1, "categorical": levels, "logistic-mixture": 3 * mixtures}[likelihood]

    def _mixture(self, params: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(..., 3K, ...) on dim 1 -> logits, means, log scales (each K on dim 1)."""
        logits, raw_means, log_scales = params.chunk(3, dim=1)
        return logits, 0.5 + 0.5 * raw_means, log_scales.clamp(min=-7.0)

    def log_prob(self, params: Tensor, x: Tensor) -> Tensor:
        """params (B, C*P, H, W), x (B, C, H, W) in input space -> log p(x) in nats, (B,)."""
        b, c, h, w = x.shape
        if self.likelihood == "bernoulli":
            return D.bernoulli_log_prob(params, x)
        p = params.view(b, c, self.params_per_channel, h, w)
        if self.likelihood == "categorical":
            code = torch.round(x * (self.levels - 1)).long().clamp(0, self.levels - 1)
            lp = F.log_softmax(p, dim=2).gather(2, code.unsqueeze(2))
            return lp.reshape(b, -1).sum(1)
        # logistic mixture: move the mixture axis to dim 1: (B, 3K, C, H, W)
        logits, means, log_scales = self._mixture(p.transpose(1, 2))
        return D.discretized_logistic_mixture_log_prob(x, logits, means, log_scales, self.levels)

    def sample(self, params: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """params (B, P) for one pixel channel -> values (B,) in input space.

        Uses inverse-CDF draws from ``generator`` (one uniform for Bernoulli and
        categorical, two for the mixture), so two passes that compute (nearly)
        the same parameters from the same stream draw the same values.
        """
        if self.likelihood == "bernoulli":
            u = D.draw(torch.rand, params.shape[0], generator=generator, device=params.device)
            return (u < torch.sigmoid(params[:, 0])).to(params.dtype)
        if self.likelihood == "categorical":
            u = D.draw(torch.rand, params.shape[0], generator=generator, device=params.device)
            cdf = torch.softmax(params, dim=1).cumsum(dim=1)
            code = (cdf < u[:, None]).sum(dim=1).clamp(max=self.levels - 1)
            return code.to(params.dtype) / (self.levels - 1)
        logits, means, log_scales = self._mixture(params)
        return D.discretized_logistic_mixture_sample(logits, means, log_scales, self.levels, generator)

    def to_grid(self, x01: Tensor) -> Tensor:
        """Images in [0, 1] -> the nearest values this head can model."""
        if self.likelihood == "bernoulli":
            return (x01 >= 0.5).to(x01.dtype)
        return torch.round(x01.clamp(0, 1) * (self.levels - 1)) / (self.levels - 1)


def check_head_config(config) -> None:
    """ConfigError unless ``config.likelihood``, ``config.grey_levels`` and ``config.mixtures``
    (the fields every autoregressive image config has) describe a valid :class:`OutputHead`."""
    config.check_choice("likelihood", ("auto",) + LIKELIHOODS)
    if config.grey_levels < 2:
        raise ConfigError(f"model.grey_levels must be >= 2 (256 for 8-bit images), got {config.grey_levels}")
    config.check_positive("mixtures")


def resolve_likelihood(likelihood: str, channels: int) -> str:
    """``"auto"``: Bernoulli for 1-channel data, the logistic mixture for RGB."""
    if likelihood == "auto":
        return "bernoulli" if channels == 1 else "logistic-mixture"
    return likelihood
