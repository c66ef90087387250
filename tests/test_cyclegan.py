"""CycleGAN and unpaired data: the two-step contract through the Trainer, the
cycle-consistency loss against hand computations, the unpaired data spec
(domains, disjointness, pairing), translation, sampling, resume and the CLI."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import genlab
from genlab import data, registry
from genlab.config import TrainConfig
from genlab.data.errors import DataError
from genlab.data.unpaired import INVERSES, TRANSFORMS, load_unpaired, transform, untransform
from genlab.errors import ConfigError
from genlab.train.trainer import Trainer
from two_player import gradient_probe, identical, record_steps

SMALL = dict(
    image_shape=(2, 8, 8), g_channels=4, g_downsamplings=1, g_blocks=1, d_channels=4, d_downsamplings=1, exemplars=8
)

QUIET = dict(progress=False, log_every=0, sample_every=0, checkpoint_every=0, device="cpu")


def small(**kw):
    return registry.build("cyclegan", **{**SMALL, **kw})


class Affine(nn.Module):
    """x -> scale * x + shift: a generator whose maps are known by hand."""

    def __init__(self, scale: float, shift: float = 0.0):
        super().__init__()
        self.scale, self.shift = scale, shift

    def forward(self, x):
        return self.scale * x + self.shift


class Constant(nn.Module):
    """A discriminator that scores every patch ``value`` (a 2x2 map)."""

    def __init__(self, value: float):
        super().__init__()
        self.value = value

    def forward(self, x):
        return torch.full((x.shape[0], 1, 2, 2), self.value)


@pytest.fixture(scope="module")
def digits_pair():
    return load_unpaired("digits", "digits+invert", "train")


# --------------------------------------------------------------------------- the two-step contract


def test_each_step_leaves_the_other_pair_bit_identical_with_the_trainer(tmp_path, digits_pair):
    torch.manual_seed(0)
    model = small()
    players = {"G": model.G, "F": model.F, "D_A": model.D_A, "D_B": model.D_B}
    seen, take = record_steps(model, players)  # (step name, snapshot of every player) at the start of each step
    Trainer(model, digits_pair, TrainConfig(steps=2, batch_size=8, **QUIET), tmp_path / "run").fit()
    seen.append(("end", take()))
    assert [s[0] for s in seen] == ["generators", "discriminators"] * 2 + ["end"]
    for (name, before), (_, after) in zip(seen, seen[1:]):
        still, moved = (("D_A", "D_B"), ("G", "F")) if name == "generators" else (("G", "F"), ("D_A", "D_B"))
        for k in still:
            assert identical(before[k], after[k]), f"the {name} step changed {k}"
        for k in moved:
            assert not identical(before[k], after[k]), f"the {name} step did not train {k}"


def test_discriminator_step_sends_no_gradient_to_the_generators():
    model = small()
    batch = {"x": torch.rand(4, 2, 8, 8) * 2 - 1, "y": None}
    assert gradient_probe(model, "discriminators", batch) == {
        "D_A",
        "D_B",
    }  # nothing frozen: the fakes must be detached
    assert {"G", "F"} <= gradient_probe(model, "generators", batch)


# --------------------------------------------------------------------------- cycle consistency


def cycle_loss(model, a: torch.Tensor, b: torch.Tensor) -> float:
    """``L_cyc`` as the generators' step computes it: its logged forward and backward cycles."""
    with torch.no_grad():
        out = model.generator_loss({"x": torch.cat([a, b], 1)})
    return float(out["g/cycle_a"] + out["g/cycle_b"])


def test_cycle_loss_equals_a_hand_computed_l1():
    model = small()
    model.G, model.F = Affine(-1.0), Affine(0.5)  # F(G(a)) = -a/2, G(F(b)) = -b/2
    a = torch.tensor([0.2, -0.4, 0.6, -1.0]).reshape(1, 1, 2, 2).repeat(1, 1, 4, 4)
    b = torch.tensor([0.5, 0.5, -0.5, 0.0]).reshape(1, 1, 2, 2).repeat(1, 1, 4, 4)
    # |-a/2 - a| = 1.5 |a|: mean 1.5 * 0.55; |-b/2 - b| = 1.5 |b|: mean 1.5 * 0.375
    assert cycle_loss(model, a, b) == pytest.approx(1.5 * 0.55 + 1.5 * 0.375, abs=1e-6)


def test_cycle_loss_is_zero_for_exact_inverses():
    model = small()
    a, b = torch.rand(3, 1, 8, 8) * 2 - 1, torch.rand(3, 1, 8, 8) * 2 - 1
    model.G, model.F = nn.Identity(), nn.Identity()
    assert cycle_loss(model, a, b) == 0.0
    model.G, model.F = Affine(-1.0), Affine(-1.0)  # colour inversion in [-1, 1], its own inverse
    assert cycle_loss(model, a, b) == 0.0
    model.G, model.F = Affine(2.0, 0.5), Affine(0.5, -0.25)  # y = 2x + 0.5 and x = (y - 0.5) / 2
    assert cycle_loss(model, a, b) == pytest.approx(0.0, abs=1e-7)


def test_generator_loss_is_the_papers_sum():
    """With D scoring every patch 0, each least-squares L_GAN is E[(0 - 1)^2] = 1 (the paper's
    scale), so the loss is 2 + lambda_cyc * L_cyc (+ lambda_id * lambda_cyc * L_identity)."""
    model = small(lambda_cyc=7.0, lambda_id=0.5)
    model.G, model.F = Affine(-1.0), Affine(0.5)
    model.D_A, model.D_B = Constant(0.0), Constant(0.0)
    a = torch.tensor([0.2, -0.4, 0.6, -1.0]).reshape(1, 1, 2, 2)
    b = torch.tensor([0.5, 0.5, -0.5, 0.0]).reshape(1, 1, 2, 2)
    model.check_images = lambda x: None  # the hand-made 2x2 images are smaller than the config's
    model.eval()  # (in training mode the step would also store the images for sample())
    out = model.generator_loss({"x": torch.cat([a, b], 1), "y": None})
    cycle = 1.5 * 0.55 + 1.5 * 0.375
    identity = (2 * b.abs()).mean() + (0.5 * a.abs()).mean()  # |G(b) - b| = 2|b|, |F(a) - a| = |a|/2
    assert out["g/gan_ab"].item() == pytest.approx(1.0) and out["g/gan_ba"].item() == pytest.approx(1.0)
    assert out["loss"].item() == pytest.approx(2 + 7.0 * cycle + 0.5 * 7.0 * identity.item(), abs=1e-5)


class MeanScore(nn.Module):
    """A discriminator that scores every patch ``scale * mean(x)`` (a 2x2 map): which
    discriminator judges which images shows in the score."""

    def __init__(self, scale: float):
        super().__init__()
        self.scale = scale

    def forward(self, x):
        return (self.scale * x.mean(dim=(1, 2, 3))).view(-1, 1, 1, 1).expand(-1, 1, 2, 2)


def test_each_generator_is_judged_by_the_other_domains_discriminator():
    """G: A -> B must fool D_B and F: B -> A must fool D_A (least squares, (D - 1)^2)."""
    model = small(lambda_cyc=0.0, lambda_id=0.0)
    model.G, model.F = Affine(-1.0), Affine(0.5)
    model.D_A, model.D_B = MeanScore(2.0), MeanScore(3.0)
    a = torch.tensor([0.2, -0.4, 0.6, -1.0]).reshape(1, 1, 2, 2)  # mean -0.15: G(a) = -a has mean 0.15
    b = torch.tensor([0.5, 0.5, -0.5, 0.5]).reshape(1, 1, 2, 2)  # mean 0.25: F(b) = b/2 has mean 0.125
    model.check_images = lambda x: None
    model.eval()
    out = model.generator_loss({"x": torch.cat([a, b], 1), "y": None})
    assert out["g/gan_ab"].item() == pytest.approx((3.0 * 0.15 - 1) ** 2)  # D_B(G(a))
    assert out["g/gan_ba"].item() == pytest.approx((2.0 * 0.125 - 1) ** 2)  # D_A(F(b))
    assert out["loss"].item() == pytest.approx((3.0 * 0.15 - 1) ** 2 + (2.0 * 0.125 - 1) ** 2)


def test_discriminator_loss_is_least_squares():
    model = small()
    model.D_A, model.D_B = Constant(1.0), Constant(0.25)
    out = model.discriminator_loss({"x": torch.rand(2, 2, 8, 8), "y": None})
    # 1/2 (D(real) - 1)^2 + 1/2 D(fake)^2: D_A 0 + 0.5, D_B 0.5 * 0.5625 + 0.5 * 0.0625
    assert out["loss"].item() == pytest.approx(0.5 + 0.5 * 0.5625 + 0.5 * 0.0625)


# --------------------------------------------------------------------------- unpaired data


def test_unpaired_halves_come_from_the_right_domains_and_are_disjoint(digits_pair):
    source = data.load("digits", "train")
    d = digits_pair
    n = len(source) // 2
    assert d.images.shape == (n, 2, 8, 8) and d.labels is None and d.channels == 1
    assert torch.equal(d.images[:, :1], source.images[d.source_a])  # A: the digits as they are
    assert torch.equal(d.images[:, 1:], 255 - source.images[d.source_b])  # B: inverted digits
    assert torch.equal(d.a.labels, source.labels[d.source_a]) and torch.equal(d.b.labels, source.labels[d.source_b])
    assert len(set(d.source_a.tolist())) == n and len(set(d.source_b.tolist())) == n
    assert not set(d.source_a.tolist()) & set(d.source_b.tolist()), "an image is in both domains"


def test_pairing_changes_with_the_seed_but_not_the_domains(digits_pair):
    again = load_unpaired("digits", "digits+invert", "train", seed=0)
    other = data.load("unpaired:digits,digits+invert,seed=1", "train")
    assert torch.equal(again.images, digits_pair.images)
    assert set(other.source_a.tolist()) == set(digits_pair.source_a.tolist())
    assert set(other.source_b.tolist()) == set(digits_pair.source_b.tolist())
    pairs0 = set(zip(digits_pair.source_a.tolist(), digits_pair.source_b.tolist()))
    pairs1 = set(zip(other.source_a.tolist(), other.source_b.tolist()))
    assert len(pairs0 & pairs1) < 0.05 * len(pairs0)


def test_different_sources_repeat_the_smaller_domain(tmp_path):
    import numpy as np

    np.savez(tmp_path / "other.npz", x=np.random.RandomState(0).randint(0, 256, (500, 1, 8, 8)).astype(np.uint8))
    d = load_unpaired("digits+rot90", f"npz:{tmp_path / 'other.npz'}", "train")
    assert len(d) == 1500 and d.shape == (2, 8, 8)
    assert sorted(d.source_a.tolist()) == list(range(1500))
    assert sorted(set(d.source_b.tolist())) == list(range(500))  # every image used, most of them several times
    np.savez(tmp_path / "big.npz", x=np.zeros((4, 1, 10, 10), np.uint8))
    with pytest.raises(DataError, match="different image sizes"):
        data.load(f"unpaired:digits,npz:{tmp_path / 'big.npz'}", "train")


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_transforms_are_undone_by_their_inverses(name):
    x = torch.randint(0, 256, (3, 1, 5, 5), dtype=torch.uint8)
    y = transform(x, name)
    assert not torch.equal(y, x) and torch.equal(untransform(y, name), x)
    assert torch.equal(transform(y, INVERSES[name]), x)
    assert torch.allclose(untransform(transform(x, "invert").float() / 255, "invert"), x.float() / 255)


def test_rot90_rotates_counter_clockwise():
    x = torch.zeros(1, 1, 3, 3, dtype=torch.uint8)
    x[0, 0, 0, 2] = 255  # top right corner
    assert transform(x, "rot90")[0, 0, 0, 0] == 255  # -> top left


@pytest.mark.parametrize(
    "spec, message",
    [
        ("unpaired:digits", "exactly two domains"),
        ("unpaired:digits,digits,digits", "exactly two domains"),
        ("unpaired:digits,", "exactly two domains"),
        ("unpaired:digits,digits+blur", "unknown transform 'blur'"),
        ("unpaired:digits,ring8", "not an image data set"),
        ("unpaired:digits,nope", "unknown data set 'nope'"),
        ("unpaired:digits,digits+invert,seed=x", "seed=<int>"),
    ],
)
def test_bad_unpaired_specs_are_clear_errors(spec, message):
    with pytest.raises(DataError, match=message):
        data.load(spec, "test")


# --------------------------------------------------------------------------- config, translation, sampling


def test_data_with_an_odd_channel_count_is_a_clear_error():
    with pytest.raises(ConfigError, match="unpaired"):
        small(image_shape=(1, 8, 8))
    with pytest.raises(ConfigError, match="multiples of 4"):
        small(image_shape=(2, 10, 10), g_downsamplings=2)
    with pytest.raises(ConfigError, match="d_downsamplings"):
        small(image_shape=(2, 8, 8), d_downsamplings=2)


@pytest.mark.parametrize("direction", ["a2b", "b2a"])
def test_translate_shapes_ranges_and_which_generator(direction):
    model = small(image_shape=(6, 8, 8)).eval()
    x = torch.rand(5, 3, 8, 8)
    y = model.translate(x, direction)
    assert y.shape == (5, 3, 8, 8) and y.min() >= 0 and y.max() <= 1
    net = "G" if direction == "a2b" else "F"
    setattr(model, net, Affine(-1.0))  # inversion in [-1, 1] is 1 - x in [0, 1]
    assert torch.allclose(model.translate(x, direction), 1 - x, atol=1e-6)


def test_translate_rejects_bad_input():
    model = small().eval()
    with pytest.raises(ValueError, match="a2b"):
        model.translate(torch.rand(1, 1, 8, 8), "forward")
    with pytest.raises(ValueError, match=r"shape \(N, 1, 8, 8\)"):
        model.translate(torch.rand(1, 2, 8, 8), "a2b")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        model.translate(torch.rand(1, 1, 8, 8) * 2 - 1, "a2b")


def test_sample_translates_the_last_training_images():
    model = small(exemplars=4)
    x01 = torch.arange(6 * 2 * 64, dtype=torch.float32).reshape(6, 2, 8, 8) % 256 / 255
    model.train()
    model.generator_loss({"x": model.prepare(x01), "y": None})  # remembers the last 4 of 6
    assert int(model.exemplars_seen) == 6
    stored = sorted(model.exemplar_images.float().sum((1, 2, 3)).tolist())
    assert stored == sorted((x01[2:] * 255).round().sum((1, 2, 3)).tolist())
    model.G, model.F = Affine(-1.0), nn.Identity()  # a2b inverts, b2a copies
    s = model.eval().sample(10, generator=torch.Generator().manual_seed(0))
    assert s.shape == (10, 2, 8, 8)
    bank = model.exemplar_images.float() / 255
    for row in s:  # channel 0 is F(b) = some stored b; channel 1 is G(a) = 1 - some stored a
        assert any(torch.allclose(row[0], b[1], atol=1e-6) for b in bank)
        assert any(torch.allclose(row[1], 1 - a[0], atol=1e-6) for a in bank)
    with pytest.raises(ValueError, match="unconditional"):
        model.sample(2, labels=torch.tensor([0, 1]))


def test_resume_is_bit_identical(tmp_path, digits_pair):
    cfg = TrainConfig(steps=4, batch_size=8, **{**QUIET, "checkpoint_every": 2})
    torch.manual_seed(0)
    straight = small()
    Trainer(straight, digits_pair, cfg, tmp_path / "a").fit()
    torch.manual_seed(0)
    Trainer(small(), digits_pair, cfg, tmp_path / "b").fit(2)
    torch.manual_seed(1)  # a different start: everything must come from the checkpoint
    resumed = small()
    t = Trainer(resumed, digits_pair, cfg, tmp_path / "b")
    assert t.restore() == 2
    t.fit(4)
    for k, v in straight.state_dict().items():
        assert torch.equal(v, resumed.state_dict()[k]), k


# --------------------------------------------------------------------------- command line


def test_cli_trains_translates_and_samples(tmp_path):
    from genlab.cli import main

    run = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "cyclegan",
                "--data",
                "unpaired:digits,digits+invert",
                "--steps",
                "2",
                "--out",
                str(run),
                "--set",
                "train.progress=false",
                "--set",
                "train.batch_size=8",
                "--set",
                "model.g_downsamplings=1",
                "--set",
                "model.d_downsamplings=1",
                "--set",
                "model.g_channels=4",
                "--set",
                "model.d_channels=4",
            ]
        )
        == 0
    )
    model = genlab.load(run)
    assert model.config.image_shape == (2, 8, 8) and int(model.exemplars_seen) == 16
    out = tmp_path / "t.png"
    assert main(["translate", str(run), "--direction", "b2a", "-n", "5", "--out", str(out)]) == 0
    from PIL import Image

    assert Image.open(out).size == (3 * (5 * 10 + 2), 3 * (3 * 10 + 2))  # 5 columns, 3 rows of 8x8 (+2 padding), x3
    img = tmp_path / "digit.png"
    Image.fromarray((torch.rand(20, 20) * 255).byte().numpy()).save(img)
    assert main(["translate", str(run), "--direction", "a2b", "--image", str(img), "--out", str(out)]) == 0
    assert (
        main(["translate", str(run), "--direction", "a2b", "--data", "digits+rot90", "-n", "3", "--out", str(out)]) == 0
    )
    assert main(["sample", str(run), "-n", "4", "--out", str(tmp_path / "s.png")]) == 0
    assert main(["translate", str(run), "--direction", "a2b", "--data", "digits+blur", "--out", str(out)]) == 2


def test_cli_train_defaults_to_unpaired_data_and_explains_single_domain_data(tmp_path, capsys, monkeypatch):
    import genlab.train
    from genlab.cli import main

    assert main(["train", "cyclegan", "--data", "digits", "--steps", "1", "--out", str(tmp_path / "x")]) == 2
    assert "unpaired:<A>,<B>" in capsys.readouterr().err
    seen = []
    from genlab.registry import build_run_config

    monkeypatch.setattr(
        genlab.train,
        "train",
        lambda name, out_dir=None, **kw: seen.append(build_run_config(name, **kw).data.name) or out_dir,
    )
    assert main(["train", "cyclegan", "--steps", "1"]) == 0 and main(["train", "vae", "--steps", "1"]) == 0
    assert seen == ["unpaired:mnist-5k,mnist-5k+invert", "mnist-5k"]
