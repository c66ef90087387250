"""Inverse autoregressive flow (Kingma, Salimans, Jozefowicz, Chen, Sutskever &
Welling, 2016, "Improving Variational Inference with Inverse Autoregressive
Flow", arXiv:1606.04934), with MADE-style masked linear layers (Germain,
Gregor, Murray & Larochelle, 2015, "MADE: Masked Autoencoder for Distribution
Estimation", arXiv:1502.03509).

The flow
--------
A sample of a diagonal Gaussian, z_0 = mu + sigma_0 * eps with eps ~ N(0, I),
is pushed through T steps. Step t reads a context vector h (from the encoder)
and computes, with an autoregressive network (:class:`ARNN`),

    [m_t, s_t] = AR-NN_t(z_{t-1}, h),   sigma_t = sigmoid(s_t),
    z_t = sigma_t * z_{t-1} + (1 - sigma_t) * m_t,

where m_{t,i} and s_{t,i} depend only on the coordinates of z_{t-1} that come
before i in the step's order. The Jacobian dz_t / dz_{t-1} is therefore
triangular with diagonal sigma_t, and log |det| = sum_i log sigma_{t,i}. Steps
alternate between the natural and the reversed variable order, so that every
coordinate can depend on every other one after two steps.

The density of the final sample, per example, in nats (d = latent size)::

    log q(z_T | x) = sum_{i=1}^{d} [ -1/2 eps_i^2 - 1/2 log(2 pi) - log sigma_{0,i} ]
                     - sum_{t=1}^{T} sum_{i=1}^{d} log sigma_{t,i}.

It is cheap at the sampled points (one pass per step). At an arbitrary point
z_T it needs the inverse map (:meth:`IAF.inverse`: d passes per step), because
each step is only sequentially invertible.

sigma_t is initialised near 1 (the paper's "forget gate bias": ``forget_bias``
is added to s_t, sigmoid(2) = 0.88), so a new flow starts close to the
identity and the posterior close to the diagonal Gaussian.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..distributions import full_precision

__all__ = ["MaskedLinear", "made_degrees", "ARNN", "IAFStep", "IAF"]


class MaskedLinear(nn.Linear):
    """A linear layer whose (out, in) weight is multiplied by a fixed 0/1 ``mask``:
    output o reads input i only where mask[o, i] = 1. Shapes: (B, in) -> (B, out)."""

    def __init__(self, in_features: int, out_features: int, mask: Tensor):
        super().__init__(in_features, out_features)
        if mask.shape != (out_features, in_features):
            raise ValueError(f"mask must have shape ({out_features}, {in_features}), got {tuple(mask.shape)}")
        self.register_buffer("mask", mask.to(self.weight.dtype), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight * self.mask, self.bias)


def made_degrees(dim: int, width: int) -> Tensor:
    """Degrees of ``width`` hidden units for ``dim`` ordered inputs: 0, 1, ..., dim-1, 0, 1, ...

    Input j (0-based position in the order) has degree j. A hidden unit of degree
    k reads inputs of degree < k and hidden units of degree <= k; output i reads
    hidden units of degree <= i. So output i depends on inputs j < i only, and a
    degree-0 unit sees no input at all (only the context).
    """
    return torch.arange(width) % dim


class ARNN(nn.Module):
    """The autoregressive network of one IAF step: a MADE with an unmasked context input.

    Maps z (B, dim) and a context h (B, context_dim) to (m, s), each (B, dim), with
    m_i and s_i functions of h and of z_j for j < i only. ``hidden`` lists the
    widths of the ELU hidden layers (at least one); h enters the first one.
    ``forget_bias`` initialises the bias of s (sigma = sigmoid(s) starts near 1).
    """

    def __init__(self, dim: int, hidden: Sequence[int], context_dim: int = 0, forget_bias: float = 2.0):
        super().__init__()
        if dim < 1 or not hidden or min(hidden) < 1 or context_dim < 0:
            raise ValueError(
                f"ARNN needs dim >= 1, at least one hidden width >= 1 and context_dim >= 0; got dim={dim}, "
                f"hidden={tuple(hidden)}, context_dim={context_dim}"
            )
        self.dim = dim
        d_in = torch.arange(dim)
        layers, prev = [], d_in
        first = True
        for width in hidden:
            deg = made_degrees(dim, width)
            rule = (deg[:, None] > prev[None, :]) if first else (deg[:, None] >= prev[None, :])
            layers.append(MaskedLinear(len(prev), width, rule.float()))
            prev, first = deg, False
        self.hidden = nn.ModuleList(layers)
        self.context = nn.Linear(context_dim, hidden[0], bias=False) if context_dim else None
        out_deg = torch.cat([d_in, d_in])  # m then s
        self.out = MaskedLinear(len(prev), 2 * dim, (out_deg[:, None] >= prev[None, :]).float())
        with torch.no_grad():
            self.out.bias[dim:] += forget_bias

    def forward(self, z: Tensor, h: Tensor | None = None) -> tuple[Tensor, Tensor]:
        a = self.hidden[0](z)
        if self.context is not None:
            if h is None:
                raise ValueError("this AR-NN was built with a context input: pass h of shape (B, context_dim)")
            a = a + self.context(h)
        a = F.elu(a)
        for layer in self.hidden[1:]:
            a = F.elu(layer(a))
        m, s = full_precision(self.out(a)).chunk(2, dim=-1)  # log sigma enters log q(z|x)
        return m, s


class IAFStep(nn.Module):
    """One IAF step z -> sigma * z + (1 - sigma) * m in the natural order of the
    coordinates, or in the reversed order (``reverse=True``: the AR-NN reads
    z flipped, so m_i depends on z_j for j > i)."""

    def __init__(
        self, dim: int, hidden: Sequence[int], context_dim: int = 0, reverse: bool = False, forget_bias: float = 2.0
    ):
        super().__init__()
        self.reverse = reverse
        self.arnn = ARNN(dim, hidden, context_dim, forget_bias)

    def params(self, z: Tensor, h: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(m, s), each (B, dim), in the coordinates of z (the order is internal)."""
        if not self.reverse:
            return self.arnn(z, h)
        m, s = self.arnn(z.flip(-1), h)
        return m.flip(-1), s.flip(-1)

    def forward(self, z: Tensor, h: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """z (B, dim) -> (z', log|det dz'/dz| = sum_i log sigma_i, shape (B,))."""
        m, s = self.params(z, h)
        sigma = torch.sigmoid(s)
        return sigma * z + (1 - sigma) * m, F.logsigmoid(s).sum(-1)

    def inverse(self, y: Tensor, h: Tensor | None = None) -> Tensor:
        """The z with forward(z) = y, (B, dim). Solved coordinate by coordinate in the
        step's order: after pass k the first k coordinates are exact (dim passes)."""
        z = torch.zeros_like(y)
        for _ in range(y.shape[-1]):
            m, s = self.params(z, h)
            sigma = torch.sigmoid(s)
            z = (y - (1 - sigma) * m) / sigma
        return z


class IAF(nn.Module):
    """T IAF steps alternating natural and reversed order (see the module docstring).

    Args:
        dim: latent size d.
        steps: number of steps T >= 1.
        hidden: widths of each AR-NN's hidden layers.
        context_dim: size of the context h (0: none).
        forget_bias: initial bias of s, so sigma starts at about sigmoid(forget_bias).
    """

    def __init__(self, dim: int, steps: int, hidden: Sequence[int], context_dim: int = 0, forget_bias: float = 2.0):
        super().__init__()
        if steps < 1:
            raise ValueError(f"an IAF needs steps >= 1, got {steps}")
        self.dim = dim
        self.steps = nn.ModuleList(
            IAFStep(dim, hidden, context_dim, reverse=bool(t % 2), forget_bias=forget_bias) for t in range(steps)
        )

    def forward(self, z0: Tensor, h: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """z_0 (B, d) -> (z_T (B, d), sum over steps of log|det|, (B,) nats).
        log q(z_T | x) = log q_0(z_0 | x) - that sum."""
        if z0.dim() != 2 or z0.shape[1] != self.dim:
            raise ValueError(f"expected z of shape (B, {self.dim}), got {tuple(z0.shape)}")
        z, log_det = z0, z0.new_zeros(z0.shape[0])
        for step in self.steps:
            z, ld = step(z, h)
            log_det = log_det + ld
        return z, log_det

    def inverse(self, zT: Tensor, h: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """z_T (B, d) -> (z_0, the same log|det| as :meth:`forward` at z_0).
        Costs d AR-NN passes per step; used to evaluate q at points it did not sample."""
        z = zT
        for step in reversed(self.steps):
            z = step.inverse(z, h)
        return z, self.forward(z, h)[1]
