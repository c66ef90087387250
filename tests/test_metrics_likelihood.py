"""Likelihood evaluation against closed forms.

A linear-Gaussian latent model (probabilistic PCA) has an exact marginal
likelihood: z ~ N(0, I_d), x | z ~ N(W z + b, s^2 I)  =>  x ~ N(b, W W^T + s^2 I).
Its importance-weighted estimate (with the VAE's estimator) must converge to it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
import torch
from torch.distributions import MultivariateNormal, Normal

from genlab.config import ModelConfig
from genlab.distributions import log_mean_exp
from genlab.metrics.likelihood import evaluate_likelihood
from genlab.models.base import GenerativeModel
from tiny import build


@dataclass
class LinGaussConfig(ModelConfig):
    latent_dim: int = 2


class LinearGaussian(GenerativeModel):
    """Probabilistic PCA with a chosen (possibly imperfect) Gaussian encoder q(z | x)."""

    config_class = LinGaussConfig
    input_mode = "unit"
    likelihood_kind = "bound"
    importance_sampled = True

    def __init__(self, config: LinGaussConfig, posterior: str = "exact", seed: int = 0):
        super().__init__(config)
        g = torch.Generator().manual_seed(seed)
        D, d = self.num_dims, config.latent_dim
        self.W = torch.randn(D, d, generator=g, dtype=torch.float64) * 0.3
        self.b = torch.full((D,), 0.5, dtype=torch.float64)
        self.s2 = 0.05
        self.posterior = posterior

    def exact_log_prob(self, x):
        cov = self.W @ self.W.T + self.s2 * torch.eye(self.num_dims, dtype=torch.float64)
        return MultivariateNormal(self.b, cov).log_prob(x.reshape(len(x), -1).double())

    def q(self, x):
        x = x.reshape(len(x), -1).double()
        d = self.config.latent_dim
        M = self.W.T @ self.W + self.s2 * torch.eye(d, dtype=torch.float64)
        mean = (x - self.b) @ self.W @ torch.linalg.inv(M).T
        cov = self.s2 * torch.linalg.inv(M)
        if self.posterior == "exact":
            return MultivariateNormal(mean, cov.expand(len(x), d, d))
        # a deliberately poor diagonal encoder: shrunk mean, inflated variance
        return MultivariateNormal(0.7 * mean, torch.diag_embed(2.0 * torch.diagonal(cov)).expand(len(x), d, d))

    def log_prob(self, x, *, labels=None, iw_samples=None, generator=None):
        iw_samples = 1 if iw_samples is None else iw_samples
        q = self.q(x)
        n, d = len(x), self.config.latent_dim
        eps = torch.randn(iw_samples, n, d, generator=generator, dtype=torch.float64)
        z = q.loc + (q.scale_tril @ eps.unsqueeze(-1)).squeeze(-1)  # (k, n, d)
        xf = x.reshape(n, -1).double()
        log_px_z = Normal(z @ self.W.T + self.b, math.sqrt(self.s2)).log_prob(xf).sum(-1)
        log_pz = Normal(0.0, 1.0).log_prob(z).sum(-1)
        log_w = log_px_z + log_pz - q.log_prob(z)
        return log_mean_exp(log_w, dim=0)

    def sample(self, n, *, labels=None, generator=None):
        z = torch.randn(n, self.config.latent_dim, generator=generator, dtype=torch.float64)
        x = (
            z @ self.W.T
            + self.b
            + math.sqrt(self.s2) * torch.randn(n, self.num_dims, generator=generator, dtype=torch.float64)
        )
        return x.float().reshape(n, *self.config.image_shape)


def _model(posterior):
    return LinearGaussian(LinGaussConfig(image_shape=(1, 2, 3), latent_dim=2), posterior=posterior)


def test_exact_posterior_gives_exact_likelihood_for_any_k():
    m = _model("exact")
    x = m.sample(50, generator=torch.Generator().manual_seed(1))
    for k in (1, 7):
        est = m.log_prob(x, iw_samples=k, generator=torch.Generator().manual_seed(2))
        assert torch.allclose(est, m.exact_log_prob(x), atol=1e-8)


def test_iwae_converges_to_the_exact_marginal_likelihood():
    m = _model("poor")
    x = m.sample(100, generator=torch.Generator().manual_seed(1))
    exact = m.exact_log_prob(x).mean().item()
    gaps = []
    for k in (1, 10, 100, 1000):
        est = m.log_prob(x, iw_samples=k, generator=torch.Generator().manual_seed(3)).mean().item()
        gaps.append(exact - est)
    # a lower bound that tightens with k ...
    assert gaps[0] > 0.1
    assert gaps[0] > gaps[1] > gaps[2] > -0.01
    # ... and converges to the closed form
    assert abs(gaps[3]) < 0.01, gaps


def test_evaluate_likelihood_reports_nats_bits_se_and_k():
    m = _model("exact")  # the estimate is exact for any k: this checks the bookkeeping
    x = m.sample(300, generator=torch.Generator().manual_seed(4))
    r = evaluate_likelihood(m, x, iw_samples=4, batch_size=64, seed=5, progress=False)
    exact_nll = -m.exact_log_prob(x)
    assert r["iw_samples"] == 4 and "importance" in r["estimator"]
    assert r["num_examples"] == 300 and r["num_dims"] == 6
    assert r["nll_nats"] == pytest.approx(exact_nll.mean().item(), abs=1e-6)
    assert r["nll_nats_se"] == pytest.approx(exact_nll.std().item() / math.sqrt(300), rel=1e-5)
    assert r["bits_per_dim"] == pytest.approx(r["nll_nats"] / (6 * math.log(2)))
    assert "continuous" in r["preprocessing"]  # float data not on the 8-bit grid
    # fixed seed -> identical result; max_examples takes the first examples
    m = _model("poor")
    r1 = evaluate_likelihood(m, x, iw_samples=3, batch_size=64, seed=5, progress=False)
    r2 = evaluate_likelihood(m, x, iw_samples=3, batch_size=64, seed=5, progress=False)
    assert r2["nll_nats"] == r1["nll_nats"] > r["nll_nats"]  # repeatable; an upper bound on the NLL
    r3 = evaluate_likelihood(m, x, iw_samples=5, max_examples=10, progress=False)
    assert r3["num_examples"] == 10 and r3["iw_samples"] == 5


class _Uniform(GenerativeModel):
    """Uniform over the input space: log_prob known in closed form."""

    input_mode = "dequantize"
    likelihood_kind = "exact"

    def log_prob(self, x, *, labels=None, iw_samples=None, generator=None):  # density 1 on [0, 1]^D
        return torch.zeros(len(x))


class _CoinFlips(GenerativeModel):
    input_mode = "binary"
    likelihood_kind = "exact"

    def log_prob(self, x, *, labels=None, iw_samples=None, generator=None):
        assert set(x.unique().tolist()) <= {0.0, 1.0}
        return torch.full((len(x),), self.num_dims * math.log(0.5))


def _uint8_data(n=20):
    return torch.randint(0, 256, (n, 1, 4, 4), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


def test_dequantized_density_is_reported_as_discrete_bits_per_dim():
    m = _Uniform(ModelConfig(image_shape=(1, 4, 4)))
    r = evaluate_likelihood(m, _uint8_data(), progress=False)
    # uniform over 256 levels per pixel = 8 bits/dim exactly
    assert r["bits_per_dim"] == pytest.approx(8.0)
    assert r["log_prob_offset_nats"] == pytest.approx(-16 * math.log(256))
    assert "dequantization" in r["preprocessing"] and r["iw_samples"] is None


def test_binary_model_states_dynamic_binarization_and_seed():
    m = _CoinFlips(ModelConfig(image_shape=(1, 4, 4)))
    r = evaluate_likelihood(m, _uint8_data(), seed=11, progress=False)
    assert r["bits_per_dim"] == pytest.approx(1.0)
    assert "dynamic binarization" in r["preprocessing"] and "seed 11" in r["preprocessing"]


class _TooDense(_Uniform):
    """A "density" of e^(8 D) on [0, 1]^D: it claims more than all of the probability of each 8-bit cell,
    like an ODE likelihood solved too coarsely (flow matching with 20 Heun steps gave -0.94 bits/dim)."""

    def log_prob(self, x, *, labels=None, iw_samples=None, generator=None):
        return torch.full((len(x),), 8.0 * self.num_dims) + 0.1 * torch.randn(len(x))


def test_a_likelihood_below_zero_on_discrete_data_is_flagged_as_impossible():
    with pytest.warns(UserWarning, match="impossible for discrete data"):
        bad = evaluate_likelihood(_TooDense(ModelConfig(image_shape=(1, 4, 4))), _uint8_data(), progress=False)
    assert bad["bits_per_dim"] < 0 and "below 0" in bad["problem"]
    good = evaluate_likelihood(_Uniform(ModelConfig(image_shape=(1, 4, 4))), _uint8_data(), progress=False)
    assert good["problem"] is None  # 8 bits/dim: possible
    # continuous data: a density above 1 is allowed, so nothing is flagged
    cont = evaluate_likelihood(_TooDense(ModelConfig(image_shape=(1, 4, 4))), torch.rand(20, 1, 4, 4), progress=False)
    assert cont["problem"] is None and cont["bits_per_dim"] < 0


def test_exact_model_rejects_iw_samples_and_shape_mismatch():
    m = _CoinFlips(ModelConfig(image_shape=(1, 4, 4)))
    with pytest.raises(ValueError, match="iw_samples"):
        evaluate_likelihood(m, _uint8_data(), iw_samples=10, progress=False)
    with pytest.raises(ValueError, match="shape"):
        evaluate_likelihood(m, torch.zeros(3, 1, 5, 5, dtype=torch.uint8), progress=False)


# ---------------------------------------------------------------- every model names its own estimator

#: What ``genlab eval``'s estimator sentence must name for each registered likelihood model
#: (TINY configs of tests/tiny.py), and whether it is importance-sampled.
ESTIMATORS = {
    "vae": (["IWAE", "k = 100"], True),
    "pixelvae": (["IWAE", "k = 100"], True),
    "vqvae": (["deterministic lower bound", "no importance samples"], False),
    "latent": (["deterministic lower bound", "no importance samples"], False),  # a VQ-VAE + PixelCNN prior
    "ddpm": (["variational lower bound", "all T = 10 terms"], False),
    "flow-matching": (["exact divergence"], False),  # D = 36 <= exact_max_dims: "auto" is exact
    "glow": (["exact"], False),
    "pixelcnn": (["exact"], False),
    "gated-pixelcnn": (["exact"], False),
    "wavenet": (["exact"], False),
    "transformer": (["exact"], False),
}
#: Variants whose estimator changes with the config.
VARIANTS = {
    "ddpm-stratified": ("ddpm", dict(bound_timesteps=3), ["stratified", "k = 3 of its T = 10 terms"]),
    "flow-matching-hutchinson": (
        "flow-matching",
        dict(divergence="hutchinson"),
        ["Hutchinson", "neither exact nor a bound"],
    ),
}


def _eval(model, **kw):
    """The likelihood part of what ``genlab eval`` computes (metrics.quality.evaluate), on 3 random 8-bit examples."""
    from genlab.metrics.quality import evaluate

    x = torch.randint(
        0, 256, (3, *model.config.image_shape), generator=torch.Generator().manual_seed(0), dtype=torch.uint8
    )
    return evaluate(model.eval(), x, n_samples=0, max_examples=3, progress=False, **kw)["likelihood"]


def test_every_likelihood_model_has_its_expected_estimator():
    from genlab import registry

    likely = {n for n in registry.MODELS if build(n).likelihood_kind != "none"}
    assert likely == set(ESTIMATORS), "add the new likelihood model's estimator to ESTIMATORS"


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(ESTIMATORS) + sorted(VARIANTS))
def test_eval_names_the_estimator_the_model_computes(case):
    name, extra, words = VARIANTS[case] if case in VARIANTS else (case, {}, ESTIMATORS[case][0])
    model = build(name, **extra)
    lik = _eval(model)
    for word in words:
        assert word in lik["estimator"], (case, lik["estimator"])
    sampled = ESTIMATORS[name][1]
    assert model.importance_sampled is sampled
    assert lik["iw_samples"] == (100 if sampled else None)
    assert ("IWAE" in lik["estimator"]) is sampled and ("importance-weighted" in lik["estimator"]) is sampled
    assert math.isfinite(lik["nll_nats"])
    if not sampled:  # k is only for importance-sampled models
        with pytest.raises(ValueError, match="not importance-sampled"):
            _eval(model, iw_samples=5)
    else:
        assert "k = 5 " in _eval(model, iw_samples=5)["estimator"]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["glow", "flow-matching"])
def test_offset_note_when_log_prob_already_includes_it(name):
    lik = _eval(build(name))
    assert lik["log_prob_offset_nats"] == 0.0
    assert (
        "already includes the cell volume -D log 256" in lik["preprocessing"] and "adding" not in lik["preprocessing"]
    )


def test_offset_note_when_the_offset_is_added():
    from genlab.metrics.likelihood import preprocessing_note

    model = _model("exact")
    model.input_mode = "dequantize"
    note = preprocessing_note(model, seed=0)
    assert f"adding {-6 * math.log(256):.2f} nats (= -D log 256 with D = 6)" in note and "already" not in note
