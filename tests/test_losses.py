"""GAN objectives against their closed forms, the saturation argument, penalties."""

from __future__ import annotations

import math

import pytest
import torch

from genlab import losses
from genlab.errors import ConfigError


def _sig(v):
    return 1 / (1 + math.exp(-v))


def test_log_losses_match_the_equations():
    real = torch.tensor([2.0, -1.0, 0.5])
    fake = torch.tensor([-3.0, 0.0, 1.5])
    # -(E[log D(x)] + E[log(1 - D(G(z)))])
    want_d = -(
        sum(math.log(_sig(r)) for r in real.tolist()) / 3 + sum(math.log(1 - _sig(f)) for f in fake.tolist()) / 3
    )
    assert losses.d_loss("minimax", real, fake).item() == pytest.approx(want_d, rel=1e-6)
    assert losses.d_loss("non-saturating", real, fake).item() == pytest.approx(want_d, rel=1e-6)
    want_mm = sum(math.log(1 - _sig(f)) for f in fake.tolist()) / 3
    want_ns = -sum(math.log(_sig(f)) for f in fake.tolist()) / 3
    assert losses.g_loss("minimax", fake).item() == pytest.approx(want_mm, rel=1e-6)
    assert losses.g_loss("non-saturating", fake).item() == pytest.approx(want_ns, rel=1e-6)


def test_log_losses_are_finite_for_extreme_logits():
    big = torch.tensor([-200.0, 200.0])
    for name in ("minimax", "non-saturating"):
        assert torch.isfinite(losses.d_loss(name, big, big))
        assert torch.isfinite(losses.g_loss(name, big))


def test_least_squares_closed_form():
    real = torch.tensor([1.0, 0.0, 2.0, 0.5])
    fake = torch.tensor([0.0, 1.0, -1.0, 0.25])
    # 1/2 E[(D(x) - 1)^2] + 1/2 E[D(G(z))^2]
    want_d = 0.5 * (0 + 1 + 1 + 0.25) / 4 + 0.5 * (0 + 1 + 1 + 0.0625) / 4
    want_g = 0.5 * (1 + 0 + 4 + 0.5625) / 4
    assert losses.d_loss("least-squares", real, fake).item() == pytest.approx(want_d)
    assert losses.g_loss("least-squares", fake).item() == pytest.approx(want_g)
    # the optimum: D outputs the targets exactly
    assert losses.d_loss("least-squares", torch.ones(5), torch.zeros(5)).item() == 0.0
    assert losses.g_loss("least-squares", torch.ones(5)).item() == 0.0


def test_hinge_closed_form():
    real = torch.tensor([2.0, 0.5, -1.0])
    fake = torch.tensor([-2.0, 0.0, 0.5])
    # E[max(0, 1 - D(x))] + E[max(0, 1 + D(G(z)))]
    want_d = (0 + 0.5 + 2.0) / 3 + (0 + 1.0 + 1.5) / 3
    assert losses.d_loss("hinge", real, fake).item() == pytest.approx(want_d)
    assert losses.g_loss("hinge", fake).item() == pytest.approx(-(-2.0 + 0.0 + 0.5) / 3)
    # beyond the margins the discriminator's loss is exactly zero
    assert losses.d_loss("hinge", torch.full((4,), 1.5), torch.full((4,), -1.5)).item() == 0.0


def test_saturation_argument():
    """Goodfellow et al. 2014, sec. 3: when D confidently rejects the fakes (D(G(z)) ~ 0),
    log(1 - D(G(z))) saturates (gradient ~ -D(G(z)) -> 0) while -log D(G(z)) does not (~ -1)."""
    fake_logits = torch.full((64,), -10.0, requires_grad=True)  # D(G(z)) = sigmoid(-10) ~ 4.5e-5
    (g_mm,) = torch.autograd.grad(losses.g_loss("minimax", fake_logits), fake_logits)
    (g_ns,) = torch.autograd.grad(losses.g_loss("non-saturating", fake_logits), fake_logits)
    assert g_mm.abs().max() / g_ns.abs().min() < 1e-3
    assert g_ns.abs().min() * 64 > 0.99  # the mean's 1/64 aside, the NS gradient is ~ -1 per example
    # and both point the same way: raise D(G(z))
    assert (g_mm < 0).all() and (g_ns < 0).all()


def test_unknown_objective_lists_the_choices():
    with pytest.raises(ConfigError) as e:
        losses.d_loss("wasserstein", torch.zeros(2), torch.zeros(2))
    for name in ("minimax", "non-saturating", "least-squares", "hinge"):
        assert name in str(e.value)
    with pytest.raises(ConfigError, match="r1"):
        losses.check_penalty("dragan")


def test_r1_penalty_closed_form():
    # D(x) = w . x has gradient w everywhere: R1 = gamma/2 * ||w||^2
    w = torch.tensor([3.0, 4.0])
    pen = losses.r1_penalty(lambda x: x @ w, torch.randn(8, 2), gamma=2.0)
    assert pen.item() == pytest.approx(25.0)


def test_gradient_penalty_zero_for_unit_slope_and_differentiable():
    w = torch.tensor([0.6, 0.8], requires_grad=True)  # ||w|| = 1
    pen = losses.gradient_penalty(lambda x: x @ w, torch.randn(8, 2), torch.randn(8, 2), weight=10.0)
    assert pen.item() == pytest.approx(0.0, abs=1e-6)
    w2 = torch.tensor([3.0, 4.0], requires_grad=True)
    pen2 = losses.gradient_penalty(lambda x: x @ w2, torch.randn(8, 2), torch.randn(8, 2), weight=10.0)
    assert pen2.item() == pytest.approx(10.0 * 16.0, rel=1e-4)
    (g,) = torch.autograd.grad(pen2, w2)  # the penalty trains D
    assert g.abs().sum() > 0
