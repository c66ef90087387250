"""Flow matching on the straight path: a velocity field learned by regression, sampled with an ODE.

Lipman, Chen, Ben-Hamu, Nickel & Le (2023), "Flow Matching for Generative
Modeling"; Liu, Gong & Liu (2023), "Flow Straight and Fast: Learning to Generate
and Transfer Data with Rectified Flow"; the likelihood through the instantaneous
change of variables of Chen et al. (2018, "Neural Ordinary Differential
Equations") with Hutchinson's trace estimator as in Grathwohl et al. (2019, FFJORD).

Time runs from noise to data: x_0 ~ N(0, I) at t = 0, data x_1 at t = 1, and the
conditional path is the straight line x_t = (1 - t) x_0 + t x_1 with conditional
velocity u_t(x_t | x_0, x_1) = x_1 - x_0. The loss is

    E_{t ~ U[0, 1], x_0, x_1} | v(x_t, t) - (x_1 - x_0) |^2   (mean over dimensions),

whose minimiser is the marginal velocity v*(x, t) = E[x_1 - x_0 | x_t = x]; the
ODE dx/dt = v*(x, t) carries N(0, I) at t = 0 to the data distribution at t = 1.
Sampling integrates it with Euler, midpoint or Heun steps (``solver``,
``sample_steps``; Heun and midpoint use two network evaluations per step).

Data: 8-bit images dequantized, y = (k + u)/256 in [0, 1) (``input_mode="dequantize"``),
then x_1 = 2 y - 1. Log-likelihood (nats per image), exact up to the ODE solver's error:

    log p_1(x_1) = log N(x_0; 0, I) - int_0^1 div v(x_t, t) dt,   x_t the ODE path through x_1,
    log p(y) = log p_1(2 y - 1) + D log 2,

integrated backwards from t = 1. By default (``likelihood_solver="dopri5"``) the solver is
adaptive, Dormand-Prince RK5(4) with relative and absolute tolerance ``likelihood_tol``, as
in FFJORD (which used 1e-5; here 1e-4, as accurate on MNIST to 0.001 bits/dim and 3x
cheaper): a trained field is stiff just before t = 1, where it contracts the noise onto the
data at the scale of the dequantization cells, and equal steps miss that part of the integral
(on MNIST 20 Heun steps gave -0.94 bits/dim, an impossible value). A fixed-step
``likelihood_solver`` with ``likelihood_steps`` steps remains for quick looks. Like glow's, ``log_prob``
returns log p(y) - D log 256: each 8-bit image owns a cell of volume 256^-D, so this is
(in expectation over the dequantization noise) a lower bound on the discrete log P(k)
(Theis et al. 2016), and bits/dim = -log_prob / (D log 2) compares with glow's
(``log_prob_offset`` is therefore 0).
The divergence is exact (D backward passes, autograd) when ``divergence="exact"``
or ``"auto"`` with D <= ``exact_max_dims``; then ``likelihood_kind == "exact"``.
Otherwise it is Hutchinson's estimate z^T (dv/dx) z with Rademacher z (one probe per
image, fixed along the path): an unbiased *estimate* of the log-density, neither
exact nor a bound; the model then declares ``likelihood_kind == "bound"`` (the
contract's kind for stochastic estimates).

``encode`` integrates the ODE from a (dequantized) image back to its noise
x_0 (latent_shape = image shape), ``decode`` forwards, so interpolation works.
Class conditioning: classifier-free guidance on the velocity (``genlab.nn.unet.guided``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from .. import distributions as D
from ..errors import ConfigError
from ..nn.unet import UNetModelConfig, drop_labels, guided
from ..presets import Preset
from .base import TrainStep
from .unet_image import UNetImageModel

SOLVERS = ("euler", "midpoint", "heun")
#: The adaptive solver of log_prob: Dormand & Prince (1980), the RK5(4) pair with error control.
ADAPTIVE = "dopri5"
#: The U-Net sees 1000 t: the same range of frequencies as a diffusion step index.
TIME_SCALE = 1000.0


@dataclass
class FlowMatchingConfig(UNetModelConfig):
    """Configuration of :class:`FlowMatching` (the U-Net fields come from :class:`UNetModelConfig`)."""

    solver: str = "heun"  # "euler", "midpoint" or "heun" (sampling, encode/decode and the likelihood)
    sample_steps: int = 10  # ODE steps of sample, encode and decode
    likelihood_solver: str = "dopri5"  # log_prob's ODE: "dopri5" (adaptive) or a fixed-step solver of SOLVERS
    likelihood_steps: int = 20  # ODE steps of log_prob with a fixed-step likelihood_solver
    likelihood_tol: float = 1e-4  # dopri5's relative and absolute tolerance (FFJORD used 1e-5; on MNIST 1e-4 is
    # within 0.001 bits/dim of 1e-6 at a third of 1e-5's network evaluations)
    divergence: str = "auto"  # "exact" (autograd, D passes), "hutchinson" (one probe) or "auto"
    exact_max_dims: int = 64  # "auto": exact divergence up to this many dimensions

    def validate(self) -> None:
        super().validate()
        self.check_choice("solver", SOLVERS)
        self.check_choice("likelihood_solver", (ADAPTIVE,) + SOLVERS)
        self.check_choice("divergence", ("exact", "hutchinson", "auto"))
        self.check_positive("sample_steps", "likelihood_steps")
        if not 0 < self.likelihood_tol < 1:
            raise ConfigError(f"model.likelihood_tol must be in (0, 1), e.g. 1e-4; got {self.likelihood_tol}")


#: Training defaults of the registry entry: gradients clipped to norm 1, as DDPM's.
TRAIN_DEFAULTS = {"grad_clip": 1.0}

#: The presets of ``genlab train flow-matching --preset NAME``: none yet.
PRESETS: dict[str, Preset] = {}


def conditional_path(x0: Tensor, x1: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
    """The straight conditional path: x_t = (1 - t) x0 + t x1 and its velocity x1 - x0.
    x0 (noise), x1 (data): (B, ...); t: (B,) in [0, 1]."""
    tb = t.view(-1, *([1] * (x0.dim() - 1)))
    return (1 - tb) * x0 + tb * x1, x1 - x0


Velocity = Callable[[Tensor, float], Tensor]  # v(x (B, ...), t) -> (B, ...)


def ode_step(f: Callable, state: tuple, t: float, h: float, solver: str) -> tuple:
    """One step of size h (negative: backwards in time) of d state/dt = f(state, t); state a tuple of tensors."""

    def add(s, k, c):
        return tuple(a + c * b for a, b in zip(s, k))

    k1 = f(state, t)
    if solver == "euler":
        return add(state, k1, h)
    if solver == "midpoint":
        return add(state, f(add(state, k1, h / 2), t + h / 2), h)
    k2 = f(add(state, k1, h), t + h)  # heun
    return tuple(s + h / 2 * (a + b) for s, a, b in zip(state, k1, k2))


def integrate(f: Callable, state: tuple, t0: float, t1: float, steps: int, solver: str) -> tuple:
    """``steps`` equal steps of :func:`ode_step` from t0 to t1."""
    h = (t1 - t0) / steps
    for k in range(steps):
        state = ode_step(f, state, t0 + k * h, h, solver)
    return state


#: Dormand-Prince RK5(4) tableau: nodes c, stage weights A, 5th-order weights B (also the last
#: stage's row: "first same as last") and the difference E = B - B4 to the embedded 4th-order weights.
DOPRI_C = (0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0)
DOPRI_A = (
    (),
    (1 / 5,),
    (3 / 40, 9 / 40),
    (44 / 45, -56 / 15, 32 / 9),
    (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
    (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
)
DOPRI_B = (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0.0)
DOPRI_E = tuple(
    b - b4 for b, b4 in zip(DOPRI_B, (5179 / 57600, 0.0, 7571 / 16695, 393 / 640, -92097 / 339200, 187 / 2100, 1 / 40))
)


def _weighted(ks: list, coefs, h: float) -> tuple:
    """h * sum_i coefs[i] * ks[i], per tensor of the state tuple (zero coefficients skipped)."""
    terms = [(h * c, k) for c, k in zip(coefs, ks) if c != 0.0]
    return tuple(sum(c * k[j] for c, k in terms) for j in range(len(ks[0])))


def _error_norm(err: tuple, y0: tuple, y1: tuple, tol: float) -> float:
    """max over examples of the RMS over every component of err / (tol + tol * max(|y0|, |y1|))."""
    total, count = 0.0, 0
    for e, a, b in zip(err, y0, y1):
        scaled = e / (tol + tol * torch.maximum(a.abs(), b.abs()))
        total = total + scaled.reshape(len(scaled), -1).pow(2).sum(1)
        count += scaled[0].numel()
    return float((total / count).sqrt().max())


def integrate_adaptive(
    f: Callable, state: tuple, t0: float, t1: float, tol: float, max_steps: int = 10000
) -> tuple[tuple, int]:
    """Integrate d state/dt = f(state, t) from t0 to t1 with Dormand-Prince RK5(4) steps whose
    local error estimate stays within rtol = atol = ``tol`` for every example of the batch
    (the state's first dimension). Returns (the state at t1, the number of evaluations of f)."""
    direction = 1.0 if t1 >= t0 else -1.0
    span = abs(t1 - t0)
    k1 = f(state, t0)
    nfe = 1
    # first step as Hairer, Norsett & Wanner (1993, II.4): 1% of |y| / |f| in tolerance units
    d0, d1 = _error_norm(state, state, state, tol), _error_norm(k1, state, state, tol)
    h = min(span, 1e-6 if min(d0, d1) < 1e-5 else 0.01 * d0 / d1) * direction
    t, steps = t0, 0
    while (t1 - t) * direction > 1e-12:
        if steps >= max_steps:
            raise RuntimeError(
                f"dopri5 took more than {max_steps} steps from t={t0} to t={t1} (stopped at t={t:.6f}): "
                f"the field is too stiff for tolerance {tol:g}; raise "
                "likelihood_tol or use a fixed-step likelihood_solver"
            )
        if (t + h - t1) * direction > 0:
            h = t1 - t
        ks, new = [k1], state
        for i in range(1, 7):  # the stage-7 point is the 5th-order solution (FSAL)
            new = tuple(y + d for y, d in zip(state, _weighted(ks, DOPRI_A[i] if i < 6 else DOPRI_B, h)))
            ks.append(f(new, t + DOPRI_C[i] * h))
        nfe += 6
        ratio = _error_norm(_weighted(ks, DOPRI_E, h), state, new, tol)
        steps += 1
        if ratio <= 1.0:
            t, state, k1 = t + h, new, ks[6]
        h = h * min(10.0, max(0.2, 0.9 * (ratio + 1e-16) ** -0.2))
    return state, nfe


def divergence(v: Tensor, x: Tensor, probe: Tensor | None) -> Tensor:
    """div v = tr(dv/dx) per example (B,): exact (one backward pass per dimension) when
    ``probe`` is None, else Hutchinson's z^T (dv/dx) z with the given probe z (like x)."""
    if probe is not None:
        (vjp,) = torch.autograd.grad(v, x, probe, retain_graph=True)
        return (vjp * probe).flatten(1).sum(1)
    vf = v.flatten(1)
    div = torch.zeros(v.shape[0], dtype=v.dtype, device=v.device)
    for j in range(vf.shape[1]):
        (g,) = torch.autograd.grad(vf[:, j].sum(), x, retain_graph=True)
        div = div + g.flatten(1)[:, j]
    return div


def ode_log_likelihood(
    velocity: Velocity,
    x1: Tensor,
    *,
    steps: int,
    solver: str,
    exact: bool,
    generator: torch.Generator | None = None,
    tol: float = 1e-4,
) -> tuple[Tensor, Tensor]:
    """log p_1(x1) (B,) in nats under the flow of ``velocity`` from N(0, I) at t = 0, and x_0.

    Integrates (x, a) backwards from t = 1 with dx/dt = v(x, t), da/dt = div v(x, t), a(1) = 0,
    so a(0) = -int_0^1 div v dt and log p_1(x1) = log N(x_0) + a(0); with ``steps`` equal steps of
    a fixed-step ``solver``, or adaptively (``solver="dopri5"``, tolerance ``tol``; ``steps`` unused).
    Runs with gradients enabled (also under ``torch.inference_mode``); returns detached tensors."""
    with torch.inference_mode(False), torch.enable_grad():
        x1 = x1.detach().clone()
        probe = (
            None
            if exact
            else (D.draw(torch.randint, 0, 2, x1.shape, generator=generator, device=x1.device).to(x1.dtype) * 2 - 1)
        )

        def f(state, t):
            x = state[0].detach().requires_grad_(True)
            v = velocity(x, t)
            return v.detach(), divergence(v, x, probe).detach()

        start = (x1, torch.zeros(x1.shape[0], dtype=x1.dtype, device=x1.device))
        if solver == ADAPTIVE:
            (x0, acc), _ = integrate_adaptive(f, start, 1.0, 0.0, tol)
        else:
            x0, acc = integrate(f, start, 1.0, 0.0, steps, solver)
    return D.standard_normal_log_prob(x0) + acc, x0


class FlowMatching(UNetImageModel):
    """Flow matching with a U-Net velocity; images (B, C, H, W). See the module docstring."""

    config_class = FlowMatchingConfig
    input_mode = "dequantize"
    #: log_prob already includes -D log 256 (dequantization): nothing to add.
    log_prob_offset = 0.0

    def __init__(self, config: FlowMatchingConfig):
        super().__init__(config, config.image_shape[0])

    @property
    def exact_divergence(self) -> bool:
        """Whether log_prob uses the exact divergence (see ``config.divergence``)."""
        d = self.config.divergence
        return d == "exact" or (d == "auto" and self.num_dims <= self.config.exact_max_dims)

    @property
    def likelihood_kind(self) -> str:
        return "exact" if self.exact_divergence else "bound"

    def likelihood_description(self, iw_samples: int | None = None) -> str:
        c = self.config
        how = (
            f"dopri5, tolerance {c.likelihood_tol:g}"
            if c.likelihood_solver == ADAPTIVE
            else f"{c.likelihood_solver}, {c.likelihood_steps} steps"
        )
        ode = f"the ODE log-density ({how})"
        if self.exact_divergence:
            return f"{ode} with the exact divergence: exact up to the solver's error"
        return (
            f"{ode} with Hutchinson's divergence estimate (one Rademacher probe per image): an unbiased "
            "stochastic estimate of log p(x), neither exact nor a bound, no importance samples"
        )

    def velocity(self, x: Tensor, t: float | Tensor, labels: Tensor | None = None, scale: float = 1.0) -> Tensor:
        """v(x, t): x (B, C, H, W) in [-1, 1] scale, t scalar or (B,) in [0, 1] -> (B, C, H, W)."""
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device).reshape(-1).expand(x.shape[0])
        return guided(self.net, x, TIME_SCALE * t, labels, scale)

    # ------------------------------------------------------------------ training
    def train_steps(self) -> list[TrainStep]:
        return [TrainStep("velocity", [self.net], self.loss)]

    def loss(self, batch: dict) -> dict:
        x1 = 2 * batch["x"] - 1
        labels = batch.get("y") if self.config.num_classes > 0 else None
        labels = drop_labels(labels, self.config.num_classes, self.config.label_dropout)
        t = torch.rand(x1.shape[0], device=x1.device)
        xt, target = conditional_path(torch.randn_like(x1), x1, t)
        loss = (self.net(xt, TIME_SCALE * t, labels) - target).pow(2).flatten(1).mean(1).mean()
        return {"loss": loss}

    # ------------------------------------------------------------------ likelihood
    def log_prob(
        self,
        x: Tensor,
        *,
        labels: Tensor | None = None,
        iw_samples: int | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """log p(y) - D log 256 (N,) in nats for dequantized images y = x (N, C, H, W) in [0, 1):
        the ODE log-density with the dequantization offset (see the module docstring).
        ``iw_samples`` is ignored; ``generator`` draws the Hutchinson probes."""
        self.check_images(x)
        labels = self._labels(labels, x.shape[0])
        c = self.config
        lp, _ = ode_log_likelihood(
            lambda z, t: self.velocity(z, t, labels),
            2 * x - 1,
            steps=c.likelihood_steps,
            solver=c.likelihood_solver,
            exact=self.exact_divergence,
            generator=generator,
            tol=c.likelihood_tol,
        )
        return lp + self.num_dims * (math.log(2) - math.log(256))

    # ------------------------------------------------------------------ sampling, encode, decode
    def flow(
        self, x: Tensor, t0: float, t1: float, *, labels: Tensor | None = None, steps: int | None = None
    ) -> Tensor:
        """Integrate dx/dt = v(x, t) (guided for labelled calls) from t0 to t1; x in [-1, 1] scale."""
        scale = self.config.guidance_scale if labels is not None else 1.0
        f = lambda s, t: (self.velocity(s[0], t, labels, scale),)  # noqa: E731
        return integrate(f, (x,), t0, t1, steps or self.config.sample_steps, self.config.solver)[0]

    @torch.inference_mode()
    def decode(self, z: Tensor, *, labels: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        """Noise x_0 = z (N, C, H, W) -> images in [0, 1] by the ODE from t = 0 to 1."""
        z = z.reshape(len(z), *self.latent_shape).to(self.device)
        return ((self.flow(z, 0.0, 1.0, labels=self._labels(labels, len(z))) + 1) / 2).clamp(0, 1)

    @torch.inference_mode()
    def encode(self, x: Tensor) -> Tensor:
        """Images y (N, C, H, W) in [0, 1] -> their noise x_0 (N, C, H, W), the ODE from t = 1 back to 0."""
        self.check_images(x)
        return self.flow(2 * x - 1, 1.0, 0.0)

    def sample(self, n: int, *, labels: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        """n images in [0, 1] (n, C, H, W): decode(latent(n))."""
        return self.decode(self.latent(n, generator=generator), labels=labels)
