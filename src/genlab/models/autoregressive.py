"""What PixelCNN, Gated PixelCNN and PixelVAE's decoder share: exact
log-likelihood, naive and cached sampling, completion.

The model factors ``p(x) = prod_i p(x_i | x_<i)`` in raster order; the per-pixel
output distributions are :class:`genlab.nn.autoregressive.OutputHead`.
"""

from __future__ import annotations

import contextlib

import torch
from torch import Tensor

from .. import distributions as D
from ..nn.autoregressive import OutputHead, resolve_likelihood
from ..nn.masked import Position, caching
from .base import GenerativeModel, TrainStep


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
    def log_prob(
        self,
        x: Tensor,
        *,
        labels: Tensor | None = None,
        iw_samples: int | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
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
    def sample(
        self, n: int, *, labels: Tensor | None = None, generator: torch.Generator | None = None, method: str = "cached"
    ) -> Tensor:
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
    def complete(
        self,
        x: Tensor,
        observed_mask: Tensor,
        *,
        generator: torch.Generator | None = None,
        labels: Tensor | None = None,
        method: str = "cached",
    ) -> Tensor:
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
            raise ValueError(
                f"observed_mask of shape {tuple(torch.as_tensor(observed_mask).shape)} does "
                f"not broadcast to images {tuple(x.shape)}"
            ) from None
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
