"""GAN objectives, written on the discriminator's raw outputs ("logits").

Notation: ``D(x) = sigmoid(l(x))`` for the two log-loss objectives, where
``l`` is the discriminator's logit; for least squares and hinge ``D(x) = l(x)``
is the raw score. Every function returns a scalar to *minimise* (the Trainer
minimises; a player who maximises ``V`` minimises ``-V``).

* ``minimax`` (Goodfellow et al., 2014, eq. 1)::

      min_G max_D  E_x[log D(x)] + E_z[log(1 - D(G(z)))]

  D minimises ``-E[log D(x)] - E[log(1 - D(G(z)))]``, G minimises
  ``E[log(1 - D(G(z)))]`` (the *saturating* form: its gradient vanishes when D
  confidently rejects the fakes, see :func:`minimax_g_loss`).
* ``non-saturating`` (same paper, section 3): D as above, G maximises
  ``E[log D(G(z))]``, i.e. minimises ``-E[log D(G(z))]``.
* ``least-squares`` (LSGAN, Mao et al., 2017, eq. 2 with a=0, b=c=1)::

      D: 1/2 E_x[(D(x) - 1)^2] + 1/2 E_z[D(G(z))^2]
      G: 1/2 E_z[(D(G(z)) - 1)^2]

* ``hinge`` (Lim & Ye 2017; Miyato et al. 2018)::

      D: E_x[max(0, 1 - D(x))] + E_z[max(0, 1 + D(G(z)))]
      G: -E_z[D(G(z))]

* Wasserstein (WGAN, Arjovsky et al. 2017; with :func:`gradient_penalty` WGAN-GP), on
  raw critic scores, plus the drift term of progressive growing (Karras et al. 2018)::

      D: E_z[D(G(z))] - E_x[D(x)]  (+ eps_drift E_x[D(x)^2])
      G: -E_z[D(G(z))]

  (functions only, used by ``progan``; not in :data:`OBJECTIVES`)

The identities ``log sigmoid(l) = -softplus(-l)`` and
``log(1 - sigmoid(l)) = log sigmoid(-l) = -softplus(l)`` keep every
log-loss finite for any logit.

Penalties on the discriminator: :func:`r1_penalty` (Mescheder et al., 2018) and
:func:`gradient_penalty` (WGAN-GP, Gulrajani et al., 2017).
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from .errors import ConfigError

__all__ = [
    "OBJECTIVES",
    "check_objective",
    "d_loss",
    "g_loss",
    "d_output",
    "minimax_d_loss",
    "minimax_g_loss",
    "non_saturating_g_loss",
    "least_squares_d_loss",
    "least_squares_g_loss",
    "hinge_d_loss",
    "hinge_g_loss",
    "wasserstein_d_loss",
    "wasserstein_g_loss",
    "drift_penalty",
    "PENALTIES",
    "check_penalty",
    "r1_penalty",
    "gradient_penalty",
]


def log_D(logits: Tensor) -> Tensor:
    """``log D = log sigmoid(l)``, stable for any logit."""
    return F.logsigmoid(logits)


def log_one_minus_D(logits: Tensor) -> Tensor:
    """``log(1 - D) = log sigmoid(-l)``, stable for any logit."""
    return F.logsigmoid(-logits)


# --------------------------------------------------------------------------- log-loss objectives


def minimax_d_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """``-(E[log D(x)] + E[log(1 - D(G(z)))])`` (D's side of both log-loss objectives)."""
    return -(log_D(real_logits).mean() + log_one_minus_D(fake_logits).mean())


def minimax_g_loss(fake_logits: Tensor) -> Tensor:
    """``E[log(1 - D(G(z)))]``, the saturating generator loss.

    Its derivative with respect to the logit is ``-sigmoid(l) = -D(G(z))``: it
    vanishes as D confidently rejects the fakes (``D(G(z)) -> 0``), which is
    exactly the situation early in training.
    """
    return log_one_minus_D(fake_logits).mean()


def non_saturating_g_loss(fake_logits: Tensor) -> Tensor:
    """``-E[log D(G(z))]``; derivative w.r.t. the logit ``-(1 - D(G(z)))``, close to -1
    when D rejects the fakes, so G keeps learning."""
    return -log_D(fake_logits).mean()


# --------------------------------------------------------------------------- least squares


def least_squares_d_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """``1/2 E[(D(x) - 1)^2] + 1/2 E[D(G(z))^2]`` (real target b = 1, fake target a = 0)."""
    return 0.5 * ((real_logits - 1) ** 2).mean() + 0.5 * (fake_logits**2).mean()


def least_squares_g_loss(fake_logits: Tensor) -> Tensor:
    """``1/2 E[(D(G(z)) - 1)^2]`` (G wants D to output c = 1 on fakes)."""
    return 0.5 * ((fake_logits - 1) ** 2).mean()


# --------------------------------------------------------------------------- hinge


def hinge_d_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """``E[max(0, 1 - D(x))] + E[max(0, 1 + D(G(z)))]``."""
    return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()


def hinge_g_loss(fake_logits: Tensor) -> Tensor:
    """``-E[D(G(z))]``."""
    return -fake_logits.mean()


# --------------------------------------------------------------------------- Wasserstein


def wasserstein_d_loss(real_scores: Tensor, fake_scores: Tensor) -> Tensor:
    """``E[D(G(z))] - E[D(x)]``: the critic's negated estimate of the Wasserstein-1 distance."""
    return fake_scores.mean() - real_scores.mean()


def wasserstein_g_loss(fake_scores: Tensor) -> Tensor:
    """``-E[D(G(z))]``."""
    return -fake_scores.mean()


def drift_penalty(real_scores: Tensor, eps_drift: float) -> Tensor:
    """``eps_drift * E_x[D(x)^2]`` (Karras et al. 2018, appendix A.1): keeps the critic's
    scores on real data from drifting far from 0."""
    return eps_drift * real_scores.pow(2).mean()


# --------------------------------------------------------------------------- dispatch

#: objective name -> (D's loss, G's loss)
OBJECTIVES: dict[str, tuple[Callable[[Tensor, Tensor], Tensor], Callable[[Tensor], Tensor]]] = {
    "minimax": (minimax_d_loss, minimax_g_loss),
    "non-saturating": (minimax_d_loss, non_saturating_g_loss),
    "least-squares": (least_squares_d_loss, least_squares_g_loss),
    "hinge": (hinge_d_loss, hinge_g_loss),
}


def check_objective(name: str) -> str:
    """Return ``name`` if it is a known objective, else raise a ConfigError listing them."""
    if name not in OBJECTIVES:
        raise ConfigError(f"unknown GAN objective {name!r}; choose one of: {', '.join(OBJECTIVES)}")
    return name


def d_loss(objective: str, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """The discriminator's loss (to minimise) under ``objective``."""
    return OBJECTIVES[check_objective(objective)][0](real_logits, fake_logits)


def g_loss(objective: str, fake_logits: Tensor) -> Tensor:
    """The generator's loss (to minimise) under ``objective``."""
    return OBJECTIVES[check_objective(objective)][1](fake_logits)


def d_output(objective: str, logits: Tensor) -> Tensor:
    """What D "says" about a sample: the probability ``sigmoid(l)`` of being real for the
    log-loss objectives, the raw score ``l`` for least squares (targets 0 / 1) and hinge
    (margins -1 / +1)."""
    if check_objective(objective) in ("minimax", "non-saturating"):
        return torch.sigmoid(logits)
    return logits


# --------------------------------------------------------------------------- penalties

PENALTIES = ("none", "r1", "gp")


def check_penalty(name: str) -> str:
    if name not in PENALTIES:
        raise ConfigError(f"unknown discriminator penalty {name!r}; choose one of: {', '.join(PENALTIES)}")
    return name


def _input_grad_norm2(discriminator: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """Per-example squared norm of ``d l(x) / d x``, keeping the graph (the penalty is trained)."""
    x = x.detach().requires_grad_(True)
    logits = discriminator(x)
    (grad,) = torch.autograd.grad(logits.sum(), x, create_graph=True)
    return grad.reshape(grad.shape[0], -1).pow(2).sum(1)


def r1_penalty(discriminator: Callable[[Tensor], Tensor], real: Tensor, gamma: float) -> Tensor:
    """R1 (Mescheder et al., 2018, eq. 9): ``gamma/2 * E_x[||grad_x l(x)||^2]`` on real data.

    ``discriminator`` maps a batch to logits (N,); pass a closure to bind labels.
    """
    return 0.5 * gamma * _input_grad_norm2(discriminator, real).mean()


def gradient_penalty(
    discriminator: Callable[[Tensor], Tensor],
    real: Tensor,
    fake: Tensor,
    weight: float,
    generator: torch.Generator | None = None,
) -> Tensor:
    """WGAN-GP (Gulrajani et al., 2017, eq. 3): ``weight * E[(||grad l(x_hat)|| - 1)^2]``
    at random points ``x_hat = eps x + (1 - eps) G(z)`` between real and fake samples."""
    shape = (real.shape[0],) + (1,) * (real.dim() - 1)
    eps = torch.rand(shape, device=real.device, dtype=real.dtype, generator=generator)
    x_hat = eps * real.detach() + (1 - eps) * fake.detach()
    norm = (_input_grad_norm2(discriminator, x_hat) + 1e-12).sqrt()
    return weight * ((norm - 1) ** 2).mean()
