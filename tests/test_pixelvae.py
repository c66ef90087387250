"""Property tests of PixelVAE (genlab.models.pixelvae) against brute force,
closed forms and autograd: causality of the PixelCNN decoder, exact
normalisation of p(x|z) and of the marginal p(x) on tiny images, the IWAE
ordering ELBO <= L_k and its rise with k, the Gaussian KL against Monte Carlo,
and samples against the model's own probabilities."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from scipy import stats

from genlab import distributions as D
from genlab.errors import ConfigError
from genlab.models.pixelvae import PixelVAE, PixelVAEConfig


def tiny(shape=(1, 2, 2), sharpen: float = 4.0, **fields) -> PixelVAE:
    """A small PixelVAE whose decoder depends strongly on z (random init alone
    barely uses z): decoder weights scaled by ``sharpen``; posterior variances near 1,
    so that importance weights stay light-tailed and L_k converges at small k."""
    torch.manual_seed(0)
    base = dict(
        image_shape=shape, latent_dim=1, channels=(4,), hidden_dim=8, pixel_channels=4, pixel_blocks=1, input_kernel=3
    )
    model = PixelVAE(PixelVAEConfig(**{**base, **fields})).eval()
    with torch.no_grad():
        for p in [*model.dec_in.parameters(), *model.up.parameters(), *model.cond_proj.parameters()]:
            p.mul_(sharpen)
        last = model.q_top[-1][-1]  # Linear(hidden, 2 d): mean, then log-variance
        last.bias[model.config.latent_dim :] = 0.0
        if model.config.latent_levels == 2:  # a prior p(z1|z2) far from N(0, I), so that KL terms differ
            k1 = model.config.z1_channels
            model.p_z1_head.bias[:k1] += 0.8
            model.p_z1_head.bias[k1:] -= 1.0
    return model


def all_binary_images(h: int, w: int) -> torch.Tensor:
    return torch.tensor(list(itertools.product([0.0, 1.0], repeat=h * w))).view(-1, 1, h, w)


def exact_log_marginal(model: PixelVAE, xs: torch.Tensor, points: int = 4001) -> torch.Tensor:
    """log p(x) = log int p(x|z) N(z; 0, 1) dz for a 1-D latent, by quadrature on [-10, 10]."""
    z = torch.linspace(-10, 10, points)
    dz = math.log(20 / (points - 1))
    with torch.no_grad():
        cond = model.conditioning(z[:, None])  # (points, ...)
        lp = torch.stack(
            [model.head.log_prob(model(x.expand(points, -1, -1, -1), cond), x.expand(points, -1, -1, -1)) for x in xs]
        )
    return torch.logsumexp(lp + D.standard_normal_log_prob(z[:, None])[None] + dz, dim=1)


# ----------------------------------------------------------------------------- KL


def test_kl_gaussian_matches_monte_carlo_and_the_standard_normal_case():
    g = torch.Generator().manual_seed(0)
    mq, lq, mp, lp = (torch.randn(1, 3, generator=g) for _ in range(4))
    closed = D.kl_gaussian(mq, lq, mp, lp)
    z = mq + torch.exp(0.5 * lq) * torch.randn(400_000, 3, generator=g)
    log_ratio = D.gaussian_log_prob(z, mq.expand_as(z), lq.expand_as(z)) - D.gaussian_log_prob(
        z, mp.expand_as(z), lp.expand_as(z)
    )
    se = log_ratio.std() / math.sqrt(z.shape[0])
    assert abs(log_ratio.mean() - closed[0]) < 4 * se, (float(log_ratio.mean()), float(closed))
    zero = torch.zeros_like(mq)
    assert torch.allclose(D.kl_gaussian(mq, lq, zero, zero), D.kl_gaussian_standard(mq, lq), atol=1e-6)
    assert torch.allclose(D.kl_gaussian(mq, lq, mq, lq), torch.zeros(1), atol=1e-6)


# ----------------------------------------------------------------------------- causality


@pytest.mark.parametrize("shape, likelihood", [((1, 5, 5), "bernoulli"), ((3, 4, 4), "logistic-mixture")])
def test_decoder_is_causal_by_gradient(shape, likelihood):
    """d params(pixel i, channel c) / d x(pixel j, channel k) = 0 unless (j, k) comes
    before (i, c) in raster order (channels R -> G -> B inside a pixel), z fixed."""
    c_img, h, w = shape
    model = tiny(
        shape,
        likelihood=likelihood,
        mixtures=2,
        pixel_channels=6,
        pixel_blocks=2,
        channels=(4, 8),
        latent_levels=2,
        latent_dim=2,
    )
    z1 = torch.randn(1, model.config.z1_channels, *model.sizes[-1])
    cond = model.conditioning(z1).detach()
    x = torch.rand(1, *shape, requires_grad=True)
    params = model(x, cond)
    p_per = params.shape[1] // c_img
    order = lambda r, col, ch: (r * w + col) * c_img + ch  # noqa: E731
    seen_past = False
    for r, col, ch in itertools.product(range(h), range(w), range(c_img)):
        (grad,) = torch.autograd.grad(params[0, ch * p_per : (ch + 1) * p_per, r, col].sum(), x, retain_graph=True)
        for rj, cj, kj in itertools.product(range(h), range(w), range(c_img)):
            if order(rj, cj, kj) >= order(r, col, ch):
                assert grad[0, kj, rj, cj] == 0, f"output {(r, col, ch)} depends on input {(rj, cj, kj)}"
            elif grad[0, kj, rj, cj] != 0:
                seen_past = True
    assert seen_past, "the decoder ignores x entirely: the test would pass vacuously"


# ----------------------------------------------------------------------------- normalisation


@pytest.mark.parametrize("h, w", [(2, 2), (3, 3)])
def test_p_x_given_z_sums_to_one_over_all_binary_images(h, w):
    model = tiny((1, h, w), latent_levels=2, latent_dim=2)
    xs = all_binary_images(h, w)
    with torch.no_grad():
        for seed in range(2):
            z1 = torch.randn(
                1, model.config.z1_channels, *model.sizes[-1], generator=torch.Generator().manual_seed(seed)
            )
            total = model.log_likelihood(xs, z1.expand(len(xs), -1, -1, -1)).double().exp().sum()
            assert abs(total - 1) < 1e-5, float(total)


def test_categorical_p_x_given_z_sums_to_one_over_all_grey_images():
    model = tiny((1, 2, 2), likelihood="categorical", grey_levels=3)
    xs = torch.tensor(list(itertools.product([0.0, 0.5, 1.0], repeat=4))).view(-1, 1, 2, 2)
    with torch.no_grad():
        total = model.log_likelihood(xs, torch.full((len(xs), 1), 0.7)).double().exp().sum()
    assert abs(total - 1) < 1e-5, float(total)


@pytest.mark.slow
@pytest.mark.parametrize("decoder", ["conv", "mlp"])
def test_iwae_brackets_the_exact_marginal_computed_by_quadrature(decoder):
    """1-D latent on 2x2 images: log p(x) by quadrature sums to one over the 16
    images; E[ELBO] <= E[L_5] <= E[L_50] <= log p(x), and L_10000 is within 0.03 nats."""
    model = tiny(decoder=decoder, mlp_hidden=(8,), map_channels=2)
    xs = all_binary_images(2, 2)
    exact = exact_log_marginal(model, xs)
    assert abs(exact.double().exp().sum() - 1) < 1e-4
    g = torch.Generator().manual_seed(0)
    draws = {k: torch.stack([model.log_prob(xs, iw_samples=k, generator=g) for _ in range(100)]) for k in (1, 5, 50)}
    means = {k: float(v.mean()) for k, v in draws.items()}  # over images and repetitions
    assert means[1] < means[5] < means[50] <= float(exact.mean()), (means, float(exact.mean()))
    assert means[50] - means[1] > 0.05, "the posterior matches exactly: the bracket would be vacuous"
    se = draws[50].std(0) / 10
    assert (draws[50].mean(0) <= exact + 4 * se + 1e-4).all()  # per image, within Monte Carlo error
    assert (model.log_prob(xs, iw_samples=10_000, generator=g) - exact).abs().max() < 0.03


def test_two_level_iwae_increases_with_k_and_elbo_matches_its_analytic_form():
    """Two levels on 8x8: the analytic-KL ELBO and the mean log weight estimate the
    same number; on average ELBO <= L_10 <= L_100 with a fixed seed."""
    model = tiny((1, 8, 8), latent_levels=2, latent_dim=3, channels=(4, 8), pixel_blocks=1)
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(64, 1, 8, 8, generator=g) < 0.4).float()
    with torch.no_grad():
        analytic = torch.stack([model.elbo(x, generator=g) for _ in range(200)])
        sampled = torch.stack([model.log_weights(x, generator=g) for _ in range(200)])
    diff = analytic.mean(0) - sampled.mean(0)  # per image
    se = (analytic.var(0) / 200 + sampled.var(0) / 200).sqrt()
    assert (diff.abs() < 4.5 * se).all(), (diff / se).abs().max()
    l1, l10, l100 = (model.log_prob(x, iw_samples=k, generator=g).mean() for k in (1, 10, 100))
    assert analytic.mean() < l10 < l100 and l1 < l10, (float(analytic.mean()), float(l1), float(l10), float(l100))


# ----------------------------------------------------------------------------- sampling


def test_samples_given_z_match_p_x_given_z_chi_square():
    model = tiny(latent_levels=2, latent_dim=2)
    xs = all_binary_images(2, 2)
    z1 = torch.randn(1, model.config.z1_channels, *model.sizes[-1], generator=torch.Generator().manual_seed(3))
    n = 20_000
    draws = model.sample_given(z1.expand(n, -1, -1, -1), generator=torch.Generator().manual_seed(0))
    code = (draws.view(n, 4) * torch.tensor([8.0, 4.0, 2.0, 1.0])).sum(1).long()  # all_binary_images order
    counts = torch.bincount(code, minlength=16).double()
    with torch.no_grad():
        probs = model.log_likelihood(xs, z1.expand(16, -1, -1, -1)).double().exp()
    chi2, p = stats.chisquare(counts.numpy(), (probs * n / probs.sum()).numpy())
    assert p > 1e-3, (chi2, p)


def test_prior_samples_match_the_exact_marginal_chi_square():
    """sample(n) draws z ~ N(0, 1) then x ~ p(x|z): frequencies match the quadrature p(x)."""
    model = tiny()
    xs = all_binary_images(2, 2)
    n = 20_000
    draws = model.sample(n, generator=torch.Generator().manual_seed(1))
    counts = torch.bincount(
        (draws.view(n, 4) * torch.tensor([8.0, 4.0, 2.0, 1.0])).sum(1).long(), minlength=16
    ).double()
    probs = exact_log_marginal(model, xs).double().exp()
    chi2, p = stats.chisquare(counts.numpy(), (probs * n / probs.sum()).numpy())
    assert p > 1e-3, (chi2, p)


def test_cached_and_naive_sampling_give_the_same_images():
    model = tiny((1, 5, 5), latent_levels=2, latent_dim=2, channels=(4, 8), pixel_blocks=2)
    a = model.sample(6, generator=torch.Generator().manual_seed(4), method="cached")
    b = model.sample(6, generator=torch.Generator().manual_seed(4), method="naive")
    assert torch.equal(a, b) and 0 < a.mean() < 1


def test_complete_keeps_observed_pixels():
    model = tiny((1, 5, 5), channels=(4, 8))
    x = (torch.rand(3, 1, 5, 5, generator=torch.Generator().manual_seed(0)) < 0.5).float()
    mask = torch.zeros(5, 5)
    mask[:2] = 1
    out = model.complete(x, mask, generator=torch.Generator().manual_seed(1))
    assert torch.equal(out[:, :, :2], x[:, :, :2]) and set(out.unique().tolist()) <= {0.0, 1.0}


# ----------------------------------------------------------------------------- errors and API


def test_bad_configs_and_inputs_are_clear_errors():
    with pytest.raises(ConfigError, match="model.latent_levels must be 1"):
        PixelVAE(PixelVAEConfig(latent_levels=3))
    with pytest.raises(ValueError, match="unconditional"):
        PixelVAE(PixelVAEConfig(num_classes=10))
    with pytest.raises(ConfigError, match="unknown model.likelihood"):
        PixelVAE(PixelVAEConfig(likelihood="gaussian"))
    model = tiny()
    with pytest.raises(ValueError, match="shape"):
        model.log_prob(torch.zeros(2, 1, 3, 3))
    with pytest.raises(ValueError, match="iw_samples"):
        model.log_prob(torch.zeros(2, 1, 2, 2), iw_samples=0)
    with pytest.raises(ValueError, match="unconditional"):
        model.sample(2, labels=torch.tensor([0, 1]))


def test_loss_logs_the_kl_terms_of_both_levels():
    model = tiny((1, 8, 8), latent_levels=2, latent_dim=3, channels=(4, 8)).train()
    x = (torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(0)) < 0.5).float()
    out = model.train_steps()[0].loss({"x": x, "y": None})
    assert {"loss", "elbo", "recon", "kl", "kl_z1", "kl_z2"} <= set(out)
    assert torch.allclose(out["kl"], out["kl_z1"] + out["kl_z2"]) and out["kl_z1"] > 0 and out["kl_z2"] > 0
    assert torch.allclose(out["loss"], -out["elbo"]) and torch.allclose(out["elbo"], out["recon"] - out["kl"])


def test_mlp_decoder_is_causal_and_uses_z_at_every_pixel():
    """decoder="mlp": z -> fully connected layers -> map_channels maps at image size. The
    PixelCNN part stays causal in x, and every pixel's parameters depend on z."""
    model = tiny((1, 4, 3), decoder="mlp", mlp_hidden=(6, 5), map_channels=3, pixel_blocks=2)
    assert len(model.up) == 0 and model.cond_proj.in_channels == 3
    z = torch.randn(1, 1, requires_grad=True)
    x = torch.rand(1, 1, 4, 3, requires_grad=True)
    cond = model.conditioning(z)
    params = model(x, cond)
    for r, col in itertools.product(range(4), range(3)):
        (gz,) = torch.autograd.grad(cond[0, :, r, col].sum(), z, retain_graph=True)
        assert gz.abs().sum() > 0, (r, col)
        (gx,) = torch.autograd.grad(params[0, 0, r, col], x, retain_graph=True)
        assert (gx.flatten()[r * 3 + col :] == 0).all(), (r, col)
    with pytest.raises(ConfigError, match="latent_levels=1"):
        PixelVAEConfig(decoder="mlp", latent_levels=2)
