"""Invertible layers of Glow (Kingma & Dhariwal 2018, "Glow: Generative Flow with
Invertible 1x1 Convolutions", arXiv:1807.03039, section 3 and table 1) and RealNVP
(Dinh, Sohl-Dickstein & Bengio 2017, "Density estimation using Real NVP",
arXiv:1605.08803): actnorm, the LU-parameterised invertible 1x1 convolution, a
fixed channel reversal, the affine coupling layer and the squeeze operation.

Every layer maps (B, C, H, W) -> (B, C, H, W) (squeeze: -> (B, 4C, H/2, W/2)) with

    forward(x) -> (y, log|det dy/dx|)      log-determinant per example, nats, shape (B,)
    reverse(y) -> x                        the exact inverse

so a flow's log-density is log p(x) = log p(z) + sum of the layers' log-determinants.
They are kept in a file of their own so glow.py reads as the model only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def squeeze(x: Tensor) -> Tensor:
    """Space-to-channel: (B, C, H, W) -> (B, 4C, H/2, W/2); each 2x2 block becomes 4 channels
    (RealNVP section 3.6). A permutation, so its log-determinant is 0."""
    b, c, h, w = x.shape
    x = x.view(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4)
    return x.reshape(b, 4 * c, h // 2, w // 2)


def unsqueeze(x: Tensor) -> Tensor:
    """The inverse of :func:`squeeze`: (B, 4C, H, W) -> (B, C, 2H, 2W)."""
    b, c4, h, w = x.shape
    c = c4 // 4
    x = x.view(b, c, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3)
    return x.reshape(b, c, 2 * h, 2 * w)


class ActNorm(nn.Module):
    """Activation normalisation (Glow section 3.1): y = (x + bias) * exp(log_scale), per channel.

    Data-dependent initialisation: the first forward pass in training mode sets
    bias = -mean and log_scale = -log(std) of that batch, per channel, so the output
    has zero mean and unit variance per channel; afterwards both are free parameters.
    Whether this has happened is the buffer ``initialized``, so it is saved with the
    weights and a loaded or resumed model is never initialised twice.
    log|det| = H * W * sum_c log_scale_c.

    As in the Glow authors' code, the parameter is log_scale / LOG_SCALE_FACTOR: Adam moves
    a parameter by about the learning rate per step, so the log-scale moves 3x faster,
    which the large expansions of near-constant pixels (MNIST's background) need.
    """

    LOG_SCALE_FACTOR = 3.0

    def __init__(self, channels: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.scaled_log_scale = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.register_buffer("initialized", torch.zeros((), dtype=torch.bool))

    @property
    def log_scale(self) -> Tensor:
        """Per-channel log-scale (1, C, 1, 1)."""
        return self.scaled_log_scale * self.LOG_SCALE_FACTOR

    @torch.no_grad()
    def initialize(self, x: Tensor) -> None:
        """Set bias and log_scale from the batch x (B, C, H, W) so its output is standardised."""
        mean = x.mean(dim=(0, 2, 3), keepdim=True)
        std = x.std(dim=(0, 2, 3), keepdim=True, unbiased=False)
        self.bias.copy_(-mean)
        self.scaled_log_scale.copy_(-torch.log(std + 1e-6) / self.LOG_SCALE_FACTOR)
        self.initialized.fill_(True)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if self.training and not bool(self.initialized):
            self.initialize(x)
        y = (x + self.bias) * torch.exp(self.log_scale)
        log_det = x.shape[2] * x.shape[3] * self.log_scale.sum()
        return y, log_det.expand(x.shape[0])

    def reverse(self, y: Tensor) -> Tensor:
        return y * torch.exp(-self.log_scale) - self.bias


class InvConv1x1(nn.Module):
    """Invertible 1x1 convolution with the LU parameterisation (Glow section 3.2):

        W = P L (U + diag(sign(s) * exp(log|s|)))

    P a fixed permutation, L unit lower triangular, U strictly upper triangular, all
    from the LU decomposition of a random rotation. log|det W| = sum log|s|, so the
    layer's log|det| = H * W * sum log|s| costs O(C) instead of O(C^3).
    """

    def __init__(self, channels: int):
        super().__init__()
        q, _ = torch.linalg.qr(torch.randn(channels, channels, dtype=torch.float64))
        p, lower, upper = torch.linalg.lu(q)
        s = torch.diagonal(upper)
        self.register_buffer("perm", p.float())
        self.register_buffer("sign_s", torch.sign(s).float())
        self.register_buffer("lower_mask", torch.tril(torch.ones(channels, channels), -1))
        self.lower = nn.Parameter(lower.float() * self.lower_mask)
        self.upper = nn.Parameter(torch.triu(upper, 1).float())
        self.log_s = nn.Parameter(torch.log(torch.abs(s)).float())

    def weight(self) -> Tensor:
        """The (C, C) matrix W."""
        eye = torch.eye(self.lower.shape[0], dtype=self.lower.dtype, device=self.lower.device)
        lower = self.lower * self.lower_mask + eye
        upper = self.upper * self.lower_mask.T + torch.diag(self.sign_s * torch.exp(self.log_s))
        return self.perm @ lower @ upper

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        w = self.weight()
        log_det = x.shape[2] * x.shape[3] * self.log_s.sum()
        return F.conv2d(x, w[:, :, None, None]), log_det.expand(x.shape[0])

    def reverse(self, y: Tensor) -> Tensor:
        w_inv = torch.linalg.inv(self.weight().double()).to(y.dtype)
        return F.conv2d(y, w_inv[:, :, None, None])


class ReversePermutation(nn.Module):
    """Reverse the channel order (RealNVP's alternation of which half is transformed).
    Glow's configuration without 1x1 convolutions uses this in their place; log|det| = 0."""

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return x.flip(1), x.new_zeros(x.shape[0])

    def reverse(self, y: Tensor) -> Tensor:
        return y.flip(1)


class ZeroConv2d(nn.Conv2d):
    """A 3x3 convolution initialised to zero, its output multiplied by a learned
    per-channel exp(3 * s) (Glow: the last layer of every coupling network and the prior
    networks, as in the authors' code), so each flow step starts as the identity."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__(in_ch, out_ch, 3, padding=1)
        nn.init.zeros_(self.weight)
        nn.init.zeros_(self.bias)
        self.scaled_log_gain = nn.Parameter(torch.zeros(1, out_ch, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x) * torch.exp(ActNorm.LOG_SCALE_FACTOR * self.scaled_log_gain)


class AffineCoupling(nn.Module):
    """Affine coupling (RealNVP section 3.3, Glow section 3.3), the sigmoid scale of Glow:

        x_a, x_b = split(x);  (t, r) = NN(x_a);  s = sigmoid(r + 2)
        y_a = x_a;  y_b = (x_b + t) * s;   log|det| = sum log s

    NN: 3x3 conv -> ReLU -> 1x1 conv -> ReLU -> zero-initialised 3x3 conv. x_a has
    floor(C/2) channels. The sigmoid keeps every scale in (0, 1), which keeps deep
    flows stable; +2 starts it near 0.88.

    ``reverse`` divides by s, which a trained flow makes tiny on near-constant inputs
    (MNIST's background): a latent far from the data can then overflow. Its output is
    clipped to +-REVERSE_LIMIT (far outside any activation the data produce; the exact
    inverse is unchanged there), so such a sample comes out saturated instead of NaN.
    """

    REVERSE_LIMIT = 1e4

    def __init__(self, channels: int, hidden: int):
        super().__init__()
        self.c_a = channels // 2
        c_b = channels - self.c_a
        self.net = nn.Sequential(
            nn.Conv2d(self.c_a, hidden, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(hidden, hidden, 1),
            nn.ReLU(),
            ZeroConv2d(hidden, 2 * c_b),
        )

    def _shift_scale(self, x_a: Tensor) -> tuple[Tensor, Tensor]:
        t, r = self.net(x_a).chunk(2, dim=1)
        return t, torch.sigmoid(r + 2.0)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x_a, x_b = x[:, : self.c_a], x[:, self.c_a :]
        t, s = self._shift_scale(x_a)
        y_b = (x_b + t) * s
        return torch.cat([x_a, y_b], 1), torch.log(s).flatten(1).sum(1)

    def reverse(self, y: Tensor) -> Tensor:
        y_a, y_b = y[:, : self.c_a], y[:, self.c_a :]
        t, s = self._shift_scale(y_a)
        return torch.cat([y_a, (y_b / s - t).clamp(-self.REVERSE_LIMIT, self.REVERSE_LIMIT)], 1)


class FlowStep(nn.Module):
    """One step of flow (Glow figure 2a): actnorm -> 1x1 convolution (or channel
    reversal when ``invertible_conv`` is False) -> affine coupling."""

    def __init__(self, channels: int, hidden: int, invertible_conv: bool = True):
        super().__init__()
        self.layers = nn.ModuleList(
            [
                ActNorm(channels),
                InvConv1x1(channels) if invertible_conv else ReversePermutation(),
                AffineCoupling(channels, hidden),
            ]
        )

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        total = x.new_zeros(x.shape[0])
        for layer in self.layers:
            x, log_det = layer(x)
            total = total + log_det
        return x, total

    def reverse(self, y: Tensor) -> Tensor:
        for layer in reversed(self.layers):
            y = layer.reverse(y)
        return y
