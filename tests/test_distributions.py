"""Distributions against closed forms and brute-force sums."""

import math

import torch

from genlab import distributions as D


def test_discretized_logistic_normalizes_over_the_grid():
    levels = 7
    grid = torch.arange(levels, dtype=torch.float64) / (levels - 1)
    for mean, log_scale in [(0.3, -2.0), (0.0, -0.5), (1.1, -4.0), (0.5, 1.0)]:
        x = grid.view(levels, 1)
        m = torch.full_like(x, mean)
        s = torch.full_like(x, log_scale)
        total = D.discretized_logistic_log_prob(x, m, s, levels=levels).exp().sum()
        assert abs(total.item() - 1.0) < 1e-7  # bins under 1e-5 mass use density x width


def test_discretized_logistic_256_normalizes_and_matches_sampling():
    grid = torch.arange(256, dtype=torch.float64).view(256, 1) / 255
    m = torch.full_like(grid, 0.4)
    s = torch.full_like(grid, math.log(0.05))
    p = D.discretized_logistic_log_prob(grid, m, s).exp()
    assert abs(p.sum().item() - 1) < 1e-6
    g = torch.Generator().manual_seed(0)
    xs = D.discretized_logistic_sample(torch.full((200000,), 0.4, dtype=torch.float64), torch.full((200000,), math.log(0.05), dtype=torch.float64), generator=g)
    counts = torch.bincount(torch.round(xs * 255).long(), minlength=256).double() / 200000
    assert (counts - p.view(-1)).abs().max() < 3e-3


def test_kl_matches_monte_carlo_and_torch():
    torch.manual_seed(0)
    mean, log_var = torch.randn(3, 4), torch.randn(3, 4)
    ours = D.kl_gaussian_standard(mean, log_var)
    q = torch.distributions.Normal(mean, (0.5 * log_var).exp())
    p = torch.distributions.Normal(torch.zeros_like(mean), torch.ones_like(mean))
    ref = torch.distributions.kl_divergence(q, p).sum(1)
    assert torch.allclose(ours, ref, atol=1e-5)


def test_gaussian_and_bernoulli_against_torch():
    torch.manual_seed(1)
    x, mean, log_var = torch.randn(5, 2, 3), torch.randn(5, 2, 3), torch.randn(5, 2, 3)
    ref = torch.distributions.Normal(mean, (0.5 * log_var).exp()).log_prob(x).sum((1, 2))
    assert torch.allclose(D.gaussian_log_prob(x, mean, log_var), ref, atol=1e-5)
    assert torch.allclose(D.standard_normal_log_prob(x), torch.distributions.Normal(0.0, 1.0).log_prob(x).sum((1, 2)), atol=1e-5)
    logits, b = torch.randn(5, 6), torch.randint(0, 2, (5, 6)).float()
    ref = torch.distributions.Bernoulli(logits=logits).log_prob(b).sum(1)
    assert torch.allclose(D.bernoulli_log_prob(logits, b), ref, atol=1e-5)


def test_bits_per_dim():
    assert abs(D.bits_per_dim(784 * math.log(2), 784) - 1.0) < 1e-12


def test_discretized_logistic_mixture_normalizes_and_matches_sampling():
    levels = 16
    grid = torch.arange(levels, dtype=torch.float64).view(levels, 1) / (levels - 1)
    logits = torch.tensor([[0.3, -1.0, 1.2]], dtype=torch.float64).view(1, 3, 1).expand(levels, 3, 1)
    means = torch.tensor([[0.1, 0.6, 1.05]], dtype=torch.float64).view(1, 3, 1).expand(levels, 3, 1)
    log_scales = torch.tensor([[-2.5, -1.0, -3.0]], dtype=torch.float64).view(1, 3, 1).expand(levels, 3, 1)
    p = D.discretized_logistic_mixture_log_prob(grid, logits, means, log_scales, levels=levels).exp()
    # 1e-6, not 1e-9: the single logistic switches to density * width for bins of mass < 1e-5.
    assert abs(p.sum().item() - 1) < 1e-6
    n = 100000
    g = torch.Generator().manual_seed(0)
    xs = D.discretized_logistic_mixture_sample(logits[:1, :, 0].expand(n, 3), means[:1, :, 0].expand(n, 3), log_scales[:1, :, 0].expand(n, 3), levels=levels, generator=g)
    counts = torch.bincount(torch.round(xs * (levels - 1)).long(), minlength=levels).double() / n
    assert (counts - p).abs().max() < 5e-3


def test_draw_samples_on_the_generators_device_then_moves():
    from genlab.distributions import draw

    seen = []

    def sampler(*args, generator=None, device=None, **kw):
        seen.append(device)
        return torch.rand(*args, generator=generator, device=device, **kw)

    g = torch.Generator().manual_seed(3)
    x = draw(sampler, 4, generator=g, device="meta")  # a model elsewhere: the stream stays on the CPU
    assert seen == [g.device] and x.device.type == "meta"
    a = draw(torch.randn, 5, generator=torch.Generator().manual_seed(1), device="cpu")
    assert torch.equal(a, torch.randn(5, generator=torch.Generator().manual_seed(1)))
    assert draw(torch.rand, 2, device="cpu").shape == (2,)


def test_log_mean_exp_is_a_stable_mean_in_log_space():
    lw = torch.tensor([[-1000.0, 2.0, 1000.0], [-1000.0, 0.0, 999.0]])
    want = torch.tensor([-1000.0, math.log((math.e**2 + 1) / 2), 999.0 + math.log((math.e + 1) / 2)], dtype=torch.float64)
    out = D.log_mean_exp(lw, dim=0)
    assert torch.isfinite(out).all() and torch.allclose(out.double(), want, atol=1e-4)
    assert torch.allclose(D.log_mean_exp(lw.T, dim=1), out)
    small = torch.randn(5, 3, dtype=torch.float64)  # where the naive formula is safe, they agree
    assert torch.allclose(D.log_mean_exp(small, dim=0), small.exp().mean(0).log())
