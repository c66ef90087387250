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
    xs = D.discretized_logistic_sample(
        torch.full((200000,), 0.4, dtype=torch.float64),
        torch.full((200000,), math.log(0.05), dtype=torch.float64),
        generator=g,
    )
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
    assert torch.allclose(
        D.standard_normal_log_prob(x), torch.distributions.Normal(0.0, 1.0).log_prob(x).sum((1, 2)), atol=1e-5
    )
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
    xs = D.discretized_logistic_mixture_sample(
        logits[:1, :, 0].expand(n, 3),
        means[:1, :, 0].expand(n, 3),
        log_scales[:1, :, 0].expand(n, 3),
        levels=levels,
        generator=g,
    )
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


def test_kl_between_two_diagonal_gaussians_matches_torch():
    torch.manual_seed(2)
    mq, lq, mp, lp = (torch.randn(4, 3, 2, dtype=torch.float64) for _ in range(4))
    ref = torch.distributions.kl_divergence(
        torch.distributions.Normal(mq, (0.5 * lq).exp()), torch.distributions.Normal(mp, (0.5 * lp).exp())
    ).sum((1, 2))
    assert torch.allclose(D.kl_gaussian(mq, lq, mp, lp), ref)
    assert torch.allclose(
        D.kl_gaussian(mq, lq, torch.zeros_like(mp), torch.zeros_like(lp)), D.kl_gaussian_standard(mq, lq)
    )


def test_discretized_logistic_sample_is_the_inverse_cdf_of_the_generators_uniforms():
    mean, log_scale = torch.rand(500, dtype=torch.float64), torch.full((500,), -2.0, dtype=torch.float64)
    torch.manual_seed(0)
    x = D.discretized_logistic_sample(mean, log_scale, levels=16, generator=torch.Generator().manual_seed(7))
    u = torch.rand(500, generator=torch.Generator().manual_seed(7)).clamp(1e-5, 1 - 1e-5)  # float32, as drawn
    expected = torch.round((mean + log_scale.exp() * (torch.log(u) - torch.log1p(-u))).clamp(0, 1) * 15) / 15
    assert torch.equal(x, expected)
    torch.manual_seed(1)  # the global RNG plays no part
    assert torch.equal(
        D.discretized_logistic_sample(mean, log_scale, levels=16, generator=torch.Generator().manual_seed(7)), x
    )


def test_sampling_runs_on_the_parameters_device():
    """Parameters on another device (here "meta"): the uniforms are drawn on the generator's
    device and moved, so the samples live where the parameters do."""
    g = torch.Generator().manual_seed(0)
    m = torch.zeros(3, 2, device="meta")
    assert D.discretized_logistic_sample(m[:, 0], m[:, 0], generator=g).device.type == "meta"
    assert D.discretized_logistic_mixture_sample(m, m, m, generator=g).device.type == "meta"


def test_discretized_logistic_mixture_sample_is_seeded_and_on_the_grid():
    logits = torch.tensor([[0.0, 1.0, -1.0]]).expand(300, 3)
    means, log_scales = torch.tensor([[0.2, 0.5, 0.9]]).expand(300, 3), torch.full((300, 3), -2.0)
    torch.manual_seed(0)
    a = D.discretized_logistic_mixture_sample(
        logits, means, log_scales, levels=16, generator=torch.Generator().manual_seed(3)
    )
    torch.manual_seed(1)  # the global RNG plays no part
    b = D.discretized_logistic_mixture_sample(
        logits, means, log_scales, levels=16, generator=torch.Generator().manual_seed(3)
    )
    assert torch.equal(a, b)
    assert torch.equal(torch.round(a * 15), a * 15)  # on the 16-level grid, not the 256-level one
    eight_bit = D.discretized_logistic_mixture_sample(
        logits, means, log_scales, generator=torch.Generator().manual_seed(3)
    )
    assert torch.allclose(torch.round(eight_bit * 255), eight_bit * 255) and not torch.equal(
        torch.round(eight_bit * 15), eight_bit * 15
    )


def test_defaults_are_eight_bit_and_dimensions_are_independent():
    grid = torch.arange(256, dtype=torch.float64).view(256, 1) / 255
    w, m, s = (
        torch.zeros(256, 2, 1, dtype=torch.float64),
        torch.tensor([0.3, 0.7]).double().view(1, 2, 1).expand(256, 2, 1),
        torch.full((256, 2, 1), -3.0, dtype=torch.float64),
    )
    assert abs(D.discretized_logistic_mixture_log_prob(grid, w, m, s).exp().sum().item() - 1) < 1e-6
    # x (B, 3), parameters (B, K=2, 3): the mixture is per dimension, then summed
    torch.manual_seed(3)
    x = torch.randint(0, 256, (4, 3)).double() / 255
    w, m, s = torch.randn(4, 2, 3).double(), torch.rand(4, 2, 3).double(), torch.randn(4, 2, 3).double() - 2
    per_dim = [
        D.discretized_logistic_mixture_log_prob(
            x[:, j : j + 1], w[:, :, j : j + 1], m[:, :, j : j + 1], s[:, :, j : j + 1]
        )
        for j in range(3)
    ]
    assert torch.allclose(D.discretized_logistic_mixture_log_prob(x, w, m, s), sum(per_dim))


def test_far_tail_bins_use_density_times_width_not_a_clamped_mass():
    """Right of the mean by many scales, float32 CDF differences underflow; the log mass must
    still follow the (float64, cancellation-free) tail formula, not log(1e-12)."""
    levels, half = 256, 0.5 / 255
    x, mean, log_scale = torch.tensor([[0.6]]), torch.tensor([[0.0]]), torch.tensor([[math.log(0.02)]])
    lp = D.discretized_logistic_log_prob(x, mean, log_scale, levels).item()
    s = 0.02
    upper, lower = (
        (0.6 + half) / s,
        (0.6 - half) / s,
    )  # mass = sigmoid(upper) - sigmoid(lower) = sigmoid(-lower) - sigmoid(-upper)
    ref = math.log(1 / (1 + math.exp(lower)) - 1 / (1 + math.exp(upper)))
    assert abs(lp - ref) < 0.05  # a clamped mass would give log(1e-12) = -27.6


def test_draw_passes_keyword_arguments_to_the_sampler():
    x = D.draw(torch.randint, 0, 5, (6,), generator=torch.Generator().manual_seed(0), device="cpu", dtype=torch.uint8)
    assert x.dtype == torch.uint8 and torch.equal(
        x, torch.randint(0, 5, (6,), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    )


def test_sample_clamps_the_uniforms_to_the_documented_range():
    """u is clamped to [1e-5, 1 - 1e-5]: over 4e5 draws some fall outside (about 4 on each
    side), and those give samples at exactly mean +- scale * logit(1 - 1e-5)."""
    n = 400_000
    mean, log_scale = torch.full((n,), 0.5, dtype=torch.float64), torch.full((n,), math.log(0.01), dtype=torch.float64)
    x = D.discretized_logistic_sample(mean, log_scale, generator=torch.Generator().manual_seed(11))
    u = torch.rand(n, generator=torch.Generator().manual_seed(11))
    assert ((u < 1e-5) | (u > 1 - 1e-5)).sum() >= 2
    c = u.clamp(1e-5, 1 - 1e-5)
    assert torch.equal(x, torch.round((mean + 0.01 * (torch.log(c) - torch.log1p(-c))).clamp(0, 1) * 255) / 255)


def test_log_mean_exp_is_a_stable_mean_in_log_space():
    lw = torch.tensor([[-1000.0, 2.0, 1000.0], [-1000.0, 0.0, 999.0]])
    want = torch.tensor(
        [-1000.0, math.log((math.e**2 + 1) / 2), 999.0 + math.log((math.e + 1) / 2)], dtype=torch.float64
    )
    out = D.log_mean_exp(lw, dim=0)
    assert torch.isfinite(out).all() and torch.allclose(out.double(), want, atol=1e-4)
    assert torch.allclose(D.log_mean_exp(lw.T, dim=1), out)
    small = torch.randn(5, 3, dtype=torch.float64)  # where the naive formula is safe, they agree
    assert torch.allclose(D.log_mean_exp(small, dim=0), small.exp().mean(0).log())
