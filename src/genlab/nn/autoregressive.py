"""What PixelCNN and Gated PixelCNN share: output distributions, exact
log-likelihood, naive and cached sampling, completion.

An image model here factors ``p(x) = prod_i p(x_i | x_<i)`` in raster order
(rows top to bottom, columns left to right, channels R -> G -> B inside a
pixel). Its network maps a batch (B, C, H, W) to distribution parameters
(B, C * P, H, W): for every pixel and channel, P numbers describing
``p(x_i | x_<i)``, laid out channel-major (channel c owns ``c*P .. c*P+P-1``).
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import Tensor

from .. import distributions as D
from ..errors import ConfigError
from ..models.base import GenerativeModel, TrainStep
from .masked import Position, caching

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


class AutoregressiveImageModel(GenerativeModel):
    """Base of the image models: subclasses define ``forward`` and the cached step.

    Subclass contract:

    * ``forward(x, labels=None)``: x (B, C, H, W) in input space -> parameters
      (B, C*P, H, W). Output (r, c, channel k) may depend only on inputs before it.
    * ``_cached_params(x, labels, pos, row, col)``: inside :func:`caching`,
      the parameters (B, C*P) at pixel (row, col), computed from the caches plus
      the current values of that pixel (which it also records in the caches).
    * ``_cached_row_done(x, labels, pos, row)``: called after a row is complete
      (the Gated PixelCNN updates its vertical stack there).
    """

    likelihood_kind = "exact"

    def __init__(self, config):
        super().__init__(config)
        c = config.image_shape[0]
        self.likelihood = resolve_likelihood(config.likelihood, c)
        self.head = OutputHead(self.likelihood, config.grey_levels, config.mixtures)
        # Binarised data for Bernoulli, the 8-bit grid otherwise.
        self.input_mode = "binary" if self.likelihood == "bernoulli" else "unit"

    @property
    def out_channels(self) -> int:
        return self.config.image_shape[0] * self.head.params_per_channel

    @staticmethod
    def network_input(x: Tensor) -> Tensor:
        """Input space [0, 1] -> [-1, 1], what the first convolution sees."""
        return 2 * x - 1

    # ------------------------------------------------------------ likelihood
    def log_prob(self, x: Tensor, *, labels: Tensor | None = None, iw_samples: int | None = None,
                 generator: torch.Generator | None = None) -> Tensor:
        """Exact log p(x) (log p(x | label) when conditional) in nats, shape (B,).

        x: (B, C, H, W) in the model's input space: {0, 1} for Bernoulli, the grid
        {0, 1/(grey_levels-1), ..., 1} otherwise (8-bit data divided by 255). Exact and
        deterministic: ``iw_samples`` and ``generator`` are ignored.
        """
        self.check_images(x)
        labels = self.check_labels(labels, x.shape[0])
        return self.head.log_prob(self(x, labels), x)

    def train_steps(self) -> list[TrainStep]:
        def loss(batch: dict) -> dict:
            x = batch["x"]
            y = batch.get("y") if self.config.num_classes > 0 else None
            nll = -self.log_prob(x, labels=y).mean()
            return {"loss": nll, "nll": nll.detach(), "bpd": D.bits_per_dim(nll.detach(), self.num_dims)}

        return [TrainStep("nll", [self], loss)]

    # ------------------------------------------------------------ sampling
    @torch.inference_mode()
    def sample(self, n: int, *, labels: Tensor | None = None, generator: torch.Generator | None = None, method: str = "cached") -> Tensor:
        """n images (n, C, H, W) in [0, 1], drawn pixel by pixel in raster order.

        ``method="cached"`` (default) reuses every layer's past activations,
        ``"naive"`` runs the whole network once per pixel and channel. Both draw
        the same random numbers in the same order, so the same generator state
        gives the same images.
        """
        x = torch.zeros(n, *self.config.image_shape, device=self.device)
        observed = torch.zeros_like(x, dtype=torch.bool)
        return self._generate(x, observed, self.check_labels(labels, n), generator, method)

    @torch.inference_mode()
    def complete(self, x: Tensor, observed_mask: Tensor, *, generator: torch.Generator | None = None, labels: Tensor | None = None, method: str = "cached") -> Tensor:
        """Keep the pixels where ``observed_mask`` is 1 and sample the others in order.

        x: (N, C, H, W) images in [0, 1] (mapped to the model's values: thresholded
        at 0.5 for Bernoulli, rounded to the grid otherwise). observed_mask:
        broadcastable to x, e.g. (H, W), (N, 1, H, W); 1/True = observed.
        Returns (N, C, H, W) in [0, 1]; observed pixels are returned unchanged
        (up to that mapping). Pixels are sampled given everything before them in
        raster order: observed pixels *after* a missing one do not inform it.
        """
        self.check_images(x)
        x = self.head.to_grid(x.to(self.device, torch.float32)).clone()
        try:
            observed = torch.as_tensor(observed_mask, device=self.device).bool().expand_as(x).clone()
        except RuntimeError:
            raise ValueError(f"observed_mask of shape {tuple(torch.as_tensor(observed_mask).shape)} does not broadcast to images {tuple(x.shape)}") from None
        return self._generate(x, observed, self.check_labels(labels, x.shape[0]), generator, method)

    def _generate(self, x: Tensor, observed: Tensor, labels: Tensor | None, generator, method: str) -> Tensor:
        if method not in ("cached", "naive"):
            raise ValueError(f"method must be 'cached' or 'naive', got {method!r}")
        n, C, H, W = x.shape
        P = self.head.params_per_channel
        was_training = self.training
        self.eval()
        cache = caching(self, n, H, W) if method == "cached" else contextlib.nullcontext(None)
        try:
            with cache as pos:
                for i in range(H):
                    for j in range(W):
                        for c in range(C):
                            keep = observed[:, c, i, j]
                            if keep.all():
                                continue
                            if method == "naive":
                                params = self(x, labels)[:, c * P : (c + 1) * P, i, j]
                            else:
                                params = self._cached_params(x, labels, pos, i, j)[:, c * P : (c + 1) * P]
                            value = self.head.sample(params, generator)
                            x[:, c, i, j] = torch.where(keep, x[:, c, i, j], value)
                        if method == "cached":
                            # Record the finished pixel in every layer's cache.
                            self._cached_params(x, labels, pos, i, j)
                    if method == "cached":
                        self._cached_row_done(x, labels, pos, i)
        finally:
            self.train(was_training)
        return x

    def _cached_params(self, x: Tensor, labels: Tensor | None, pos: Position, row: int, col: int) -> Tensor:
        pos.row, pos.col_start, pos.col_end = row, col, col + 1
        return self(x[:, :, row : row + 1, col : col + 1], labels)[:, :, 0, 0]

    def _cached_row_done(self, x: Tensor, labels: Tensor | None, pos: Position, row: int) -> None:
        pass
