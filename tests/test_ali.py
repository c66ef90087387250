"""ALI / BiGAN (flat and hierarchical): the two-player contract through the Trainer,
the optimal joint discriminator against its closed form, the reparameterised
encoder, shapes of both levels, the (G, E) objectives, and build-time errors."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import genlab
from genlab import losses, registry
from genlab.errors import ConfigError
from genlab.models.ali import ge_loss
from two_player import gradient_probe, identical, record_steps, train_alone


def tiny(**kw):
    defaults = dict(image_shape=(1, 16, 16), latent_dim=4, channels=8, hidden_dim=16, z1_channels=2)
    defaults.update(kw)
    return registry.build("ali", **defaults)


# --------------------------------------------------------------------------- the two-player contract


@pytest.mark.slow
@pytest.mark.parametrize("kw", [dict(), dict(latent_levels=2, encoder="deterministic", penalty="r1", d_steps=2)])
def test_each_step_leaves_the_other_player_bit_identical_with_the_trainer(tmp_path, kw):
    from genlab.config import TrainConfig
    from genlab.data import ImageDataset
    from genlab.train.trainer import Trainer

    torch.manual_seed(0)
    model = tiny(**kw)
    seen, take = record_steps(model, {"GE": (model.G, model.E), "D": model.D})
    data = ImageDataset(torch.randint(0, 256, (32, 1, 16, 16), dtype=torch.uint8))
    cfg = TrainConfig(
        steps=2, batch_size=8, progress=False, log_every=0, sample_every=0, checkpoint_every=0, device="cpu"
    )
    Trainer(model, data, cfg, tmp_path / "run").fit()
    seen.append(("end", take()))
    names = ["discriminator"] * kw.get("d_steps", 1) + ["generator-encoder"]
    assert [s[0] for s in seen] == names * 2 + ["end"]
    for (name, before), (_, after) in zip(seen, seen[1:]):
        (ge_a, d_a), (ge_b, d_b) = (before["GE"], before["D"]), (after["GE"], after["D"])
        if name == "discriminator":
            assert identical(ge_a, ge_b), "the discriminator step changed G or E"
            assert not identical(d_a, d_b)
        else:
            assert identical(d_a, d_b), "the (G, E) step changed D"
            ge_keys = [k for k in ge_a if not torch.equal(ge_a[k], ge_b[k])]
            assert any(k.startswith("0.") for k in ge_keys) and any(k.startswith("1.") for k in ge_keys), (
                "G and E must both train"
            )


@pytest.mark.parametrize("levels", [1, 2])
def test_d_step_sends_no_gradient_to_generator_or_encoder(levels):
    model = tiny(latent_levels=levels, penalty="gp")
    batch = {"x": torch.rand(4, 1, 16, 16) * 2 - 1, "y": None}
    assert gradient_probe(model, "discriminator", batch) == {"D"}  # nothing frozen: only D gets a gradient
    assert {"G", "E"} <= gradient_probe(model, "generator-encoder", batch)  # both trained by the (G, E) step


# --------------------------------------------------------------------------- the optimal discriminator

# A 1-D problem with closed-form joints: data x ~ N(0, 1), encoder q(z | x) = N(A x, S_E^2);
# prior z ~ N(0, 1), generator p(x | z) = N(C z + B, S_G^2).
A, S_E, C, B, S_G = 0.8, 0.6, 0.5, 0.3, 0.7


def _log_normal(v, mean, std):
    return -0.5 * ((v - mean) / std) ** 2 - math.log(std) - 0.5 * math.log(2 * math.pi)


def _log_joints(x, z):
    """(log q(x, z), log p(x, z)) in closed form."""
    log_q = _log_normal(x, 0.0, 1.0) + _log_normal(z, A * x, S_E)
    log_p = _log_normal(z, 0.0, 1.0) + _log_normal(x, C * z + B, S_G)
    return log_q, log_p


class _PairMLP(nn.Module):
    """D(x, [z]) for 1-D x and z."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 1))

    def forward(self, x, zs):
        return self.net(torch.cat([x, zs[0]], 1)).squeeze(1)


@pytest.mark.slow
def test_discriminator_approaches_q_over_q_plus_p():
    """Train only D through the model's own D-step loss, with the encoder and generator
    replaced by the linear-Gaussian maps above: D must approach q / (q + p) on a grid,
    which also pins down the labels (encoder pairs are D's "real")."""
    torch.manual_seed(0)
    model = tiny(objective="minimax", dropout=0.0)
    model.D = _PairMLP()
    model.infer = lambda x, generator=None, mean_only=False: [A * x + S_E * torch.randn_like(x)]
    model.latent = lambda n, generator=None: torch.randn(n, 1)
    model.generate_pairs = lambda z, generator=None, mean_only=False: (C * z + B + S_G * torch.randn_like(z), [z])
    train_alone(model, model.D, "discriminator", lambda: {"x": torch.randn(512, 1), "y": None}, steps=600, decay_at=400)
    g = torch.linspace(-2, 2, 17)
    x, z = torch.meshgrid(g, g, indexing="ij")
    x, z = x.reshape(-1, 1), z.reshape(-1, 1)
    with torch.no_grad():
        d = torch.sigmoid(model.D(x, [z]))
    log_q, log_p = _log_joints(x[:, 0], z[:, 0])
    d_star = torch.sigmoid(log_q - log_p)  # ALI prop. 1: D* = q(x, z) / (q(x, z) + p(x, z))
    seen = 0.5 * (log_q.exp() + log_p.exp()) > 0.02  # judged where pairs are drawn: (q + p) / 2 > 0.02
    assert seen.sum() > 60
    err = (d - d_star).abs()[seen]
    assert err.max() < 0.05 and err.mean() < 0.02, (float(err.max()), float(err.mean()))


# --------------------------------------------------------------------------- objectives


@pytest.mark.parametrize("objective", ["minimax", "non-saturating", "least-squares", "hinge"])
def test_generator_encoder_objective_matches_its_equation(objective):
    enc, gen = torch.randn(7), torch.randn(7)  # D's logits on (x, E(x)) and (G(z), z)
    D_enc, D_gen = torch.sigmoid(enc), torch.sigmoid(gen)
    want = {
        "minimax": (torch.log(D_enc) + torch.log(1 - D_gen)).mean(),  # V(D, G, E), ALI eq. 1
        "non-saturating": -(torch.log(1 - D_enc) + torch.log(D_gen)).mean(),
        "least-squares": 0.5 * (enc**2).mean() + 0.5 * ((gen - 1) ** 2).mean(),
        "hinge": enc.mean() - gen.mean(),
    }[objective]
    torch.testing.assert_close(ge_loss(objective, enc, gen), want)
    # D's objective in the same notation: encoder pairs are its "real" data
    torch.testing.assert_close(losses.d_loss(objective, enc, gen), losses.OBJECTIVES[objective][0](enc, gen))


def test_losses_log_both_players_with_penalties():
    for penalty in ("r1", "gp"):
        model = tiny(latent_levels=2, penalty=penalty)
        batch = {"x": torch.rand(6, 1, 16, 16) * 2 - 1, "y": None}
        d_out, ge_out = model.d_step_loss(batch), model.ge_step_loss(batch)
        assert {"loss", "d/loss", "d/penalty", "d/real", "d/fake"} <= set(d_out)
        assert {"loss", "ge/loss", "ge/d_encoder", "ge/d_generator"} <= set(ge_out)
        assert float(d_out["d/penalty"]) > 0
        assert all(torch.isfinite(torch.as_tensor(v)).all() for v in list(d_out.values()) + list(ge_out.values()))


@pytest.mark.parametrize("encoder,levels", [("deterministic", 1), ("stochastic", 1), ("deterministic", 2)])
def test_cycle_term_is_the_mean_squared_reconstruction_through_the_top_code(encoder, levels):
    torch.manual_seed(0)
    model = tiny(encoder=encoder, latent_levels=levels, cycle_weight=2.5)
    x = torch.rand(6, 1, 16, 16) * 2 - 1
    torch.manual_seed(1)
    out = model.ge_step_loss({"x": x, "y": None})
    # the same draws again, the reconstruction written out by hand: x -> E -> (z1 ->) z -> G -> x
    torch.manual_seed(1)
    z_top = model.infer(x)[-1]
    model.latent(6)  # the prior codes of the generator pairs, drawn before the cycle
    if levels == 1:
        x_rec = torch.tanh(model.G["x"](z_top))
    else:
        x_rec = torch.tanh(model.G["x"](model.G["z1"](z_top)))  # deterministic: p(z1 | z2) is a point mass
    torch.testing.assert_close(out["ge/cycle"], (x - x_rec).pow(2).mean())
    torch.testing.assert_close(out["loss"], out["ge/loss"] + 2.5 * out["ge/cycle"])
    assert "ge/cycle" not in tiny(encoder=encoder, latent_levels=levels).ge_step_loss({"x": x, "y": None})


@pytest.mark.slow
def test_cycle_term_makes_reconstructions_closer(tmp_path):
    from genlab.config import TrainConfig
    from genlab.data import ImageDataset
    from genlab.train.trainer import Trainer

    images = torch.zeros(64, 1, 16, 16, dtype=torch.uint8)
    for i in range(64):  # bars at 8 positions: an easy set to invert
        images[i, 0, 2 * (i % 8) : 2 * (i % 8) + 2, :] = 255
    errors = {}
    for weight in (0.0, 5.0):
        torch.manual_seed(0)
        model = tiny(encoder="deterministic", cycle_weight=weight)
        cfg = TrainConfig(
            steps=60,
            batch_size=16,
            lr=2e-3,
            betas=(0.5, 0.999),
            progress=False,
            log_every=0,
            sample_every=0,
            checkpoint_every=0,
            device="cpu",
        )
        Trainer(model, ImageDataset(images), cfg, tmp_path / str(weight)).fit()
        x01 = images.float() / 255
        errors[weight] = float((model.reconstruct(model.prepare(x01)) - x01).pow(2).mean())
    assert errors[5.0] < 0.7 * errors[0.0], errors  # measured: 0.094 against 0.155


# --------------------------------------------------------------------------- the encoder


@pytest.mark.parametrize("levels", [1, 2])
def test_reparameterised_encoder_sample_has_the_posterior_mean_and_variance(levels):
    torch.manual_seed(0)
    model = tiny(latent_levels=levels).eval()
    with torch.no_grad():
        for p in model.E.parameters():  # spread the posterior so the check has something to see
            p.add_(0.3 * torch.randn_like(p))
    x = (torch.rand(1, 1, 16, 16) * 2 - 1).expand(20000, -1, -1, -1)
    with torch.no_grad():
        mean, log_var = model.posterior(x[:1])[0]
    z1 = model.encode(x, level=1, sample=True, generator=torch.Generator().manual_seed(0))
    n = z1.shape[0]
    std = torch.exp(0.5 * log_var[0])
    assert ((z1.mean(0) - mean[0]).abs() < 5 * std / math.sqrt(n)).all()
    assert ((z1.var(0) / std**2 - 1).abs() < 5 * math.sqrt(2 / n)).all()
    torch.testing.assert_close(model.encode(x[:2], level=1), mean.expand(2, *mean.shape[1:]))
    # the draw is mu + sigma * eps: differentiable in mu and log_var
    eps = torch.randn(3, *mean.shape[1:])
    mu = mean[:1].expand(3, *mean.shape[1:]).clone().requires_grad_(True)
    lv = log_var[:1].expand(3, *mean.shape[1:]).clone().requires_grad_(True)
    from genlab.models.vae import reparameterize

    g = torch.Generator().manual_seed(5)
    z = reparameterize(mu, lv, g)
    torch.testing.assert_close(
        z, mu + torch.exp(0.5 * lv) * torch.randn(eps.shape, generator=torch.Generator().manual_seed(5))
    )
    z.sum().backward()
    torch.testing.assert_close(mu.grad, torch.ones_like(mu))


def test_deterministic_encoder_is_bigan():
    model = tiny(encoder="deterministic").eval()
    x = torch.rand(5, 1, 16, 16) * 2 - 1
    a = model.encode(x, sample=True, generator=torch.Generator().manual_seed(0))
    b = model.encode(x, sample=True, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and torch.equal(a, model.encode(x))
    assert model.posterior(x)[0][1] is None
    # BiGAN's encoder head outputs z itself: half the outputs of ALI's Gaussian head
    assert model.E["z"].head[1].out_features == 4 and tiny().E["z"].head[1].out_features == 8


# --------------------------------------------------------------------------- shapes


@pytest.mark.parametrize("encoder", ["stochastic", "deterministic"])
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_shapes_of_both_levels(shape, encoder):
    for levels in (1, 2):
        model = tiny(image_shape=shape, latent_levels=levels, encoder=encoder, z1_channels=3)
        s = 7 if shape[1] == 28 else 4
        x = torch.rand(2, *shape) * 2 - 1
        assert model.encode(x).shape == (2, 4)
        assert model.decode(torch.randn(2, 4)).shape == (2, *shape)
        rec = model.reconstruct(x)
        assert rec.shape == (2, *shape) and rec.min() >= 0 and rec.max() <= 1
        samples = model.sample(3, generator=torch.Generator().manual_seed(0))
        assert samples.shape == (3, *shape) and samples.min() >= 0 and samples.max() <= 1
        assert model.discriminate(x).shape == (2,)
        if levels == 2:
            assert model.z1_shape == (3, s, s)
            z1 = model.encode(x, level=1)
            assert z1.shape == (2, 3, s, s)
            assert model.decode(z1).shape == (2, *shape)
            assert torch.equal(model.reconstruct(x, level=1), model.decode(z1))
            _, zs = model.generate_pairs(torch.randn(2, 4))
            assert [tuple(z.shape) for z in zs] == [(2, 3, s, s), (2, 4)]


def test_sampling_is_seeded_and_the_hierarchical_middle_layer_is_random():
    model = tiny(latent_levels=2).eval()
    g = lambda k: torch.Generator().manual_seed(k)  # noqa: E731
    assert torch.equal(model.sample(4, generator=g(1)), model.sample(4, generator=g(1)))
    assert not torch.equal(model.sample(4, generator=g(1)), model.sample(4, generator=g(2)))
    # same top code, different z1 ~ p(z1 | z2): different images (stochastic generator conditional)
    z = torch.randn(2, 4)
    with torch.no_grad():
        a, _ = model.generate_pairs(z, generator=g(3))
        b, _ = model.generate_pairs(z, generator=g(4))
    assert not torch.equal(a, b)


def test_save_load_round_trip_of_a_hierarchical_bigan(tmp_path):
    model = tiny(latent_levels=2, encoder="deterministic", spectral_norm=True).eval()
    model.save(tmp_path)
    loaded = genlab.load(tmp_path)
    assert loaded.config == model.config
    x = torch.rand(3, 1, 16, 16) * 2 - 1
    assert torch.equal(model.reconstruct(x), loaded.reconstruct(x))


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("shape", [(1, 30, 30), (1, 28, 32), (1, 8, 8)])
def test_unsupported_image_size_is_a_build_error(shape):
    with pytest.raises(ConfigError, match="s \\* 2\\^k"):
        tiny(image_shape=shape)


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(latent_levels=3), "latent_levels"),
        (dict(encoder="gaussian"), "encoder"),
        (dict(num_classes=10), "unconditional"),
        (dict(arch="mlp"), "conv"),
        (dict(image_shape=(2,)), "images"),
        (dict(dropout=1.0), "dropout"),
        (dict(input_dropout=-0.1), "input_dropout"),
        (dict(cycle_weight=-0.5), "cycle_weight"),
        (dict(objective="wasserstein"), "objective"),
    ],
)
def test_bad_configs_are_clear_errors(kw, match):
    with pytest.raises(ConfigError, match=match):
        tiny(**kw)


def test_bad_inputs_are_clear_errors():
    model = tiny(latent_levels=2)
    with pytest.raises(ValueError, match="labels were given"):
        model.sample(2, labels=torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"shape \(N, 1, 16, 16\)"):
        model.encode(torch.rand(2, 1, 28, 28))
    with pytest.raises(ValueError, match=r"\(N, 4\) or z1 maps \(N, 2, 4, 4\)"):
        model.decode(torch.randn(2, 5))
    with pytest.raises(ValueError, match="level must be in 1..2"):
        model.encode(torch.rand(2, 1, 16, 16), level=3)
    with pytest.raises(ValueError, match="level must be in 1..1"):
        tiny().encode(torch.rand(2, 1, 16, 16), level=2)


# --------------------------------------------------------------------------- command line


def test_cli_trains_then_reconstructs_and_walks_between_encoded_codes(tmp_path, monkeypatch, shared_data):
    from PIL import Image

    from genlab.cli import main
    from genlab.viz import latent

    walked = []  # the codes `genlab interpolate` walks between
    loop_frames = latent.loop_frames
    monkeypatch.setattr(latent, "loop_frames", lambda model, z, **kw: walked.append(z) or loop_frames(model, z, **kw))

    out = tmp_path / "run"
    tiny_flags = [
        "--data",
        "mnist",
        "--data-dir",
        str(shared_data),
        "--set",
        "data.split=test",  # 10,000 images load fast
        "--set",
        "model.channels=4",
        "--set",
        "model.hidden_dim=8",
        "--set",
        "model.latent_dim=3",
        "--set",
        "train.batch_size=8",
        "--set",
        "train.progress=false",
        "--set",
        "train.sample_every=0",
    ]
    assert main(["train", "ali", "--steps", "2", "--out", str(out), "--no-report", *tiny_flags]) == 0
    model = genlab.load(out)
    assert model.config.image_shape == (1, 28, 28) and model.config.latent_dim == 3
    assert main(["reconstruct", str(out), "-n", "4", "--out", str(tmp_path / "r.png"), "--scale", "1"]) == 0
    assert Image.open(tmp_path / "r.png").size[0] > 4 * 28
    assert main(["interpolate", str(out), "--points", "3", "--frames", "4", "--out", str(tmp_path / "i.gif")]) == 0
    assert tmp_path.joinpath("i.gif").stat().st_size > 0
    assert walked[0].shape == (3, 3)  # 3 whole codes of 3 dimensions (not the rows of one code)
    assert main(["traverse", str(out), "--dims", "2", "--steps", "3", "--out", str(tmp_path / "t.png")]) == 0
