"""Glow / RealNVP: invertibility, log-determinants against autograd Jacobians,
normalisation of the density, actnorm's data-dependent init and its persistence,
temperature, and that training lowers the loss."""

from __future__ import annotations

import math

import pytest
import torch

import genlab
from genlab.models.glow import Glow, GlowConfig
from genlab.nn.flow_layers import ActNorm, AffineCoupling, FlowStep, InvConv1x1, ReversePermutation, squeeze, unsqueeze


def make(
    invertible_conv: bool = True, shape=(1, 4, 4), scales: int = 2, steps: int = 2, seed: int = 0, perturb: float = 0.3
) -> Glow:
    """A tiny Glow whose zero-initialised layers are randomised, so the flow is far from the identity."""
    torch.manual_seed(seed)
    model = Glow(
        GlowConfig(
            image_shape=shape,
            num_scales=scales,
            steps_per_scale=steps,
            hidden_channels=8,
            invertible_conv=invertible_conv,
        )
    )
    if perturb:
        with torch.no_grad():
            for p in model.parameters():
                p.add_(perturb * torch.randn_like(p))
    return model


def layer_jacobian_check(layer, x: torch.Tensor) -> None:
    """log|det| of ``layer`` at each example of x equals slogdet of its autograd Jacobian."""
    y, log_det = layer(x)
    for i in range(x.shape[0]):
        jac = torch.autograd.functional.jacobian(
            lambda v: layer(v.view(1, *x.shape[1:]))[0].flatten(), x[i : i + 1].flatten()
        )
        sign, logabs = torch.linalg.slogdet(jac)
        assert sign != 0
        assert torch.allclose(log_det[i], logabs, atol=1e-8), (type(layer).__name__, log_det[i].item(), logabs.item())
    assert torch.allclose(layer.reverse(y), x, atol=1e-10)


@pytest.mark.parametrize("kind", ["actnorm", "invconv", "reverse", "coupling", "step"])
def test_each_layer_log_det_matches_the_autograd_jacobian(kind):
    torch.manual_seed(0)
    c = 4
    layer = (
        {
            "actnorm": lambda: ActNorm(c),
            "invconv": lambda: InvConv1x1(c),
            "reverse": lambda: ReversePermutation(),
            "coupling": lambda: AffineCoupling(c, 6),
            "step": lambda: FlowStep(c, 6),
        }[kind]()
        .double()
        .eval()
    )
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(0.5 * torch.randn_like(p))
    layer_jacobian_check(layer, torch.randn(3, c, 2, 3, dtype=torch.float64))


def test_squeeze_is_a_permutation_and_unsqueeze_inverts_it():
    x = torch.arange(2 * 3 * 4 * 6, dtype=torch.float64).view(2, 3, 4, 6)
    s = squeeze(x)
    assert s.shape == (2, 12, 2, 3)
    assert torch.equal(torch.sort(s.flatten()).values, torch.sort(x.flatten()).values)
    assert torch.equal(s[0, :4, 0, 0], torch.tensor([x[0, 0, 0, 0], x[0, 0, 0, 1], x[0, 0, 1, 0], x[0, 0, 1, 1]]))
    assert torch.equal(unsqueeze(s), x)


@pytest.mark.parametrize("invertible_conv", [True, False])
def test_whole_flow_log_density_is_the_change_of_variables_formula(invertible_conv):
    """log p(x) = log N(eps; 0, I) + log|det d eps/dx| with the Jacobian of the whole
    multiscale map (priors' standardisation included) computed by autograd."""
    model = make(invertible_conv).double().eval()
    x = torch.rand(2, 1, 4, 4, dtype=torch.float64)
    lp = model.log_prob(x) + model.num_dims * math.log(256)
    for i in range(2):
        f = lambda v: model._pack(model._forward_flow(v.view(1, 1, 4, 4))[0]).flatten()  # noqa: E731
        jac = torch.autograd.functional.jacobian(f, x[i].flatten())
        eps = f(x[i].flatten())
        expected = -0.5 * (eps**2).sum() - 0.5 * eps.numel() * math.log(2 * math.pi) + torch.linalg.slogdet(jac)[1]
        assert torch.allclose(lp[i], expected, atol=1e-7), (lp[i].item(), expected.item())


@pytest.mark.parametrize("invertible_conv", [True, False])
def test_encode_decode_invert_each_other_in_float32(invertible_conv):
    model = make(invertible_conv, shape=(1, 8, 8), scales=2, steps=3, perturb=0.1).eval()
    x = torch.rand(5, 1, 8, 8)
    z = model.encode(x)
    assert z.shape == (5, *model.latent_shape) == (5, 64)
    assert (model.decode(z) - x).abs().max() < 1e-4
    eps = model.latent(4, generator=torch.Generator().manual_seed(0))
    assert (model.encode(model._reverse_flow(model._unpack(eps))) - eps).abs().max() < 1e-4


@pytest.mark.slow
def test_density_integrates_to_one_on_a_1x2x2_image():
    """Importance sampling of the continuous density over R^4 from a Gaussian q fitted to
    the model's own samples (covariance inflated): (1/n) sum p(y)/q(y) must be 1 within
    4 standard errors. A log-determinant wrong by any constant moves the mean by a factor."""
    model = make(shape=(1, 2, 2), scales=1, steps=3, seed=1, perturb=0.2).double().eval()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        ys = (
            model._reverse_flow(model._unpack(torch.randn(20_000, 4, generator=g, dtype=torch.float64))) - 0.5
        ).flatten(1)
    q = torch.distributions.MultivariateNormal(ys.mean(0), covariance_matrix=2.0 * torch.cov(ys.T))
    n = 400_000
    y = q.sample((n,))
    with torch.no_grad():
        log_p = torch.cat([model.log_prob(b.view(-1, 1, 2, 2) + 0.5) for b in y.split(50_000)]) + 4 * math.log(256)
    w = torch.exp(log_p - q.log_prob(y))
    est, se = w.mean().item(), (w.std() / math.sqrt(n)).item()
    assert se < 0.01, se
    assert abs(est - 1.0) < 4 * se, (est, se)


def test_actnorm_data_dependent_init_standardises_each_channel_and_survives_save_load(tmp_path):
    torch.manual_seed(0)
    layer = ActNorm(3).train()
    x = torch.randn(64, 3, 5, 5) * torch.tensor([0.5, 2.0, 7.0]).view(1, 3, 1, 1) + torch.tensor([1.0, -3.0, 0.2]).view(
        1, 3, 1, 1
    )
    y, _ = layer(x)
    assert torch.allclose(y.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5)
    assert torch.allclose(y.std(dim=(0, 2, 3), unbiased=False), torch.ones(3), atol=1e-4)
    before = [p.clone() for p in layer.parameters()]
    layer(x * 3 + 1)  # a second batch does not re-initialise
    assert all(torch.equal(a, b) for a, b in zip(before, layer.parameters()))

    model = make(perturb=0.0).train()
    model.loss({"x": torch.rand(8, 1, 4, 4)})
    assert all(bool(m.initialized) for m in model.modules() if isinstance(m, ActNorm))
    model.save(tmp_path)
    loaded = genlab.load(tmp_path).train()
    state = {k: v.clone() for k, v in loaded.state_dict().items()}
    loaded.loss({"x": torch.rand(8, 1, 4, 4) * 0.1})  # would re-initialise if the flag were lost
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in state.items())


def test_temperature_scales_the_latents_of_samples():
    model = make(perturb=0.1).eval()
    for t in (0.5, 1.0):
        model.config.temperature = t
        eps = model.latent(4000, generator=torch.Generator().manual_seed(0))
        assert abs(eps.std().item() - t) < 0.02 * t
        x = model.sample(3, generator=torch.Generator().manual_seed(1))
        assert torch.equal(x, model.decode(model.latent(3, generator=torch.Generator().manual_seed(1))))


def test_a_few_training_steps_lower_the_loss():
    torch.manual_seed(0)
    model = Glow(GlowConfig(image_shape=(1, 8, 8), num_scales=2, steps_per_scale=2, hidden_channels=16)).train()
    x01 = (torch.rand(64, 1, 8, 8) > 0.7).float() * torch.rand(64, 1, 1, 1)
    g = torch.Generator().manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        loss = model.loss({"x": model.prepare(x01, generator=g)})["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) / 5 < losses[0] - 0.3, losses


def test_bad_configs_are_clear_errors():
    with pytest.raises(ValueError, match="divisible"):
        Glow(GlowConfig(image_shape=(1, 6, 6), num_scales=2))
    with pytest.raises(ValueError, match="unconditional"):
        Glow(GlowConfig(num_classes=10))
    with pytest.raises(ValueError, match="shape"):
        make().decode(torch.zeros(2, 5))
