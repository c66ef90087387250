"""The VAE: shapes for many image sizes, the ELBO's pieces against closed forms,
the IWAE estimator against an exact marginal likelihood (probabilistic PCA),
save/load and determinism."""

import json
import math

import pytest
import torch
from torch.distributions import MultivariateNormal, Normal, kl_divergence

import genlab
from genlab import distributions as D
from genlab.models.vae import VAE, VAEConfig, reparameterize


def tiny(shape=(1, 8, 8), **kw):
    kw.setdefault("channels", (4, 8))
    kw.setdefault("hidden_dim", 16)
    kw.setdefault("latent_dim", 3)
    return VAE(VAEConfig(image_shape=shape, **kw))


SHAPES = [
    ((1, 28, 28), (8, 16)),
    ((1, 28, 20), (8, 16)),
    ((3, 32, 32), (8, 16)),
    ((1, 8, 8), (4, 8)),
    ((3, 64, 64), (8, 16, 16)),
]


@pytest.mark.parametrize("decoder", ["upsample", "transposed"])
@pytest.mark.parametrize("shape,channels", SHAPES)
def test_shapes_loss_and_backward(shape, channels, decoder):
    torch.manual_seed(0)
    m = tiny(shape, channels=channels, decoder=decoder)
    x = m.prepare(torch.rand(3, *shape))
    out = m.loss({"x": x, "y": None})
    assert set(out) >= {"loss", "elbo", "recon", "kl"}
    assert torch.isfinite(out["loss"])
    out["loss"].backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in m.parameters())
    mu, log_var = m.posterior(x)
    assert mu.shape == log_var.shape == (3, 3)
    assert m.decode(mu).shape == (3, *shape)
    s = m.sample(2)
    assert s.shape == (2, *shape) and s.min() >= 0 and s.max() <= 1
    assert m.reconstruct(x).shape == (3, *shape)
    assert m.elbo(x).shape == (3,)
    assert m.log_prob(x, iw_samples=3).shape == (3,)


@pytest.mark.parametrize("likelihood,mode", [("bernoulli", "binary"), ("logistic", "unit"), ("gaussian", "dequantize")])
def test_likelihoods(likelihood, mode):
    torch.manual_seed(0)
    m = tiny((3, 8, 8), likelihood=likelihood)
    assert m.input_mode == mode
    x01 = torch.randint(0, 256, (4, 3, 8, 8)) / 255.0
    x = m.prepare(x01)
    out = m.loss({"x": x})
    assert torch.isfinite(out["loss"])
    out["loss"].backward()
    for noisy in (False, True):
        s = m.sample(3, noisy=noisy, generator=torch.Generator().manual_seed(1))
        assert s.shape == (3, 3, 8, 8) and 0 <= s.min() and s.max() <= 1
    if likelihood == "logistic":  # a discrete likelihood: log P(x) <= 0
        assert (m.log_prob(x, iw_samples=2) <= 0).all()
    assert m.log_prob_offset == (-3 * 64 * math.log(256) if likelihood == "gaussian" else 0.0)


def test_wrong_shape_and_labels_raise():
    m = tiny()
    with pytest.raises(ValueError, match=r"expected images of shape \(N, 1, 8, 8\)"):
        m.loss({"x": torch.zeros(2, 1, 8, 9)})
    with pytest.raises(ValueError, match="expected images"):
        m.log_prob(torch.zeros(1, 8, 8))
    with pytest.raises(ValueError, match="unconditional"):
        m.sample(2, labels=torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="unconditional"):
        VAE(VAEConfig(num_classes=10))
    with pytest.raises(ValueError, match="likelihood"):
        VAE(VAEConfig(likelihood="poisson"))


# ----------------------------------------------------------------------------- KL and reparameterisation


def test_kl_term_matches_torch_distributions():
    torch.manual_seed(0)
    m = tiny()
    x = m.prepare(torch.rand(5, 1, 8, 8))
    mu, log_var = m.posterior(x)
    ref = kl_divergence(Normal(mu, torch.exp(0.5 * log_var)), Normal(0.0, 1.0)).sum(1)
    assert torch.allclose(D.kl_gaussian_standard(mu, log_var), ref, atol=1e-5)
    out = m.loss({"x": x})
    assert torch.allclose(out["kl"], ref.mean(), atol=1e-5)
    assert torch.allclose(out["elbo"], out["recon"] - out["kl"], atol=1e-5)


def test_reparameterised_gradient_matches_analytic_for_quadratic():
    # f(z) = sum_j a_j z_j^2 + b_j z_j;  E_q f = sum a (mu^2 + sigma^2) + b mu
    a = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    b = torch.tensor([1.0, 0.3, -0.7], dtype=torch.float64)
    mu = torch.tensor([0.2, -1.0, 0.5], dtype=torch.float64, requires_grad=True)
    log_var = torch.tensor([0.0, -1.0, 0.7], dtype=torch.float64, requires_grad=True)
    n = 200_000
    z = reparameterize(mu.expand(n, 3), log_var.expand(n, 3), torch.Generator().manual_seed(0))
    (a * z**2 + b * z).sum(1).mean().backward()
    assert torch.allclose(mu.grad, 2 * a * mu.detach() + b, atol=0.03)
    assert torch.allclose(log_var.grad, a * log_var.detach().exp(), atol=0.03)


def test_kl_warmup_ramps_with_the_trainers_iteration():
    m = tiny(kl_warmup_steps=4, beta=2.0)
    x = m.prepare(torch.rand(2, 1, 8, 8))
    weights = []
    for step in range(6):
        m.begin_iteration(step)
        weights.append(float(m.loss({"x": x})["kl_weight"]))
    assert weights == [0.0, 0.5, 1.0, 1.5, 2.0, 2.0]
    assert "step" not in m.state_dict()  # the Trainer's checkpoint holds the iteration


def test_kl_warmup_resumes_exactly(tmp_path):
    from genlab.config import RunConfig, TrainConfig
    from genlab.data.dataset import ImageDataset
    from genlab.io import load_tensors
    from genlab.train import resume, train

    data = ImageDataset((torch.rand(32, 1, 8, 8) * 255).to(torch.uint8), None, "noise")
    tc = dict(steps=6, batch_size=8, log_every=1, sample_every=0, checkpoint_every=3, progress=False, device="cpu")
    cfg = RunConfig(
        "vae",
        VAEConfig(image_shape=(1, 8, 8), latent_dim=2, channels=(4,), hidden_dim=8, kl_warmup_steps=4, beta=2.0),
        TrainConfig(**tc),
    )
    straight = train(cfg, out_dir=str(tmp_path / "straight"), dataset=data)
    cut = train(
        RunConfig(cfg.model_name, cfg.model, TrainConfig(**{**tc, "steps": 3})),
        out_dir=str(tmp_path / "cut"),
        dataset=data,
    )
    resume(cut, steps=6, dataset=data)
    a, b = load_tensors(straight / "model.safetensors"), load_tensors(cut / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    logged = [json.loads(line)["vae/kl_weight"] for line in (cut / "metrics.jsonl").read_text().splitlines()]
    assert logged == [0.0, 0.5, 1.0, 1.5, 2.0, 2.0]


# ----------------------------------------------------------------------------- IWAE


def test_iwae_k1_equals_elbo_in_expectation():
    torch.manual_seed(0)
    m = tiny(latent_dim=2).eval()
    x = m.prepare(torch.rand(2, 1, 8, 8)).repeat(500, 1, 1, 1)
    with torch.inference_mode():
        elbo = m.elbo(x)
    lp1 = m.log_prob(x, iw_samples=1)
    se = (elbo.var() / elbo.numel() + lp1.var() / lp1.numel()).sqrt()
    assert abs(elbo.mean() - lp1.mean()) < 4 * se


def test_iwae_increases_with_k():
    m, x = _ppca()
    A, c, cov = m.exact_posterior()
    m.set_q(A, c - 0.5, torch.log(0.5 * torch.diagonal(cov)))  # a poor q: a clear gap
    g = torch.Generator().manual_seed(0)
    xs = x.repeat(50, 1, 1, 1)
    l1, l50, l500 = (m.log_prob(xs, iw_samples=k, batch_size=20000, generator=g).mean() for k in (1, 50, 500))
    assert l1 < l50 < l500 < m.exact_log_prob(x).mean() + 0.01


class LinearGaussianVAE(VAE):
    """Test-only: p(z) = N(0, I), p(x|z) = N(Wz + b, s^2 I) (probabilistic PCA, exact
    marginal N(b, W W^T + s^2 I)), and a Gaussian q(z|x) = N(A x + c, diag(exp(v)))
    set by the test. Inherits the production elbo() and log_prob()."""

    def __init__(self, W, b, s):
        dim, d = W.shape
        super().__init__(
            VAEConfig(image_shape=(1, 1, dim), latent_dim=d, channels=(2,), hidden_dim=0, channels_last=False)
        )
        self.W, self.b, self.s = W, b, s
        self.double()

    def set_q(self, A, c, log_var):
        self.A, self.c, self.q_log_var = A, c, log_var

    def exact_posterior(self):
        """q = p(z|x): covariance (I + W^T W / s^2)^-1, mean Sigma W^T (x - b) / s^2."""
        d = self.W.shape[1]
        cov = torch.linalg.inv(torch.eye(d, dtype=torch.float64) + self.W.T @ self.W / self.s**2)
        return cov @ self.W.T / self.s**2, -cov @ self.W.T @ self.b / self.s**2, cov

    def posterior(self, x):
        self.check_images(x)
        flat = x.flatten(1)
        return flat @ self.A.T + self.c, self.q_log_var.expand(x.shape[0], -1)

    def log_likelihood(self, x, z):
        mean = z @ self.W.T + self.b
        return D.gaussian_log_prob(x.flatten(1), mean, torch.full_like(mean, 2 * math.log(self.s)))

    def exact_log_prob(self, x):
        cov = self.W @ self.W.T + self.s**2 * torch.eye(self.W.shape[0], dtype=torch.float64)
        return MultivariateNormal(self.b, cov).log_prob(x.flatten(1))


def _ppca():
    g = torch.Generator().manual_seed(0)
    W = torch.randn(4, 2, generator=g, dtype=torch.float64)
    b = torch.randn(4, generator=g, dtype=torch.float64)
    m = LinearGaussianVAE(W, b, 0.7)
    x = (
        torch.randn(3, 2, generator=g, dtype=torch.float64) @ W.T
        + b
        + 0.7 * torch.randn(3, 4, generator=g, dtype=torch.float64)
    ).view(3, 1, 1, 4)
    return m, x


def test_elbo_is_exact_with_the_exact_posterior():
    m, x = _ppca()
    # The ppca posterior covariance is not diagonal in general; make W's columns
    # orthogonal so that it is, then q is exactly p(z|x).
    Q, _ = torch.linalg.qr(m.W)
    m.W = Q * torch.tensor([1.5, 0.6], dtype=torch.float64)
    A, c, cov = m.exact_posterior()
    assert torch.allclose(cov, torch.diag(torch.diagonal(cov)))
    m.set_q(A, c, torch.log(torch.diagonal(cov)))
    exact = m.exact_log_prob(x)
    # Every importance weight p(x, z) / q(z|x) equals p(x): the estimate is exact for any k.
    assert torch.allclose(m.log_prob(x, iw_samples=7), exact, atol=1e-9)
    # The one-sample ELBO (recon with a closed-form KL) equals log p(x) in expectation.
    with torch.inference_mode():
        draws = m.elbo(x.repeat(20000, 1, 1, 1)).view(20000, -1)
    se = draws.std(0) / math.sqrt(20000)
    assert ((draws.mean(0) - exact).abs() < 4 * se + 1e-9).all()


def test_iwae_matches_exact_marginal_of_linear_gaussian_model():
    m, x = _ppca()
    A, c, cov = m.exact_posterior()
    # A deliberately wrong but wider q: shifted mean, inflated diagonal variance.
    m.set_q(A, c + 0.1, torch.log(1.5 * torch.diagonal(cov)))
    exact = m.exact_log_prob(x)
    g = torch.Generator().manual_seed(1)
    with torch.inference_mode():
        elbo = torch.stack([m.elbo(x, generator=g) for _ in range(2000)]).mean(0)
    gap = exact - elbo
    assert (gap > 0.1).all(), gap  # the ELBO has a real gap with this q
    est = m.log_prob(x, iw_samples=5000, batch_size=999, generator=g)  # odd chunking on purpose
    assert ((est - exact).abs() < 0.05).all(), (est, exact)  # Monte Carlo error ~0.01


# ----------------------------------------------------------------------------- persistence and determinism


def test_save_load_round_trip(tmp_path):
    torch.manual_seed(0)
    m = tiny((1, 28, 20), channels=(4, 8), kl_warmup_steps=10)
    x = m.prepare(torch.rand(3, 1, 28, 20))
    m.eval()
    m.save(tmp_path / "vae")
    m2 = genlab.load(tmp_path / "vae")
    assert isinstance(m2, VAE) and m2.config == m.config
    z = torch.randn(5, 3)
    with torch.inference_mode():
        assert torch.equal(m.decode(z), m2.decode(z))
        assert all(torch.equal(a, b) for a, b in zip(m.posterior(x), m2.posterior(x)))
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    assert torch.equal(m.sample(4, generator=g()), m2.sample(4, generator=g()))


def test_sampling_is_deterministic_with_a_generator():
    m = tiny()
    for noisy in (False, True):
        a = m.sample(6, generator=torch.Generator().manual_seed(0), noisy=noisy)
        b = m.sample(6, generator=torch.Generator().manual_seed(0), noisy=noisy)
        assert torch.equal(a, b)
    c = m.sample(6, generator=torch.Generator().manual_seed(1))
    assert not torch.equal(a, c)


# ----------------------------------------------------------------------------- fully connected networks, IWAE training


@pytest.mark.parametrize("encoder,decoder", [("mlp", "mlp"), ("conv", "mlp"), ("mlp", "upsample")])
@pytest.mark.parametrize("likelihood", ["bernoulli", "logistic"])
def test_mlp_encoder_and_decoder_shapes_and_gradients(encoder, decoder, likelihood):
    torch.manual_seed(0)
    m = tiny((3, 10, 6), encoder=encoder, decoder=decoder, mlp_hidden=(12, 7), likelihood=likelihood)
    x = m.prepare(torch.rand(4, 3, 10, 6))
    out = m.loss({"x": x})
    out["loss"].backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in m.parameters())
    assert m.decoder_output(torch.randn(4, 3)).shape == (4, 6 if likelihood == "logistic" else 3, 10, 6)
    assert m.log_prob(x, iw_samples=3).shape == (4,)
    assert m.sample(2).shape == (2, 3, 10, 6)
    if encoder == "mlp":  # no conv weights: the first layer sees every pixel
        assert not any(isinstance(mod, torch.nn.Conv2d) for mod in m.encoder.modules())
        assert m.enc_head[0][0].in_features == 3 * 10 * 6


def test_mlp_vae_is_the_iwae_papers_network_exactly():
    """784-200-200-50 tanh with mean and log-variance heads, mirrored decoder: 425,284 parameters
    (Burda et al. 2016)."""
    m = VAE(
        VAEConfig(
            image_shape=(1, 28, 28),
            encoder="mlp",
            decoder="mlp",
            mlp_hidden=(200, 200),
            latent_dim=50,
            activation="tanh",
        )
    )
    assert sum(p.numel() for p in m.parameters()) == 425_284
    assert sum(isinstance(mod, torch.nn.Tanh) for mod in [*m.enc_head.modules(), *m.dec_head.modules()]) == 4


def _iw_model(k, exact_posterior):
    m, x = _ppca()
    m.config.train_iw_samples = k
    if exact_posterior:  # orthogonal W: the exact posterior is diagonal
        Q, _ = torch.linalg.qr(m.W)
        m.W = Q * torch.tensor([1.5, 0.6], dtype=torch.float64)
        A, c, cov = m.exact_posterior()
        m.set_q(A, c, torch.log(torch.diagonal(cov)))
    else:
        A, c, cov = m.exact_posterior()
        m.set_q(A, c - 0.5, torch.log(0.5 * torch.diagonal(cov)))
    return m, x


def test_iwae_training_loss_is_exact_with_the_exact_posterior():
    """q = p(z|x): every importance weight is p(x), so -loss = mean log p(x) for every draw and k > 1."""
    for k in (2, 3, 8):
        m, x = _iw_model(k, exact_posterior=True)
        out = m.loss({"x": x})
        assert torch.allclose(-out["loss"], m.exact_log_prob(x).mean(), atol=1e-9)
        assert torch.allclose(out["iw_bound"], -out["loss"], atol=1e-9) and torch.allclose(
            out["elbo"], -out["loss"], atol=1e-9
        )


def test_iwae_training_loss_matches_an_independent_computation():
    """The k-sample bound by hand with torch.distributions from the same noise:
    log (1/k) sum_i N(x; W z_i + b, s^2) N(z_i) / q(z_i|x)."""
    k = 5
    m, x = _iw_model(k, exact_posterior=False)
    torch.manual_seed(3)
    loss = m.loss({"x": x})["loss"]
    torch.manual_seed(3)
    mu, log_var = m.posterior(x)
    eps = torch.randn(k * 3, 2, dtype=torch.float64).view(k, 3, 2)
    z = mu + torch.exp(0.5 * log_var) * eps
    q = Normal(mu, torch.exp(0.5 * log_var)).log_prob(z).sum(-1)
    prior = Normal(0.0, 1.0).log_prob(z).sum(-1)
    lik = Normal(z @ m.W.T + m.b, m.s).log_prob(x.flatten(1)).sum(-1)
    bound = torch.logsumexp(lik + prior - q, 0) - math.log(k)
    assert torch.allclose(loss, -bound.mean(), atol=1e-9)


def test_iwae_training_bound_rises_with_k_and_stays_below_log_p():
    """E[L_1] < E[L_4] < E[L_32] <= log p(x) with a poor q, over 400 draws each."""
    means = {}
    for k in (1, 4, 32):
        m, x = _iw_model(k, exact_posterior=False)
        torch.manual_seed(0)
        with torch.no_grad():
            means[k] = float(torch.stack([-m.loss({"x": x})["loss"] for _ in range(400)]).mean())
    exact = float(m.exact_log_prob(x).mean())
    assert means[1] < means[4] - 0.05 and means[4] < means[32] < exact + 0.01, (means, exact)


def test_iwae_training_config_is_checked():
    with pytest.raises(genlab.errors.ConfigError, match="train_iw_samples"):
        VAEConfig(train_iw_samples=0)
    with pytest.raises(genlab.errors.ConfigError, match="beta must be 1"):
        VAEConfig(train_iw_samples=4, beta=0.5)
    with pytest.raises(genlab.errors.ConfigError, match="kl_warmup_steps"):
        VAEConfig(train_iw_samples=4, kl_warmup_steps=100)
    with pytest.raises(genlab.errors.ConfigError, match="mlp_hidden"):
        VAEConfig(decoder="mlp", mlp_hidden=())
    with pytest.raises(genlab.errors.ConfigError, match="encoder"):
        VAEConfig(encoder="resnet")


@pytest.mark.parametrize("posterior", ["gaussian", "iaf"])
def test_bfloat16_autocast_keeps_the_posterior_in_float32(posterior):
    """Under train.amp (bfloat16 autocast on CPU) the networks run in bfloat16, but the
    posterior's statistics come out in float32, so the KL and the importance weights are
    full precision: the training loss stays within bfloat16's rounding of the float32 one."""
    torch.manual_seed(0)
    m = tiny(
        (1, 8, 8), encoder="mlp", decoder="mlp", mlp_hidden=(32,), posterior=posterior, iaf_hidden_dim=8, iaf_context=4
    )
    x = (torch.rand(64, 1, 8, 8) > 0.5).float()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mu, log_var, _ = m.encode_posterior(x)
        assert mu.dtype == log_var.dtype == torch.float32
        torch.manual_seed(1)
        low = m.loss({"x": x, "y": None})["loss"]
    torch.manual_seed(1)
    full = m.loss({"x": x, "y": None})["loss"]
    assert low.dtype == torch.float32
    assert abs(low.item() - full.item()) < 0.02 * abs(full.item())


def test_an_extreme_encoder_output_gives_a_finite_bound_not_nan():
    # An image far from the training data drove the shipped MNIST VAE's log-variance to 89.6 (NaN log_prob).
    from genlab.models.vae import LOG_VAR_RANGE

    model = VAE(VAEConfig(image_shape=(1, 4, 4), latent_dim=2, hidden_dim=8, encoder="mlp", decoder="mlp")).eval()
    x = (torch.rand(3, 1, 4, 4, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    raw = model._encoder_output

    def extreme(inp):
        out = raw(inp).clone()
        out[:, 2:4] = 89.6  # the log-variance half
        return out

    model._encoder_output = extreme
    mu, log_var = model.posterior(x)
    assert float(log_var.max()) == LOG_VAR_RANGE[1]
    with torch.no_grad():
        lp = model.log_prob(x, iw_samples=4, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(lp).all() and (lp <= 0).all()
