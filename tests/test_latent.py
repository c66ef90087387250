"""Latent models and the ``latent:RUN`` data source: the codes an autoencoder gives its own training
data (shapes, levels, the unit-variance scale, fixed seeds), a latent model that trains, saves and
reloads with both parts, the likelihood bound against the exact likelihood enumerated over code maps
(equal where the posterior is a point mass) or integrated over a 1-D latent, the diffusion prior's
bound of a bound, and the config errors that name their field."""

from __future__ import annotations

import json
import math
import shutil

import pytest
import torch

import genlab
from genlab import data, registry
from genlab import distributions as D
from genlab.data import DataError
from genlab.data.latent import SCALE_IMAGES
from genlab.errors import ConfigError
from genlab.io import load_tensors
from genlab.models.latent import LatentConfig, LatentModel
from genlab.train import resume, train

QUICK = [
    "train.batch_size=16",
    "train.progress=false",
    "train.sample_every=0",
    "train.log_every=0",
    "train.checkpoint_every=0",
]
TINY_VAE = ["model.latent_dim=3", "model.channels=[4, 8]", "model.hidden_dim=16"]
TINY_VQVAE = [
    "model.hidden_channels=8",
    "model.residual_blocks=1",
    "model.num_codes=5",
    "model.code_dim=3",
    "model.prior_channels=8",
    "model.prior_blocks=1",
    "model.prior_start=0",
]
#: a U-Net over 1 x 1 x d codes: one resolution, no attention
TINY_UNET = dict(channels=8, channel_mult=[1], attention_resolutions=[], groups=1, sample_steps=3)
TINY_PRIORS = {
    "flow-matching": TINY_UNET,
    "ddpm": {**TINY_UNET, "timesteps": 10, "sample_steps": 4},
    "pixelcnn": dict(hidden_channels=8, num_blocks=1, output_channels=8, input_kernel=3),
    "transformer": dict(d_model=8, num_blocks=1, num_heads=2),
}
BINARY_2X2 = torch.cartesian_prod(*[torch.tensor([0.0, 1.0])] * 4)  # the 16 binary 2x2 images, flattened


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A tiny VAE and a tiny VQ-VAE, each trained 2 steps on the 8x8 digits (a run folder with config.json)."""
    base = tmp_path_factory.mktemp("autoencoders")
    vae = train("vae", data="digits", overrides=QUICK + TINY_VAE + ["train.steps=2"], out_dir=str(base / "vae"))
    vq = train("vqvae", data="digits", overrides=QUICK + TINY_VQVAE + ["train.steps=2"], out_dir=str(base / "vq"))
    return {"vae": str(vae), "vqvae": str(vq)}


def latent_run(runs, tmp_path, autoencoder: str, prior: str, steps: int = 3, name: str = "latent"):
    overrides = QUICK + [f"model.autoencoder={runs[autoencoder]}", f"model.prior={prior}", f"train.steps={steps}"]
    return train("latent", data="digits", overrides=overrides + [("model.prior_config", TINY_PRIORS[prior])],
                 out_dir=str(tmp_path / name))  # fmt: skip


# --------------------------------------------------------------------------- latent:RUN


def test_latent_data_of_a_vae_are_its_posterior_draws_scaled_to_unit_variance(runs):
    vae = genlab.load(runs["vae"])
    train_codes, test_codes = data.load(f"latent:{runs['vae']}"), data.load(f"latent:{runs['vae']}", "test")
    digits = data.load("digits")
    assert train_codes.images.shape == (1500, 1, 1, 3) and test_codes.images.shape == (297, 1, 1, 3)
    assert train_codes.images.dtype == torch.float32 and torch.equal(train_codes.labels, digits.labels)
    sigma = train_codes.scale
    assert test_codes.scale == sigma  # one scale for every split: the first SCALE_IMAGES training codes'
    assert abs(float(train_codes.images[:SCALE_IMAGES].std()) - 1) < 1e-5
    # one draw of q(z|x) per image, input binarised, both from a generator seeded 0, in data-set order
    g = torch.Generator().manual_seed(0)
    x = vae.prepare(digits.images[:256].float() / 255, generator=g)
    z = vae.sample_posterior(*vae.encode_posterior(x), generator=g)[0]
    assert torch.allclose(train_codes.images[:256].reshape(256, 3) * sigma, z, atol=1e-5)
    again, other = data.load(f"latent:{runs['vae']}"), data.load(f"latent:{runs['vae']},seed=1")
    assert torch.equal(again.images, train_codes.images) and not torch.equal(other.images, train_codes.images)


def test_latent_data_of_a_vqvae_are_code_maps_a_categorical_prior_trains_on(runs, tmp_path):
    vq = genlab.load(runs["vqvae"])
    codes = data.load(f"latent:{runs['vqvae']}")
    assert codes.images.shape == (1500, 1, 2, 2) and codes.images.dtype == torch.uint8 and codes.levels == 5
    x = data.load("digits").images[:64].float() / 255
    assert torch.equal(codes.codes[:64], vq.codes(x).unsqueeze(1))
    # what the Trainer feeds a model, images / 255, rounds back to the code on a K-level grid
    assert torch.equal(torch.round(codes.images.float() / 255 * 4).long(), codes.codes)
    run = train(
        "pixelcnn",
        data=f"latent:{runs['vqvae']}",
        overrides=QUICK + ["train.steps=2", "model.likelihood=categorical", "model.grey_levels=5"]
        + [f"model.{k}={v}" for k, v in TINY_PRIORS["pixelcnn"].items()],
        out_dir=str(tmp_path / "pixelcnn-codes"),
    )  # fmt: skip
    drawn = genlab.load(run).sample(3, generator=torch.Generator().manual_seed(0))
    assert drawn.shape == (3, 1, 2, 2) and torch.equal(drawn * 4, torch.round(drawn * 4))


def test_latent_data_refuse_what_has_no_codes_or_names_no_data(runs, tmp_path):
    saved = tmp_path / "saved"  # model.save writes no data section
    genlab.load(runs["vae"]).save(saved)
    with pytest.raises(DataError, match="names no data set"):
        data.load(f"latent:{saved}")
    no_encoder = train(
        "pixelcnn", data="digits", overrides=QUICK + ["train.steps=1"], out_dir=str(tmp_path / "pixelcnn")
    )
    with pytest.raises(DataError, match="has no encode"):
        data.load(f"latent:{no_encoder}")
    with pytest.raises(DataError, match="data.image_size"):
        data.load(f"latent:{runs['vae']}", image_size=(4, 4))
    with pytest.raises(DataError, match="seed"):
        data.load(f"latent:{runs['vae']},seed=x")


# --------------------------------------------------------------------------- the latent model


@pytest.mark.parametrize("autoencoder,prior", [("vae", "flow-matching"), ("vqvae", "transformer")])
def test_a_latent_model_trains_saves_and_reloads_both_parts(runs, tmp_path, autoencoder, prior):
    run = latent_run(runs, tmp_path, autoencoder, prior)
    doc = json.loads((run / "config.json").read_text())
    assert doc["model_name"] == "latent" and doc["model"]["autoencoder"] == runs[autoencoder]
    model = genlab.load(run)
    assert isinstance(model, LatentModel) and model.config.prior == prior
    own = genlab.load(runs[autoencoder]).state_dict()
    assert all(torch.equal(v, model.autoencoder.state_dict()[k]) for k, v in own.items())
    saved = load_tensors(run / "model.safetensors")  # both parts, and sigma
    assert {k.split(".")[0] for k in saved} == {"autoencoder", "prior", "scale_q32"}
    assert all(torch.equal(v, saved[f"autoencoder.{k}"].to(v.dtype)) for k, v in own.items())
    assert (model.scale != 1.0) == (autoencoder == "vae")  # continuous codes: sigma of the first batch
    g = lambda: torch.Generator().manual_seed(4)  # noqa: E731
    x = model.sample(3, generator=g())
    assert x.shape == (3, 1, 8, 8) and 0 <= x.min() and x.max() <= 1 and torch.equal(x, model.sample(3, generator=g()))
    assert not any(p.requires_grad for p in model.autoencoder.parameters())


def test_a_resumed_latent_run_ends_bit_identical_to_a_straight_one(runs, tmp_path):
    """The scale estimated from the first batch and the posterior draws' RNG come back with the checkpoint."""
    straight = latent_run(runs, tmp_path, "vae", "flow-matching", steps=4, name="straight")
    halves = latent_run(runs, tmp_path, "vae", "flow-matching", steps=2, name="halves")
    resume(halves, 4)
    a, b = load_tensors(straight / "model.safetensors"), load_tensors(halves / "model.safetensors")
    assert sorted(a) == sorted(b) and all(torch.equal(a[k], b[k]) for k in a) and int(a["scale_q32"]) > 0


def test_training_raises_the_priors_likelihood_of_the_codes(runs, tmp_path):
    run = latent_run(runs, tmp_path, "vqvae", "pixelcnn", steps=40)
    trained = genlab.load(run)
    torch.manual_seed(0)
    fresh = registry.build("latent", trained.config)
    x = data.load("digits", "test").images[:64].float() / 255
    codes = trained.codes(x)
    with torch.no_grad():
        assert trained.log_prior(codes).mean() > fresh.log_prior(codes).mean() + 0.5


def test_a_changed_autoencoder_warns_and_its_saved_copy_is_used(runs, tmp_path):
    ae = tmp_path / "ae"
    shutil.copytree(runs["vae"], ae)
    run = train(
        "latent",
        data="digits",
        overrides=QUICK + [f"model.autoencoder={ae}", "train.steps=1", ("model.prior_config", TINY_UNET)],
        out_dir=str(tmp_path / "latent"),
    )
    changed = genlab.load(ae)
    with torch.no_grad():
        for p in changed.parameters():
            p.add_(1.0)
    changed.save(ae)
    with pytest.warns(UserWarning, match="other weights than the ones"):
        model = genlab.load(run)
    assert torch.equal(model.autoencoder.state_dict()["dec_head.0.bias"], genlab.load(runs["vae"]).dec_head[0].bias)


# --------------------------------------------------------------------------- the bound, VQ-VAE: enumerated


def vq_latent(prior: str, prior_config: dict | None = None, **ae) -> LatentModel:
    torch.manual_seed(0)
    base = dict(num_codes=2, code_dim=1, prior_channels=4, prior_blocks=1)
    config = LatentConfig(
        image_shape=ae.pop("image_shape", (1, 2, 2)),
        autoencoder="new:vqvae",
        autoencoder_config={**base, **ae},
        prior=prior,
        prior_config=prior_config or TINY_PRIORS[prior],
    )
    model = LatentModel(config).eval()
    with torch.no_grad():
        for p in model.prior.parameters():
            p.add_(0.5 * torch.randn_like(p))  # a prior far from uniform
    return model


def enumerate_codes(model: LatentModel, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every code map c: (maps (M, 1, h, w), log P(c) (M,) from the prior's own log_prob,
    log P(c) + log p(x | c) (M, N))."""
    ae, k = model.autoencoder, model.space.levels
    h, w = ae.code_shape
    maps = torch.cartesian_prod(*[torch.arange(k)] * (h * w)).reshape(-1, 1, h, w)
    with torch.no_grad():
        log_prior = model.prior.log_prob(maps.float() / (k - 1))
        decoded = ae.decoder_params(ae.embed(maps[:, 0]))
        log_px = torch.stack(
            [D.discretized_logistic_log_prob(xi.expand(len(maps), -1, -1, -1), *decoded) for xi in x], 1
        )
    return maps, log_prior, log_prior[:, None] + log_px


def test_vq_bound_equals_the_exact_likelihood_where_the_posterior_is_a_point_mass():
    """A 2x2 binary image space and a VQ-VAE built by hand: one code per pixel, c(x) = x, and a decoder
    whose other codes give x a probability that underflows (a logistic of scale e^-7 centred a whole
    grey range away): p(c | x) is a point mass at c(x), so the bound is log p(x) itself."""
    model = vq_latent("pixelcnn", hidden_channels=1, downsamplings=0, residual_blocks=0)
    ae = model.autoencoder
    with torch.no_grad():
        for p in ae.parameters():
            p.zero_()
        ae.encoder[0].weight[0, 0, 1, 1] = 1.0  # 2x - 1, then ReLU: x itself for binary x
        ae.encoder[2].weight.fill_(1.0)
        ae.codebook.embedding.copy_(torch.tensor([[0.0], [1.0]]))  # code k is the value k
        ae.decoder_in[0].weight[0, 0, 1, 1] = 1.0
        ae.decoder_out.weight[0, 0, 1, 1] = 1.0  # mean = code value
        ae.decoder_out.bias.copy_(torch.tensor([-0.5, -7.0]))  # (+0.5 in decoder_params), log-scale -7
    x = BINARY_2X2.view(16, 1, 2, 2)
    assert torch.equal(model.codes(x), x.long())
    _, log_prior, joint = enumerate_codes(model, x)
    assert torch.allclose(torch.logsumexp(log_prior, 0), torch.zeros(()), atol=1e-5)  # the prior is normalised
    exact = torch.logsumexp(joint, 0)
    bound = model.log_prob(x)
    assert (bound <= exact + 1e-5).all()
    assert torch.allclose(bound, exact, atol=1e-5)


@pytest.mark.parametrize("prior", ["pixelcnn", "transformer"])
def test_vq_bound_is_below_the_exact_likelihood_by_minus_log_the_posterior_of_its_code(prior):
    """Random weights, 3 codes, a 2x2 code map: 81 maps, log p(x) = logsumexp_c [log P(c) + log p(x|c)]."""
    model = vq_latent(prior, image_shape=(1, 4, 4), num_codes=3, code_dim=2, hidden_channels=4, downsamplings=1)
    x = torch.randint(0, 256, (5, 1, 4, 4), generator=torch.Generator().manual_seed(1)).float() / 255
    maps, log_prior, joint = enumerate_codes(model, x)
    assert len(maps) == 81 and torch.allclose(torch.logsumexp(log_prior, 0), torch.zeros(()), atol=1e-5)
    exact = torch.logsumexp(joint, 0)
    bound = model.log_prob(x)
    own = (maps.flatten(1)[:, None] == model.codes(x).flatten(1)[None]).all(-1)  # (81, 5): c(x) of each image
    posterior = (joint - exact).exp()[own]
    assert (bound <= exact + 1e-5).all() and (exact - bound > 1e-3).any()
    assert torch.allclose(exact - bound, -posterior.log(), atol=1e-4)


# --------------------------------------------------------------------------- the bound, VAE: integrated


def vae_latent(prior: str, prior_config: dict, scale: float = 1.7) -> LatentModel:
    """A VAE on 2x2 binary images with a 1-D latent, its posterior q(z|x) = N(0, (1.5 sigma)^2) for every x
    (wider than the prior, so the importance weights are bounded), under ``prior``."""
    torch.manual_seed(0)
    config = LatentConfig(
        image_shape=(1, 2, 2),
        autoencoder="new:vae",
        autoencoder_config=dict(latent_dim=1, encoder="mlp", decoder="mlp", mlp_hidden=[8], channels=[2], hidden_dim=0),
        prior=prior,
        prior_config=prior_config,
        scale=scale,
    )
    model = LatentModel(config).eval()
    with torch.no_grad():
        for p in model.autoencoder.dec_head.parameters():
            p.mul_(2)  # p(x|z) that changes with z
        last = model.autoencoder.enc_head[-1]
        last.weight.zero_()
        last.bias.copy_(torch.tensor([0.0, math.log((1.5 * scale) ** 2)]))
    return model


def test_a_flow_priors_density_of_the_codes_integrates_to_one():
    """The flow's ODE density carried to the codes z = sigma u (the offsets and the Jacobian -log sigma):
    a non-Gaussian 1-D density (a velocity field that changes with x) integrates to 1."""
    model = vae_latent("flow-matching", {**TINY_UNET, "likelihood_tol": 1e-5})
    with torch.no_grad():
        model.prior.net.time_mlp[2].weight.zero_()  # smooth in t: the adaptive solver takes few steps
        for p in model.prior.net.conv_out.parameters():
            p.normal_(0.0, 0.3)
    z = torch.linspace(-25, 25, 1001)
    log_p = model.log_prior(z.view(-1, 1, 1, 1))
    u = z / model.scale
    gaussian = -0.5 * u**2 - 0.5 * math.log(2 * math.pi) - math.log(model.scale)
    assert (log_p - gaussian).abs().max() > 1.0  # not the Gaussian
    assert abs(float(log_p.exp().sum() * (z[1] - z[0])) - 1) < 1e-3


def test_vae_flow_bound_is_below_the_integrated_likelihood_and_reaches_it_with_many_samples():
    """An untrained flow is N(0, I) exactly (its velocity starts at zero), so the prior is N(0, sigma^2)
    with sigma = 1.7, not the VAE's N(0, 1): log p(x) = log int p(x|z) p(z) dz on a grid. E[L_1] (the
    ELBO, mean of 128 draws) is below it by more than 3 standard errors; L_k with k = 1024 comes within
    0.15 nats (its Monte Carlo spread on these images is about 0.04)."""
    model = vae_latent("flow-matching", TINY_UNET)
    sigma = model.scale
    z = torch.linspace(-12, 12, 2401)
    log_pz = -0.5 * (z / sigma) ** 2 - 0.5 * math.log(2 * math.pi) - math.log(sigma)
    assert torch.allclose(model.log_prior(z[::40].view(-1, 1, 1, 1)), log_pz[::40], atol=1e-4)
    x = BINARY_2X2.view(16, 1, 2, 2)[[0, 5, 10, 15]]
    with torch.no_grad():
        log_px = model.autoencoder.log_likelihood(x.repeat(len(z), 1, 1, 1), z.repeat_interleave(4).view(-1, 1))
    exact = torch.logsumexp(log_px.view(len(z), 4) + log_pz[:, None], 0) + math.log(z[1] - z[0])
    g = torch.Generator().manual_seed(1)
    elbo = model.log_prob(x.repeat(128, 1, 1, 1), generator=g, batch_size=1024).view(128, 4)
    assert (elbo.mean(0) + 3 * elbo.std(0) / math.sqrt(128) < exact).all()
    many = model.log_prob(x, iw_samples=1024, generator=g, batch_size=4096)
    assert (many - exact).abs().max() < 0.15 and (many > elbo.mean(0)).all()


def test_a_diffusion_prior_bounds_the_log_density_of_continuous_codes():
    """ddpm over continuous codes: L_0 is the Gaussian density the discretized L_0 tends to as its bins
    shrink (log P(bin) - log(bin width)), and exp(-VLB) of the codes z, the scale's Jacobian included,
    integrates to at most 1 (here with the exact denoiser of unit-variance Gaussian codes,
    eps(x_t) = sqrt(1 - abar_t) x_t); so does exp(-VLB) over the 2 values of a 1 x 1 code map, L_0
    discretized into 2 bins (with the exact denoiser of two equally likely values -1 and 1)."""
    model = vae_latent("ddpm", {**TINY_PRIORS["ddpm"], "timesteps": 50})
    p = model.prior
    p.network = lambda xt, i, labels, scale=1.0: (1 - p.alpha_bar[i]).sqrt().view(-1, 1, 1, 1) * xt
    grid = torch.linspace(-0.5, 0.5, 5).view(-1, 1, 1, 1)
    fine = 4001  # bins of width 2 / 4000 around the grid's values
    with torch.no_grad():
        dense = -p.bound(grid, levels=None, generator=torch.Generator().manual_seed(3))["total"]
        binned = -p.bound(grid, levels=fine, generator=torch.Generator().manual_seed(3))["total"]
    assert torch.allclose(binned - math.log(2 / (fine - 1)), dense, atol=1e-3)
    z = torch.linspace(-12, 12, 481)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        vlb = model.log_prior(z.repeat(64).view(-1, 1, 1, 1), generator=g).view(64, -1).mean(0)
    assert 0.05 < float(vlb.exp().sum() * (z[1] - z[0])) <= 1.0
    ddpm = {**TINY_PRIORS["ddpm"], "timesteps": 50}
    vq = vq_latent("ddpm", ddpm, image_shape=(1, 2, 2), hidden_channels=2, downsamplings=1)  # a 1 x 1 code map
    q = vq.prior

    def two_values(xt, i, labels, scale=1.0):  # E[x_0 | x_t] = tanh(sqrt(abar) x_t / (1 - abar))
        a = q.alpha_bar[i].view(-1, 1, 1, 1)
        return (xt - a.sqrt() * torch.tanh(a.sqrt() * xt / (1 - a))) / (1 - a).sqrt()

    q.network = two_values
    with torch.no_grad():
        vlb = vq.log_prior(torch.arange(2).view(2, 1, 1, 1).repeat(256, 1, 1, 1), generator=g).view(256, 2).mean(0)
    assert 0.5 < float(vlb.exp().sum()) <= 1.0


# --------------------------------------------------------------------------- configs and what has no bound


def test_an_autoencoder_without_a_likelihood_gives_no_bound():
    torch.manual_seed(0)
    model = LatentModel(
        LatentConfig(
            image_shape=(1, 16, 16),
            autoencoder="new:ali",
            autoencoder_config=dict(latent_dim=4, channels=8, hidden_dim=16),
            prior_config=TINY_UNET,
        )
    ).eval()
    assert model.likelihood_kind == "none" and "log_prob" not in model.capabilities
    with pytest.raises(NotImplementedError, match="no decoder likelihood"):
        model.log_prob(torch.rand(2, 1, 16, 16))
    assert model.sample(2, generator=torch.Generator().manual_seed(0)).shape == (2, 1, 16, 16)


@pytest.mark.parametrize(
    "fields, field",
    [
        (dict(prior="gan"), "unknown model.prior 'gan'"),
        (dict(autoencoder="new:pixelcnn"), "model.autoencoder"),
        (dict(autoencoder=""), "model.autoencoder"),
        (dict(prior_config={"no_such_field": 1}), r"model.prior_config.no_such_field"),
        (dict(prior_config={"image_shape": [1, 1, 3]}), r"model.prior_config.image_shape"),
        (dict(autoencoder_config={"latent_dim": 2}), "model.autoencoder_config"),
        (dict(prior="pixelcnn", prior_config={}), "model.prior='pixelcnn' models discrete values"),
        (dict(prior_config={"divergence": "hutchinson"}), "model.prior_config.divergence"),
        (dict(image_shape=(1, 28, 28)), "model.image_shape"),  # not the autoencoder's images
        (dict(autoencoder="no/such/run"), "model.autoencoder"),
    ],
)
def test_bad_configs_raise_a_config_error_naming_the_field(runs, fields, field):
    config = {"image_shape": (1, 8, 8), "autoencoder": runs["vae"], "prior_config": TINY_UNET, **fields}
    with pytest.raises(ConfigError, match=field):
        LatentModel(LatentConfig(**config))


def test_bad_configs_of_a_vq_autoencoder_and_a_saved_model_without_encode(runs, tmp_path):
    with pytest.raises(ConfigError, match="model.prior_config.grey_levels"):
        LatentModel(LatentConfig(image_shape=(1, 8, 8), autoencoder=runs["vqvae"], prior="pixelcnn",
                                 prior_config={**TINY_PRIORS["pixelcnn"], "grey_levels": 256}))  # fmt: skip
    registry.build("pixelcnn", image_shape=(1, 8, 8), **TINY_PRIORS["pixelcnn"]).save(tmp_path / "pixelcnn")
    with pytest.raises(ConfigError, match="model.autoencoder.*has no encode"):
        LatentModel(LatentConfig(image_shape=(1, 8, 8), autoencoder=str(tmp_path / "pixelcnn")))
    with pytest.raises(ConfigError, match="model.prior"):
        registry.build_run_config("latent", overrides=["model.prior=nope"])
