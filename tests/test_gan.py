"""GAN, DCGAN and LSGAN: the two-player contract, the optimal discriminator,
conditioning, build-time errors, persistence, toy data and tools."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import genlab
from genlab import registry
from genlab.config import from_dict, to_dict
from genlab.data.toy2d import Toy2D, mode_stats, modes
from genlab.errors import ConfigError, TrainingError
from genlab.models.dcgan import DCGANConfig, LSGANConfig
from genlab.models.gan import GANConfig
from two_player import identical, record_steps, snapshot


def tiny(name="dcgan", **kw):
    defaults = (
        dict(image_shape=(1, 16, 16), channels=8, latent_dim=8)
        if name != "gan"
        else dict(image_shape=(2,), hidden_dim=16, hidden_layers=2, latent_dim=4)
    )
    defaults.update(kw)
    return registry.build(name, **defaults)


def run_steps(model, batch, steps=None):
    """Minimal Trainer stand-in: each step with its own Adam, every other parameter frozen."""
    steps = steps or model.train_steps()
    for s in steps:
        own = {id(p) for p in s.parameters()}
        for p in model.parameters():
            p.requires_grad_(id(p) in own)
        opt = torch.optim.Adam(s.parameters(), lr=2e-4, betas=(0.5, 0.999))
        opt.zero_grad(set_to_none=True)
        s.loss(batch)["loss"].backward()
        opt.step()
    for p in model.parameters():
        p.requires_grad_(True)


# --------------------------------------------------------------------------- the two-player contract


def test_d_step_sends_no_gradient_to_generator():
    model = tiny("dcgan")
    batch = {"x": torch.rand(4, 1, 16, 16) * 2 - 1, "y": None}
    d_step, g_step = model.train_steps()
    d_step.loss(batch)["loss"].backward()  # nothing frozen: the fakes themselves must be detached
    assert all(p.grad is None for p in model.G.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.D.parameters())


def test_each_step_leaves_the_other_player_bit_identical_model_level():
    torch.manual_seed(0)
    model = tiny("gan", penalty="r1")
    batch = {"x": torch.randn(16, 2), "y": None}
    d_step, g_step = model.train_steps()
    g0, d0 = snapshot(model.G), snapshot(model.D)
    run_steps(model, batch, [d_step])
    assert identical(g0, snapshot(model.G)) and not identical(d0, snapshot(model.D))
    g1, d1 = snapshot(model.G), snapshot(model.D)
    run_steps(model, batch, [g_step])
    assert identical(d1, snapshot(model.D)) and not identical(g1, snapshot(model.G))


def test_each_step_leaves_the_other_player_bit_identical_with_the_trainer(tmp_path):
    Trainer = pytest.importorskip("genlab.train.trainer").Trainer
    from genlab.config import TrainConfig
    from genlab.data import ImageDataset

    torch.manual_seed(0)
    model = tiny("dcgan", d_steps=2, num_classes=3)
    seen, take = record_steps(model, {"G": model.G, "D": model.D})  # (step name, snapshots) at the start of each step
    data = ImageDataset(torch.randint(0, 256, (32, 1, 16, 16), dtype=torch.uint8), torch.arange(32) % 3, num_classes=3)
    cfg = TrainConfig(
        steps=1, batch_size=8, progress=False, log_every=0, sample_every=0, checkpoint_every=0, device="cpu"
    )
    Trainer(model, data, cfg, tmp_path / "run").fit()
    seen.append(("end", take()))
    assert [s[0] for s in seen] == ["discriminator", "discriminator", "generator", "end"]
    for (name, a), (_, b) in zip(seen, seen[1:]):
        if name.startswith("discriminator"):
            assert identical(a["G"], b["G"]), f"the {name} step changed the generator"
            assert not identical(a["D"], b["D"])
        else:
            assert identical(a["D"], b["D"]), "the generator step changed the discriminator"
            assert not identical(a["G"], b["G"])


def test_train_steps_options(tmp_path):
    from genlab.config import TrainConfig
    from genlab.train import Trainer

    model = tiny("gan", d_steps=3)
    steps = model.train_steps()
    assert [s.name for s in steps] == ["discriminator", "discriminator", "discriminator", "generator"]
    assert [s.new_batch for s in steps] == [False, True, True, False]
    assert list(steps[0].modules) == [model.D] and list(steps[-1].modules) == [model.G]
    assert GANConfig().objective == "non-saturating"
    # Adam's settings come from the train config: per step where given, else train.lr / train.betas
    cfg = TrainConfig(
        lr=1e-4,
        betas=(0.0, 0.9),
        step_lr={"discriminator": 4e-4},
        step_betas={"discriminator": (0.5, 0.99)},
        device="cpu",
        batch_size=4,
        progress=False,
    )
    data = type("Points", (), {"images": torch.randn(8, 2), "labels": None})()
    groups = {k: o.param_groups[0] for k, o in Trainer(model, data, cfg, tmp_path).optimizers.items()}
    assert (groups["discriminator"]["lr"], groups["discriminator"]["betas"]) == (4e-4, (0.5, 0.99))
    assert (groups["generator"]["lr"], groups["generator"]["betas"]) == (1e-4, (0.0, 0.9))
    defaults = registry.build_run_config("gan").train  # the registry's GAN defaults (DCGAN, section 4)
    assert (defaults.lr, defaults.betas, defaults.step_lr) == (2e-4, (0.5, 0.999), {})


@pytest.mark.parametrize("objective", ["minimax", "non-saturating", "least-squares", "hinge"])
def test_losses_log_both_players(objective):
    model = tiny("gan", objective=objective, penalty="gp")
    batch = {"x": torch.randn(8, 2), "y": None}
    d_out = model.d_step_loss(batch)
    g_out = model.g_step_loss(batch)
    assert {"loss", "d/loss", "d/real", "d/fake", "d/penalty"} <= set(d_out)
    assert {"loss", "g/loss", "g/fake"} <= set(g_out)
    assert all(torch.isfinite(torch.as_tensor(v)).all() for v in list(d_out.values()) + list(g_out.values()))


# --------------------------------------------------------------------------- the optimal discriminator


class _Shift(nn.Module):
    def forward(self, z, labels=None):
        return z + 1.0  # p_g = N(1, 1)


def test_discriminator_approaches_the_optimum():
    """Goodfellow et al. 2014, prop. 1: for fixed G, D*(x) = p_data / (p_data + p_g).
    With p_data = N(0, 1), p_g = N(1, 1): D*(x) = sigmoid(1/2 - x)."""
    torch.manual_seed(0)
    model = registry.build("gan", image_shape=(1,), latent_dim=1, hidden_dim=32, hidden_layers=2, objective="minimax")
    model.G = _Shift()
    (d_step,) = [s for s in model.train_steps() if s.name == "discriminator"]
    opt = torch.optim.Adam(model.D.parameters(), lr=3e-3, betas=(0.9, 0.999))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 1.0 if k < 200 else 0.2)
    for _ in range(300):
        opt.zero_grad(set_to_none=True)
        d_step.loss({"x": torch.randn(512, 1), "y": None})["loss"].backward()
        opt.step()
        sched.step()
    grid = torch.linspace(-2, 3, 101)[:, None]
    with torch.no_grad():
        d = torch.sigmoid(model.discriminate(grid))
    d_star = torch.sigmoid(0.5 - grid[:, 0])
    assert (d - d_star).abs().max() < 0.05


# --------------------------------------------------------------------------- conditioning


@pytest.mark.parametrize("conditioning", ["projection", "concat"])
def test_conditional_labels_change_the_output(conditioning):
    torch.manual_seed(0)
    model = tiny("dcgan", num_classes=10, conditioning=conditioning)
    z = model.latent(4, generator=torch.Generator().manual_seed(1))
    a = model.decode(z, labels=torch.zeros(4, dtype=torch.long))
    b = model.decode(z, labels=torch.full((4,), 7))
    assert a.shape == (4, 1, 16, 16) and not torch.allclose(a, b)
    x = torch.rand(4, 1, 16, 16) * 2 - 1
    with torch.no_grad():
        assert not torch.allclose(
            model.discriminate(x, labels=torch.zeros(4, dtype=torch.long)),
            model.discriminate(x, labels=torch.full((4,), 3)),
        )
    out = model.d_step_loss({"x": x, "y": torch.tensor([0, 1, 2, 9])})
    assert torch.isfinite(out["loss"])


def test_conditional_label_errors():
    model = tiny("dcgan", num_classes=10)
    with pytest.raises(ValueError, match="0..9"):
        model.sample(2, labels=torch.tensor([3, 10]))
    with pytest.raises(ValueError, match="labels"):
        model.sample(2)
    with pytest.raises(ValueError, match="no labels"):
        model.d_step_loss({"x": torch.zeros(2, 1, 16, 16), "y": None})
    with pytest.raises(ValueError, match="unconditional"):
        tiny("dcgan").sample(2, labels=torch.tensor([0, 1]))


# --------------------------------------------------------------------------- build-time errors


def test_unknown_objective_is_a_config_error():
    with pytest.raises(ConfigError, match="minimax, non-saturating, least-squares, hinge"):
        GANConfig(objective="wgan")
    with pytest.raises(ConfigError, match="least-squares"):
        registry.build("dcgan", objective="ls")
    with pytest.raises(ConfigError, match="objective"):
        from_dict(DCGANConfig, {"objective": "nonsaturating"})
    with pytest.raises(ConfigError, match="r1"):
        GANConfig(penalty="dragan")
    with pytest.raises(ConfigError, match="projection"):
        GANConfig(conditioning="film")


@pytest.mark.parametrize("shape", [(1, 30, 30), (3, 28, 32), (1, 12, 12), (3, 100, 100)])
def test_unsupported_image_size_is_a_build_error(shape):
    with pytest.raises(ConfigError, match="28, 32 or 64"):
        registry.build("dcgan", image_shape=shape, channels=4)


@pytest.mark.parametrize(
    "shape,upsample", [((1, 28, 28), "transposed"), ((3, 32, 32), "upsample"), ((3, 64, 64), "transposed")]
)
def test_dcgan_sizes(shape, upsample):
    model = registry.build("dcgan", image_shape=shape, channels=4, latent_dim=8, upsample=upsample)
    x = model.sample(2, generator=torch.Generator().manual_seed(0))
    assert x.shape == (2, *shape) and x.min() >= 0 and x.max() <= 1
    assert model.input_mode == "signed"
    assert model.discriminate(torch.zeros(2, *shape)).shape == (2,)


def test_lsgan_preset():
    assert LSGANConfig().objective == "least-squares" and DCGANConfig().objective == "non-saturating"
    model = tiny("lsgan")
    assert type(model).__name__ == "DCGAN" and model.config.objective == "least-squares"
    assert registry.name_of(model) == "lsgan" and registry.name_of(tiny("dcgan")) == "dcgan"


# --------------------------------------------------------------------------- persistence


@pytest.mark.parametrize(
    "name,kw", [("gan", {}), ("dcgan", dict(num_classes=3, spectral_norm=True)), ("lsgan", dict(upsample="upsample"))]
)
def test_save_load_round_trip(tmp_path, name, kw):
    torch.manual_seed(0)
    model = tiny(name, **kw)
    run_steps(
        model,
        {
            "x": model.prepare(torch.rand(8, *model.config.image_shape)),
            "y": torch.arange(8) % 3 if kw.get("num_classes") else None,
        },
    )
    model.eval()
    labels = torch.tensor([0, 1, 2]) if kw.get("num_classes") else None
    before = model.sample(3, generator=torch.Generator().manual_seed(5), labels=labels)
    model.save(tmp_path / "m")
    loaded = genlab.load(tmp_path / "m")
    assert type(loaded.config) is type(model.config) and loaded.config == model.config
    after = loaded.sample(3, generator=torch.Generator().manual_seed(5), labels=labels)
    assert torch.equal(before, after)
    assert from_dict(type(model.config), to_dict(model.config)) == model.config


# --------------------------------------------------------------------------- stability check


class _Confident(nn.Module):
    """D that says +50 for points with x > 0 and -50 otherwise."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.tensor(50.0))

    def forward(self, x, labels=None):
        return self.w * torch.sign(x[:, 0])


class _Negative(nn.Module):
    def __init__(self):
        super().__init__()
        self.b = nn.Parameter(torch.tensor(-1.0))

    def forward(self, z, labels=None):
        return torch.zeros(z.shape[0], 2) + self.b


def test_collapsed_discriminator_raises_training_error():
    model = tiny("gan", collapse_patience=3)
    model.D, model.G = _Confident(), _Negative()
    batch = {"x": torch.ones(8, 2), "y": None}
    out = model.d_step_loss(batch)
    assert out["d/real"] > 0.99 and out["d/fake"] < 0.01
    model.d_step_loss(batch)
    with pytest.raises(TrainingError, match="discriminator collapsed"):
        model.d_step_loss(batch)
    for _ in range(2):
        model.g_step_loss(batch)
    with pytest.raises(TrainingError, match="generator"):
        model.g_step_loss(batch)
    # not counted outside training, and 0 disables the check
    model.eval()
    for _ in range(5):
        model.d_step_loss(batch)
    off = tiny("gan", collapse_patience=0)
    off.D, off.G = _Confident(), _Negative()
    for _ in range(5):
        off.d_step_loss(batch)


# --------------------------------------------------------------------------- toy data


def test_toy_data_and_point_gan():
    ring = Toy2D("ring8")
    assert ring.images.dtype == torch.float32 and ring.images.shape == (10_000, 2)
    assert ring.shape == (2,) and ring.labels is None and ring.num_classes == 0
    assert torch.allclose(modes("ring8").norm(dim=1), torch.full((8,), 2.0))
    assert torch.equal(Toy2D("ring8").images, ring.images)  # fixed seed per split
    stats = mode_stats(ring.images, "ring8")
    assert stats["modes"] == 8 and stats["high_quality"] > 0.98  # 1 - exp(-9/2) = 0.989 in 2-D
    assert mode_stats(Toy2D("grid25", "test").images, "grid25")["modes"] == 25
    empty = mode_stats(torch.zeros(100, 2), "ring8")
    assert empty["modes"] == 0 and empty["high_quality"] == 0.0
    model = tiny("gan")
    assert model.input_mode == "unit"
    assert model.sample(5).shape == (5, 2)
    with pytest.raises(ValueError, match="ring8"):
        Toy2D("ring9")


# --------------------------------------------------------------------------- tools


def test_training_movie_and_walk(tmp_path):
    from PIL import Image

    from genlab.viz.gan import gan_walk_gif, training_movie
    from genlab.viz.images import save_png

    for step in (10, 2, 100):  # numeric, not lexicographic, order
        save_png(torch.full((1, 8, 8), step / 100), tmp_path / "samples" / f"step-{step:07d}.png")
    path = training_movie(tmp_path)
    assert path == tmp_path / "training.gif"
    with Image.open(path) as im:
        assert im.n_frames == 3
    with pytest.raises(FileNotFoundError):
        training_movie(tmp_path / "empty")

    model = tiny("dcgan", num_classes=2)
    for method in ("slerp", "lerp"):
        gif = gan_walk_gif(
            model,
            tmp_path / f"walk-{method}.gif",
            points=3,
            steps=4,
            method=method,
            generator=torch.Generator().manual_seed(0),
            labels=torch.tensor([1]),
        )
        with Image.open(gif) as im:
            assert im.n_frames == 12
    with pytest.raises(ValueError, match="slerp"):
        gan_walk_gif(tiny("dcgan"), tmp_path / "x.gif", method="cubic")


def test_slerp_walk_stays_on_the_shell():
    from genlab.viz.gan import walk_codes

    z = torch.randn(3, 256)
    z = z / z.norm(dim=1, keepdim=True) * math.sqrt(256)
    codes = walk_codes(z, steps=8, method="slerp")
    assert codes.shape == (24, 256)
    assert torch.allclose(codes.norm(dim=1), torch.full((24,), math.sqrt(256)), rtol=1e-4)
    assert torch.allclose(codes[0], z[0]) and torch.allclose(codes[8], z[1])


def test_toy_plot(tmp_path):
    from PIL import Image

    from genlab.viz.plots import plot_gan_toy2d

    for objective in ("non-saturating", "hinge"):
        path = plot_gan_toy2d(
            tiny("gan", objective=objective), tmp_path / f"{objective}.png", data="grid25", n=200, size=128
        )
        with Image.open(path) as im:
            assert im.size == (128, 128)
