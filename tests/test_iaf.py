"""Inverse autoregressive flow (genlab.nn.iaf) and the VAE with posterior="iaf":
the autoregressive property by autograd, log-determinants against autograd
Jacobians, the exact inverse, normalisation of the flow density on a grid,
the identity flow against the closed-form Gaussian ELBO, IWAE >= ELBO,
save/load, and the CLI override."""

import math

import pytest
import torch
from torch.autograd.functional import jacobian

import genlab
from genlab import distributions as D
from genlab.errors import ConfigError
from genlab.models.vae import VAE, VAEConfig
from genlab.nn.iaf import ARNN, IAF, IAFStep, MaskedLinear


def randomize(module: torch.nn.Module, scale: float = 0.6, seed: int = 0) -> None:
    """Replace every parameter by N(0, scale^2) draws: a flow far from the identity."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))


def flow_and_context(dim: int, steps: int = 3, context: int = 3, seed: int = 0, hidden=(7, 5)):
    flow = IAF(dim, steps, hidden, context).double()
    randomize(flow, seed=seed)
    h = torch.randn(1, context, generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64)
    return flow, h


# ----------------------------------------------------------------------------- the AR-NN and one step


@pytest.mark.parametrize("dim,hidden", [(1, (4,)), (2, (3, 3)), (5, (7, 4)), (6, (3,))])
def test_arnn_is_autoregressive_by_jacobian(dim, hidden):
    arnn = ARNN(dim, hidden, context_dim=2).double()
    randomize(arnn)
    z = torch.randn(1, dim, dtype=torch.float64)
    h = torch.randn(1, 2, dtype=torch.float64)
    for k in range(2):  # k=0: m, k=1: s
        J = jacobian(lambda v: arnn(v, h)[k], z)[0, :, 0, :]  # (dim, dim): d out_i / d z_j
        upper = torch.triu(torch.ones(dim, dim, dtype=torch.bool))  # j >= i
        assert (J[upper] == 0).all()
        if dim > 1 and min(hidden) >= dim:  # enough units: every allowed dependence is present
            assert (J[~upper] != 0).all()
    # The context reaches every output.
    Jh = jacobian(lambda v: arnn(z, v)[0], h)[0, :, 0, :]
    assert (Jh.abs().sum(1) > 0).all()


def test_reversed_step_is_autoregressive_in_reversed_order():
    step = IAFStep(4, (8, 8), context_dim=0, reverse=True).double()
    randomize(step)
    z = torch.randn(1, 4, dtype=torch.float64)
    J = jacobian(lambda v: step.params(v)[0], z)[0, :, 0, :]
    lower = torch.tril(torch.ones(4, 4, dtype=torch.bool))  # j <= i: forbidden in reversed order
    assert (J[lower] == 0).all() and (J[~lower] != 0).all()


def test_masked_linear_rejects_a_wrong_mask():
    with pytest.raises(ValueError, match=r"mask must have shape \(3, 2\)"):
        MaskedLinear(2, 3, torch.ones(2, 3))


@pytest.mark.parametrize("reverse", [False, True])
def test_step_log_det_matches_autograd_jacobian(reverse):
    step = IAFStep(5, (9, 9), context_dim=3, reverse=reverse).double()
    randomize(step, seed=2)
    h = torch.randn(1, 3, dtype=torch.float64)
    for seed in range(3):
        z = torch.randn(1, 5, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        J = jacobian(lambda v: step(v, h)[0], z)[0, :, 0, :]
        assert torch.allclose(step(z, h)[1], torch.linalg.slogdet(J)[1], atol=1e-5, rtol=0)
        assert torch.linalg.slogdet(J)[0] > 0  # sigma > 0: orientation preserving


def test_flow_log_det_matches_autograd_jacobian_and_inverse_is_exact():
    flow, h = flow_and_context(4, steps=3)
    for seed in range(3):
        z0 = 1.5 * torch.randn(1, 4, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        zT, log_det = flow(z0, h)
        J = jacobian(lambda v: flow(v, h)[0], z0)[0, :, 0, :]
        sign, logabs = torch.linalg.slogdet(J)
        assert sign > 0 and torch.allclose(log_det, logabs, atol=1e-5, rtol=0)
        back, log_det_back = flow.inverse(zT, h)
        assert torch.allclose(back, z0, atol=1e-10) and torch.allclose(log_det_back, log_det, atol=1e-10)


def test_forget_bias_shifts_s_so_a_new_flow_starts_near_the_identity():
    z, h = torch.randn(64, 3), torch.randn(64, 4)
    s = {}
    for bias in (0.0, 2.0):
        torch.manual_seed(0)
        s[bias] = IAF(3, 2, (16, 16), context_dim=4, forget_bias=bias).steps[1].params(z, h)[1]
    assert torch.allclose(s[2.0] - s[0.0], torch.full_like(s[0.0], 2.0), atol=1e-6)
    assert torch.sigmoid(s[2.0]).mean() > 0.8  # sigma near 1: z_t stays close to z_{t-1}


def test_bad_shapes_and_arguments_are_clear_errors():
    flow = IAF(3, 2, (4,), context_dim=2)
    with pytest.raises(ValueError, match=r"expected z of shape \(B, 3\)"):
        flow(torch.zeros(2, 4), torch.zeros(2, 2))
    with pytest.raises(ValueError, match="pass h"):
        flow(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="steps >= 1"):
        IAF(3, 0, (4,))
    with pytest.raises(ValueError, match="posterior"):
        VAE(VAEConfig(posterior="flow"))
    with pytest.raises(ConfigError, match="iaf_steps must be >= 1"):
        VAE(VAEConfig(posterior="iaf", iaf_steps=0))


# ----------------------------------------------------------------------------- the flow density


def flow_log_density(flow, h, mu, log_var, zT):
    """log q(z_T) at arbitrary points via the inverse map: log N(z_0; mu, sigma^2) - log|det|."""
    z0, log_det = flow.inverse(zT, h.expand(zT.shape[0], -1))
    return D.gaussian_log_prob(z0, mu.expand_as(z0), log_var.expand_as(z0)) - log_det


def test_density_at_samples_matches_an_independent_autograd_computation():
    """log q at sampled points (cheap path) = log N(z_0) - log|det J_full| with J from autograd."""
    flow, h = flow_and_context(3, steps=4)
    mu = torch.tensor([[0.3, -0.2, 0.5]], dtype=torch.float64)
    log_var = torch.tensor([[-0.4, 0.2, 0.1]], dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    m = VAE(
        VAEConfig(
            image_shape=(1, 4, 4), latent_dim=3, channels=(2,), hidden_dim=0, posterior="iaf", channels_last=False
        )
    ).double()
    m.flow = flow
    for _ in range(3):
        z, log_q = m.sample_posterior(mu, log_var, h, generator=g)
        z0 = flow.inverse(z, h)[0]
        J = jacobian(lambda v: flow(v, h)[0], z0)[0, :, 0, :]
        ref = torch.distributions.Normal(mu, torch.exp(0.5 * log_var)).log_prob(z0).sum() - torch.linalg.slogdet(J)[1]
        assert torch.allclose(log_q, ref.reshape(1), atol=1e-8)


def test_density_normalises_in_one_dimension():
    flow, h = flow_and_context(1, steps=3)
    mu, log_var = torch.tensor([[0.4]], dtype=torch.float64), torch.tensor([[-0.3]], dtype=torch.float64)
    # The map is monotone (sigma > 0): the image of z_0 in mu +- 10 sigma bounds the mass.
    lo, hi = (flow(mu + k * 10 * torch.exp(0.5 * log_var), h)[0].item() for k in (-1, 1))
    grid = torch.linspace(lo, hi, 20001, dtype=torch.float64)[:, None]
    q = flow_log_density(flow, h, mu, log_var, grid).exp()
    assert abs(torch.trapezoid(q, grid[:, 0]).item() - 1) < 1e-6


def test_density_normalises_in_two_dimensions():
    flow, h = flow_and_context(2, steps=3, hidden=(6, 6))
    mu, log_var = torch.tensor([[0.2, -0.1]], dtype=torch.float64), torch.tensor([[-0.5, 0.0]], dtype=torch.float64)
    # The support: the bounding box of a big cloud of samples, widened by half its size.
    g = torch.Generator().manual_seed(0)
    z0 = mu + torch.exp(0.5 * log_var) * torch.randn(20000, 2, generator=g, dtype=torch.float64)
    zs = flow(z0, h.expand(20000, -1))[0]
    lo, hi = zs.min(0).values, zs.max(0).values
    lo, hi = lo - 0.5 * (hi - lo), hi + 0.5 * (hi - lo)
    n = 401
    a = torch.linspace(lo[0].item(), hi[0].item(), n, dtype=torch.float64)
    b = torch.linspace(lo[1].item(), hi[1].item(), n, dtype=torch.float64)
    A, B = torch.meshgrid(a, b, indexing="ij")
    q = flow_log_density(flow, h, mu, log_var, torch.stack([A.reshape(-1), B.reshape(-1)], 1)).exp().view(n, n)
    mass = torch.trapezoid(torch.trapezoid(q, b, dim=1), a)
    assert abs(mass.item() - 1) < 2e-3, mass


# ----------------------------------------------------------------------------- the VAE with an IAF posterior


def tiny_iaf(**kw):
    cfg = dict(
        image_shape=(1, 8, 8),
        channels=(4, 8),
        hidden_dim=16,
        latent_dim=3,
        posterior="iaf",
        iaf_steps=2,
        iaf_hidden_dim=8,
        iaf_context=4,
    )
    cfg.update(kw)
    return VAE(VAEConfig(**cfg))


def test_identity_flow_elbo_equals_the_gaussian_closed_form_elbo():
    """sigma = 1 makes every step the identity: the IAF ELBO (KL estimated by log q - log p)
    then has the same expectation as the Gaussian VAE's closed-form-KL ELBO."""
    torch.manual_seed(0)
    iaf = tiny_iaf(channels_last=False).double()
    gauss = VAE(VAEConfig(**{**iaf.config.__dict__, "posterior": "gaussian"})).double()
    d = iaf.config.latent_dim
    with torch.no_grad():
        for step in iaf.flow.steps:
            step.arnn.out.weight[d:] = 0.0
            step.arnn.out.bias[d:] = 50.0  # sigmoid(50) == 1 in float64; log sigma = -2e-22
        state = iaf.state_dict()
        state["enc_head.2.weight"] = state["enc_head.2.weight"][: 2 * d]
        state["enc_head.2.bias"] = state["enc_head.2.bias"][: 2 * d]
        gauss.load_state_dict({k: v for k, v in state.items() if not k.startswith("flow.")})
    x = iaf.prepare(
        torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(1)), generator=torch.Generator().manual_seed(2)
    ).double()
    n = 4000
    xs = x.repeat(n, 1, 1, 1)
    with torch.inference_mode():
        r_i, kl_i = iaf.elbo_terms(xs, generator=torch.Generator().manual_seed(3))
        r_g, kl_g = gauss.elbo_terms(xs, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(r_i, r_g, atol=1e-9, rtol=0)  # same noise, identity flow: the same z (up to matmul rounding)
    est = (r_i - kl_i).view(n, 3)
    exact = (r_g - kl_g).view(n, 3)
    diff = est - exact  # only the KL estimator differs
    se = diff.std(0) / math.sqrt(n)
    assert (diff.mean(0).abs() < 4 * se).all() and (se > 0).all(), (diff.mean(0), se)
    assert torch.allclose(kl_g.view(n, 3)[0], D.kl_gaussian_standard(*gauss.posterior(x)))


def test_iwae_is_at_least_the_elbo_on_average_and_finite():
    torch.manual_seed(0)
    m = tiny_iaf()
    randomize(m.flow, scale=0.5)
    m.eval()
    x = m.prepare(
        torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(1)), generator=torch.Generator().manual_seed(2)
    )
    g = torch.Generator().manual_seed(0)
    xs = x.repeat(200, 1, 1, 1)
    with torch.inference_mode():
        elbo = m.elbo(xs, generator=g).view(200, 4).mean(0)
    l1 = m.log_prob(xs, iw_samples=1, generator=g).view(200, 4).mean(0)
    l20 = m.log_prob(x.repeat(20, 1, 1, 1), iw_samples=20, batch_size=37, generator=g).view(20, 4).mean(0)
    assert torch.isfinite(l20).all() and (l20 <= 0).all()
    assert (l20 > elbo).all(), (l20, elbo)
    assert ((l1 - elbo).abs() < 1.5).all()  # k = 1 is the ELBO in expectation (per-example sd ~ a few nats)


def test_iaf_vae_trains_saves_and_loads(tmp_path):
    torch.manual_seed(0)
    m = tiny_iaf()
    x = m.prepare(torch.rand(5, 1, 8, 8))
    out = m.loss({"x": x})
    assert set(out) >= {"loss", "elbo", "recon", "kl"} and torch.isfinite(out["loss"])
    out["loss"].backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in m.flow.parameters())
    assert m.encode_posterior(x)[2].shape == (5, 4)
    assert m.reconstruct(x).shape == (5, 1, 8, 8)
    m.eval()
    m.save(tmp_path / "iaf")
    m2 = genlab.load(tmp_path / "iaf")
    assert isinstance(m2, VAE) and m2.config == m.config and m2.config.posterior == "iaf"
    for k, v in m.state_dict().items():
        assert torch.equal(v, m2.state_dict()[k]), k
    g = lambda: torch.Generator().manual_seed(4)  # noqa: E731
    assert torch.equal(m.log_prob(x, iw_samples=3, generator=g()), m2.log_prob(x, iw_samples=3, generator=g()))
    assert torch.equal(m.sample(3, generator=g()), m2.sample(3, generator=g()))


def test_cli_trains_an_iaf_vae(tmp_path):
    from genlab.cli import main

    out = tmp_path / "run"
    sets = [
        "model.posterior=iaf",
        "model.iaf_steps=2",
        "model.iaf_hidden_dim=8",
        "model.latent_dim=4",
        "train.batch_size=16",
        "train.sample_every=1000",
        "train.progress=false",
    ]
    assert (
        main(
            [
                "train",
                "vae",
                "--data",
                "digits",
                "--steps",
                "3",
                "--out",
                str(out),
                *[a for kv in sets for a in ("--set", kv)],
            ]
        )
        == 0
    )
    m = genlab.load(out)
    assert m.config.posterior == "iaf" and len(m.flow.steps) == 2


def test_flow_structure_alternates_orders_and_keeps_its_defaults():
    from genlab.nn.iaf import IAF

    one = IAF(3, 1, [8])  # a single step is a valid flow
    z, ld = one(torch.randn(4, 3))
    assert z.shape == (4, 3) and ld.shape == (4,)
    assert [s.reverse for s in IAF(3, 4, [8]).steps] == [False, True, False, True]
    torch.manual_seed(0)
    default = IAF(3, 2, [8]).state_dict()
    torch.manual_seed(0)
    explicit = IAF(3, 2, [8], context_dim=0, forget_bias=2.0).state_dict()
    assert default.keys() == explicit.keys() and all(torch.equal(default[k], explicit[k]) for k in default)
    with pytest.raises(ValueError, match="steps >= 1"):
        IAF(3, 0, [8])


def test_arnn_constructor_defaults_widths_and_context():
    torch.manual_seed(0)
    default = ARNN(3, [8]).state_dict()
    torch.manual_seed(0)
    explicit = ARNN(3, [8], context_dim=0, forget_bias=2.0).state_dict()
    assert default.keys() == explicit.keys() and all(torch.equal(default[k], explicit[k]) for k in default)
    assert ARNN(3, [8]).dim == 3 and ARNN(3, [8]).context is None
    assert ARNN(3, [1], context_dim=2)(torch.randn(2, 3), torch.randn(2, 2))[0].shape == (2, 3)  # width 1 is allowed
    assert ARNN(3, [8], context_dim=2).context.bias is None  # h enters the first layer, whose own bias serves both
    for bad in (
        dict(dim=0, hidden=[8]),
        dict(dim=3, hidden=[]),
        dict(dim=3, hidden=[8, 0]),
        dict(dim=3, hidden=[8], context_dim=-1),
    ):
        with pytest.raises(ValueError, match="ARNN needs"):
            ARNN(**bad)
    # the forget bias is added to the initial bias of s (not written over it)
    torch.manual_seed(1)
    zero = ARNN(3, [8], forget_bias=0.0).out.bias.detach().clone()
    torch.manual_seed(1)
    two = ARNN(3, [8], forget_bias=2.0).out.bias.detach()
    assert torch.equal(two[:3], zero[:3]) and torch.allclose(two[3:], zero[3:] + 2.0) and not torch.all(two[3:] == 2.0)
