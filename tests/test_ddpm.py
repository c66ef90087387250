"""DDPM against closed forms and Monte Carlo: the forward marginals, the schedules, each
term of the variational bound, the bound's total against an independent computation
from the chain, and DDIM's determinism and invertibility on a briefly trained model."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.special
import torch

from genlab import distributions as D
from genlab import registry
from genlab.errors import ConfigError
from genlab.models.ddpm import DDPM, cosine_betas, discretized_gaussian_log_prob, linear_betas

TINY = dict(channels=8, channel_mult=(1, 2), attention_resolutions=(), groups=4)


def tiny(image_shape=(1, 4, 4), perturb: bool = True, **kw) -> DDPM:
    torch.manual_seed(0)
    model = registry.build("ddpm", image_shape=image_shape, **{**TINY, **kw}).eval()
    if perturb:  # the output conv starts at zero: give the network something to say
        with torch.no_grad():
            model.net.conv_out.weight.normal_(0, 0.2)
            model.net.conv_out.bias.normal_(0, 0.1)
    return model


def grid_images(n: int, shape, seed: int = 0) -> torch.Tensor:
    """8-bit images in the model's space 2 k/255 - 1, with the two end values present."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, *shape), generator=g).float() / 255 * 2 - 1
    x.view(n, -1)[:, 0], x.view(n, -1)[:, -1] = -1.0, 1.0
    return x


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_forward_marginals_match_the_closed_form(schedule):
    model = tiny(schedule=schedule, timesteps=20)
    x0 = torch.tensor([-1.0, -0.3, 0.4, 1.0]).view(1, 1, 2, 2)
    n = 100_000
    g = torch.Generator().manual_seed(1)
    x = x0.expand(n, -1, -1, -1).clone()
    for i in range(20):  # x_t = sqrt(1 - beta_t) x_{t-1} + sqrt(beta_t) eps, one step at a time
        b = model.betas[i]
        x = (1 - b).sqrt() * x + b.sqrt() * torch.randn(x.shape, generator=g)
        if i in (0, 4, 12, 19):
            a = model.alpha_bar[i]
            mean, var = x.mean(0), x.var(0)
            assert torch.allclose(mean, a.sqrt() * x0[0], atol=5 * math.sqrt((1 - a) / n) + 1e-6), (i, mean)
            assert torch.allclose(var, (1 - a).expand_as(var), rtol=0.02), (i, var)
            closed = model.q_sample(x0.expand(n, -1, -1, -1), torch.full((n,), i), torch.randn(x.shape, generator=g))
            assert torch.allclose(closed.mean(0), mean, atol=0.02) and torch.allclose(closed.var(0), var, rtol=0.03)


def test_cosine_schedule_values_match_the_formula():
    T, s = 1000, 0.008
    f = [math.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2 for t in range(T + 1)]
    betas = cosine_betas(T)
    abar = torch.cumprod(1 - betas, 0)
    want = torch.tensor([f[t] / f[0] for t in range(1, T + 1)], dtype=torch.float64)
    assert torch.allclose(abar[:-1], want[:-1], rtol=1e-9, atol=1e-12)  # the last beta is capped at 0.999
    assert betas.max() <= 0.999 and betas[-1] == 0.999 and (betas[1:] >= betas[:-1]).all()
    model = tiny(schedule="cosine", timesteps=T)
    assert torch.allclose(model.alpha_bar[:-1].double(), want[:-1], rtol=1e-5, atol=1e-7)


def test_linear_schedule_endpoints_and_scaling():
    b = linear_betas(1000)
    assert b[0].item() == pytest.approx(1e-4) and b[-1].item() == pytest.approx(0.02)
    assert linear_betas(250)[-1].item() == pytest.approx(0.08)


def test_discretized_gaussian_sums_to_one_and_matches_monte_carlo():
    grid = torch.arange(256).float() / 255 * 2 - 1
    mean, log_var = torch.tensor(0.3), torch.tensor(math.log(0.05**2))
    lp = discretized_gaussian_log_prob(grid[:, None], mean.expand(256, 1), log_var.expand(256, 1))
    assert torch.exp(lp).sum().item() == pytest.approx(1.0, abs=1e-4)
    # Monte Carlo: the share of Gaussian draws that round to each grid value, edges clamped.
    for m, lv in ((0.3, math.log(0.05**2)), (-0.98, math.log(0.02**2)), (0.99, math.log(0.03**2))):
        draws = m + math.exp(0.5 * lv) * torch.randn(400_000, generator=torch.Generator().manual_seed(2))
        k = torch.round((draws.clamp(-1, 1) + 1) / 2 * 255).long()
        share = torch.bincount(k, minlength=256).float() / len(draws)
        p = torch.exp(discretized_gaussian_log_prob(grid[:, None], torch.full((256, 1), m), torch.full((256, 1), lv)))
        assert torch.allclose(p, share, atol=4 * math.sqrt(0.25 / len(draws)) + 1e-6)


def _reference_bin_log_mass(x: float, mean: float, std: float, levels: int = 256) -> float:
    """Independent float64 reference: log(Phi(b) - Phi(a)) from scipy's log_ndtr, in the upper
    tail as log(Phi(-a) - Phi(-b)); the end bins reach -inf / +inf."""
    half = 1.0 / (levels - 1)
    a, b = (x - mean - half) / std, (x - mean + half) / std
    if x <= -1:
        return float(scipy.special.log_ndtr(b))
    if x >= 1:
        return float(scipy.special.log_ndtr(-a))
    if a > 0:
        a, b = -b, -a
    hi, lo = scipy.special.log_ndtr(b), scipy.special.log_ndtr(a)
    return float(hi + np.log1p(-np.exp(lo - hi)))


@pytest.mark.parametrize("std", [0.01, 0.05, 0.5])
def test_discretized_gaussian_is_exact_far_in_the_tails(std):
    """Each bin's log mass with the mean 0, 3, 6, 8 and 12 standard deviations from the value,
    on both end bins and in the interior from either side, against a float64 reference (the
    old float32 difference with a 1e-12 clamp gave -27.63 nats from about 6 sigma on)."""
    interior = 128 / 255 * 2 - 1
    cases = []
    for z in (0.0, 3.0, 6.0, 8.0, 12.0):
        d = z * std
        cases += [(-1.0, -1.0 + d), (1.0, 1.0 - d), (interior, interior - d), (interior, interior + d)]
    x = torch.tensor([c[0] for c in cases])[:, None]
    mean = torch.tensor([c[1] for c in cases], requires_grad=True)
    log_var = torch.full((len(cases),), 2 * math.log(std), requires_grad=True)
    lp = discretized_gaussian_log_prob(x, mean[:, None], log_var[:, None])
    ref = torch.tensor(
        [_reference_bin_log_mass(xv, m, std) for xv, m in zip(x[:, 0].tolist(), mean.tolist())], dtype=torch.float64
    )
    assert torch.allclose(lp.double(), ref, rtol=1e-5, atol=1e-4), torch.stack([lp.double(), ref], 1)
    lp.sum().backward()  # no clamp and no unselected branch leaks inf or NaN into the gradients
    assert torch.isfinite(mean.grad).all() and torch.isfinite(log_var.grad).all()


@pytest.mark.parametrize("loss", ["simple", "hybrid"])
def test_each_bound_term_matches_a_monte_carlo_estimate(loss):
    model = tiny(loss=loss, timesteps=30, schedule="cosine")
    x0 = grid_images(1, (1, 4, 4))
    g = torch.Generator().manual_seed(3)
    m = 50_000
    with torch.no_grad():
        # L_{t-1} for t >= 2: E_{q(x_{t-1} | x_t, x0)}[log q - log p] at one fixed x_t.
        for i in (1, 10, 29):
            idx = torch.tensor([i])
            noise = torch.randn(x0.shape, generator=g)
            analytic = model.term(x0, idx, noise).item()
            xt = model.q_sample(x0, idx, noise)
            mean, log_var, _ = model.p_from_output(model.network(xt, idx, None), xt, idx)
            q_mean, q_log_var = model.q_posterior(x0, xt, idx)
            draws = q_mean + torch.exp(0.5 * q_log_var) * torch.randn((m, *x0.shape[1:]), generator=g)
            log_ratio = D.gaussian_log_prob(draws, q_mean, q_log_var) - D.gaussian_log_prob(draws, mean, log_var)
            se = log_ratio.std().item() / math.sqrt(m)
            assert abs(log_ratio.mean().item() - analytic) < 5 * se + 1e-4, (i, analytic, log_ratio.mean().item(), se)
        # L_0 = -log P(x0 | x_1): the share of decoder draws that round to x0, pixel by pixel.
        idx = torch.tensor([0])
        noise = torch.randn(x0.shape, generator=g)
        xt = model.q_sample(x0, idx, noise)
        mean, log_var, _ = model.p_from_output(model.network(xt, idx, None), xt, idx)
        draws = mean + torch.exp(0.5 * log_var) * torch.randn((m, *x0.shape[1:]), generator=g)
        hit = (torch.round((draws.clamp(-1, 1) + 1) * 127.5) == torch.round((x0 + 1) * 127.5)).float().mean(0)
        mc = -torch.log(hit).sum().item()
        assert model.term(x0, idx, noise).item() == pytest.approx(mc, rel=0.05, abs=0.05)
        # L_T = E_{q(x_T | x0)}[log q(x_T | x0) - log N(x_T; 0, I)].
        a = model.alpha_bar[-1]
        draws = a.sqrt() * x0 + (1 - a).sqrt() * torch.randn((m, *x0.shape[1:]), generator=g)
        log_ratio = D.gaussian_log_prob(
            draws, a.sqrt() * x0, torch.log(1 - a).expand_as(draws)
        ) - D.standard_normal_log_prob(draws)
        se = log_ratio.std().item() / math.sqrt(m)
        assert abs(log_ratio.mean().item() - model.prior_term(x0).item()) < 5 * se + 1e-5


@pytest.mark.slow
def test_bound_total_matches_an_independent_computation_from_the_chain():
    """E_q[log q(x_{1:T} | x0) - log p(x_{0:T})], sampled through the forward chain one step at a
    time, against the mean of log_prob's assembled bound (both in nats)."""
    model = tiny(image_shape=(1, 2, 2), timesteps=4, schedule="linear", variance="large")
    x0 = grid_images(1, (1, 2, 2), seed=5)
    m = 20_000
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        ours = -model.log_prob(x0.expand(m, -1, -1, -1), generator=g)
        xs = [x0.expand(m, -1, -1, -1)]
        log_q = torch.zeros(m)
        for i in range(4):
            b = model.betas[i]
            mean = (1 - b).sqrt() * xs[-1]
            x = mean + b.sqrt() * torch.randn(mean.shape, generator=g)
            log_q += D.gaussian_log_prob(x, mean, torch.log(b).expand_as(x))
            xs.append(x)
        log_p = D.standard_normal_log_prob(xs[-1])
        for i in range(3, -1, -1):  # p(x_{t-1} | x_t), t = i + 1
            idx = torch.full((m,), i)
            mean, log_var, _ = model.p_from_output(model.network(xs[i + 1], idx, None), xs[i + 1], idx)
            log_p += (
                discretized_gaussian_log_prob(xs[0], mean, log_var)
                if i == 0
                else D.gaussian_log_prob(xs[i], mean, log_var)
            )
        chain = log_q - log_p
    se = math.sqrt(ours.var().item() / m + chain.var().item() / m)
    assert abs(ours.mean().item() - chain.mean().item()) < 4 * se, (ours.mean().item(), chain.mean().item(), se)
    assert ours.std() < chain.std()  # the analytic KLs remove most of the chain's noise


@pytest.mark.slow
def test_stratified_bound_is_unbiased_for_the_full_sum():
    model = tiny(timesteps=40, schedule="cosine")
    x0 = grid_images(1, (1, 4, 4)).expand(3000, -1, -1, -1)
    with torch.no_grad():
        full = model.log_prob(x0, generator=torch.Generator().manual_seed(0))
        model.config.bound_timesteps = 5
        strat = model.log_prob(x0, generator=torch.Generator().manual_seed(1))
    se = math.sqrt(full.var().item() / len(full) + strat.var().item() / len(strat))
    assert abs(full.mean().item() - strat.mean().item()) < 4 * se


def blobs(n: int, g: torch.Generator) -> torch.Tensor:
    """(n, 1, 8, 8) Gaussian blobs at random centres, in [-1, 1]."""
    yy, xx = torch.meshgrid(torch.arange(8.0), torch.arange(8.0), indexing="ij")
    c = torch.rand(n, 2, generator=g) * 4 + 2
    return torch.exp(-((xx - c[:, :1, None]) ** 2 + (yy - c[:, 1:, None]) ** 2) / 4)[:, None] * 2 - 1


def _train(model: DDPM, steps: int = 150) -> DDPM:
    """A short fit to 8x8 blobs, enough for eps to depend smoothly on x and t."""
    g = torch.Generator().manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        x = blobs(32, g)
        loss = model.loss({"x": x, "y": None})["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


@pytest.mark.slow
def test_ddim_with_eta_zero_is_deterministic_and_invertible():
    torch.manual_seed(0)
    model = _train(
        registry.build("ddpm", image_shape=(1, 8, 8), **TINY, timesteps=100, sample_steps=25, inversion_iterations=5)
    )
    z = model.latent(4, generator=torch.Generator().manual_seed(1))
    a = model.ddim_loop(z, eta=0.0, generator=torch.Generator().manual_seed(2))
    b = model.ddim_loop(z, eta=0.0, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert not torch.allclose(
        model.ddim_loop(z, eta=1.0, generator=torch.Generator().manual_seed(2)), a
    )  # eta > 0: stochastic
    x = blobs(4, torch.Generator().manual_seed(9))  # images like the training data
    z = model.encode(x)
    assert z.shape == x.shape and 0.7 < z.std() < 1.4  # codes look like the N(0, I) prior
    err = (model.decode(z) * 2 - 1 - x).abs().max()
    assert err < 0.05, err
    model.config.inversion_iterations = 0  # plain inversion: eps taken one step behind
    assert (model.decode(model.encode(x)) * 2 - 1 - x).abs().max() > err


def test_hybrid_loss_trains_the_variance_channels_and_keeps_it_between_the_bounds():
    model = tiny(loss="hybrid", timesteps=50)
    model.train()
    out = model.loss({"x": grid_images(8, (1, 4, 4)), "y": None})
    out["loss"].backward()
    assert model.net.conv_out.weight.grad[1].abs().sum() > 0  # the variance channel
    xt, idx = torch.randn(2, 1, 4, 4), torch.tensor([5, 30])
    with torch.no_grad():
        _, log_var, _ = model.p_from_output(model.network(xt, idx, None), xt, idx)
    lo = torch.minimum(model.post_log_var[idx], model.log_betas[idx]).view(-1, 1, 1, 1)
    hi = torch.maximum(model.post_log_var[idx], model.log_betas[idx]).view(-1, 1, 1, 1)
    frac = (model.network(xt, idx, None)[:, 1:] + 1) / 2
    inside = (frac >= 0) & (frac <= 1)
    assert ((log_var >= lo - 1e-5) & (log_var <= hi + 1e-5))[inside].all()


def test_conditional_sampling_with_guidance_and_unconditional_likelihood():
    model = tiny(num_classes=3, guidance_scale=2.0, timesteps=10, sample_steps=5)
    x = model.sample(3, labels=torch.tensor([0, 1, 2]), generator=torch.Generator().manual_seed(0))
    assert x.shape == (3, 1, 4, 4) and 0 <= x.min() and x.max() <= 1
    lp_uncond = model.log_prob(grid_images(2, (1, 4, 4)), generator=torch.Generator().manual_seed(0))
    lp_cond = model.log_prob(
        grid_images(2, (1, 4, 4)), labels=torch.tensor([1, 2]), generator=torch.Generator().manual_seed(0)
    )
    assert torch.isfinite(lp_uncond).all() and not torch.allclose(lp_uncond, lp_cond)
    with pytest.raises(ValueError, match="labels"):
        model.sample(2, labels=torch.tensor([0, 5]))


@pytest.mark.parametrize(
    "field, value",
    [("schedule", "quadratic"), ("loss", "l1"), ("sampler", "euler"), ("sample_steps", 0), ("timesteps", 1)],
)
def test_bad_config_is_a_clear_error(field, value):
    with pytest.raises(ConfigError, match=field):
        registry.build("ddpm", **TINY, **{field: value})


def test_interpolation_between_encoded_images_walks_the_flattened_codes():
    from genlab.viz import latent

    model = tiny(timesteps=10, sample_steps=5)
    z = model.encode(grid_images(3, (1, 4, 4)))
    frames = latent.loop_frames(model, z, steps_per_leg=2)
    assert len(frames) == 6 and all(f.shape == (1, 4, 4) for f in frames)
    assert torch.allclose(frames[0], model.decode(z[:1])[0], atol=1e-6)


@pytest.mark.parametrize("loss", ["simple", "hybrid"])
def test_ancestral_sampling_is_seeded_and_in_range(loss):
    model = tiny(sampler="ancestral", timesteps=10, loss=loss)
    a = model.sample(3, generator=torch.Generator().manual_seed(0))
    assert a.shape == (3, 1, 4, 4) and 0 <= a.min() and a.max() <= 1
    assert torch.equal(a, model.sample(3, generator=torch.Generator().manual_seed(0)))
    assert not torch.equal(a, model.sample(3, generator=torch.Generator().manual_seed(1)))
