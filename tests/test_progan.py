"""progan: fade-in identities of G and D, equalized learning rate, minibatch stddev and
pixel norm against hand computations, the growth schedule, exact resume mid-fade,
player isolation through the Trainer, and the loss against the paper's equation."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import genlab
from genlab import registry
from genlab.config import TrainConfig
from genlab.data import ImageDataset
from genlab.errors import ConfigError
from genlab.models.progan import (
    EqualizedConv2d,
    EqualizedLinear,
    growth_schedule,
    minibatch_stddev,
    pixel_norm,
)
from genlab.train.trainer import Trainer
from two_player import gradient_probe


def tiny(**kw):
    """16x16 grey: levels 0, 1, 2 = 4x4, 8x8, 16x16."""
    torch.manual_seed(0)
    return registry.build("progan", **{**dict(image_shape=(1, 16, 16), latent_dim=6, channels=8, min_channels=4), **kw})


def up(x, f=2):
    return x.repeat_interleave(f, dim=2).repeat_interleave(f, dim=3)


# --------------------------------------------------------------------------- fade-in


def test_generator_fade_in_endpoints_and_blend():
    G = tiny().G
    z = torch.randn(5, 6)
    with torch.no_grad():
        low = G(z, 1, 1.0)  # 8x8
        assert low.shape == (5, 1, 8, 8)
        assert torch.equal(G(z, 2, 0.0), up(low))  # alpha = 0: exactly the upsampled old output
        h1 = G.blocks[1](G.blocks[0](F.leaky_relu(G.dense(pixel_norm(z)), 0.2).view(5, G.w0, 4, 4)))
        new = G.to_rgb[2](G.blocks[2](h1))
        assert torch.equal(G(z, 2, 1.0), new)  # alpha = 1: only the new block's path
        torch.testing.assert_close(G(z, 2, 0.3), 0.7 * up(low) + 0.3 * new)


def test_discriminator_fade_in_endpoints_and_blend():
    D = tiny().D
    x = torch.randn(8, 1, 16, 16)
    with torch.no_grad():
        old = D(F.avg_pool2d(x, 2), 1, 1.0)
        assert old.shape == (8,)
        assert torch.equal(D(x, 2, 0.0), old)  # alpha = 0: the old network on the downsampled image
        h_new = D.blocks[2](D.from_rgb[2](x))
        h_old = D.from_rgb[1](F.avg_pool2d(x, 2))

        def rest(h):
            h = D.final_conv(minibatch_stddev(D.blocks[1](h), 4))
            return D.out(F.leaky_relu(D.final_dense(h.flatten(1)), 0.2)).squeeze(1)

        assert torch.equal(D(x, 2, 1.0), rest(h_new))  # alpha = 1: only the new block's path
        torch.testing.assert_close(D(x, 2, 0.25), rest(0.75 * h_old + 0.25 * h_new))


def test_real_images_are_downsampled_and_blended_like_the_generator():
    model = tiny()
    x = torch.rand(3, 1, 16, 16) * 2 - 1
    x8 = F.avg_pool2d(x, 2)
    assert torch.equal(model.real_at_stage(x, 2, 1.0), x)
    assert torch.equal(model.real_at_stage(x, 1, 1.0), x8)
    assert torch.equal(model.real_at_stage(x, 0, 1.0), F.avg_pool2d(x8, 2))
    torch.testing.assert_close(model.real_at_stage(x, 2, 0.0), up(x8))
    torch.testing.assert_close(model.real_at_stage(x, 1, 0.4), 0.6 * up(F.avg_pool2d(x8, 2)) + 0.4 * x8)


# --------------------------------------------------------------------------- layers


def test_equalized_learning_rate_scales_weights_at_run_time():
    torch.manual_seed(1)
    conv = EqualizedConv2d(64, 32, 3)
    lin = EqualizedLinear(200, 50)
    x = torch.randn(16, 64, 8, 8)
    v = torch.randn(4096, 200)
    with torch.no_grad():
        conv.bias.normal_()
        # the stored weight is N(0, 1); the effective weight is w * sqrt(2 / fan_in)
        assert abs(float(conv.weight.std()) - 1) < 0.05 and abs(float(lin.weight.std()) - 1) < 0.05
        torch.testing.assert_close(conv(x), F.conv2d(x, conv.weight * math.sqrt(2 / (64 * 9)), conv.bias, padding=1))
        torch.testing.assert_close(lin(v), v @ (lin.weight * math.sqrt(2 / 200)).T)
        # unit-variance input: std sqrt(2) before, second moment ~1 after LeakyReLU(0.2)
        # (E[lrelu(y)^2] = (1 + 0.2^2) / 2 * 2 = 1.04 for y ~ N(0, 2)); std 1 with gain 1
        y = lin(v)
        assert abs(float(y.std()) - math.sqrt(2)) < 0.15
        assert abs(float(F.leaky_relu(y, 0.2).pow(2).mean().sqrt()) - math.sqrt(1.04)) < 0.1
        assert abs(float(EqualizedLinear(200, 50, gain=1.0)(v).std()) - 1) < 0.1
    # the gradient reaching the stored weight is scaled by the same constant
    w_eff = (lin.weight * lin.scale).detach().requires_grad_(True)
    F.linear(v[:8], w_eff, lin.bias).sum().backward()
    lin(v[:8]).sum().backward()
    torch.testing.assert_close(lin.weight.grad, w_eff.grad * math.sqrt(2 / 200))


def test_minibatch_stddev_against_a_hand_computation():
    torch.manual_seed(2)
    for n, group in [(8, 4), (6, 4), (5, 4), (3, 8)]:
        x = torch.randn(n, 3, 2, 2)
        out = minibatch_stddev(x, group)
        assert out.shape == (n, 4, 2, 2) and torch.equal(out[:, :3], x)
        g = max(d for d in range(1, min(group, n) + 1) if n % d == 0)
        m = n // g
        for i in range(n):
            members = x[[j for j in range(n) if j % m == i % m]]
            assert len(members) == g
            var = ((members - members.mean(0)) ** 2).mean(0)
            expected = (var + 1e-8).sqrt().mean()
            assert torch.allclose(out[i, 3], expected.expand(2, 2), atol=1e-6), (n, group, i)
    same = torch.ones(4, 2, 3, 3)
    assert torch.allclose(minibatch_stddev(same, 4)[:, 2], torch.full((4, 3, 3), 1e-4))


def test_pixel_norm_closed_form():
    a = torch.tensor([3.0, 4.0]).view(1, 2, 1, 1).repeat(2, 1, 2, 2)
    a[1] *= -10
    out = pixel_norm(a)
    torch.testing.assert_close(out[0, :, 0, 0], torch.tensor([3.0, 4.0]) / math.sqrt(12.5 + 1e-8))
    torch.testing.assert_close(out[1, :, 1, 1], torch.tensor([-3.0, -4.0]) / math.sqrt(12.5 + 1e-6))
    r = pixel_norm(torch.randn(4, 7, 3, 3) * 5)
    torch.testing.assert_close(r.pow(2).mean(1), torch.ones(4, 3, 3))


# --------------------------------------------------------------------------- schedule


@pytest.mark.parametrize(
    "stable,fade,table",
    [
        (
            3,
            2,
            {
                0: (0, 1.0),
                2: (0, 1.0),
                3: (1, 0.0),
                4: (1, 0.5),
                5: (1, 1.0),
                7: (1, 1.0),
                8: (2, 0.0),
                9: (2, 0.5),
                10: (2, 1.0),
                12: (2, 1.0),
                13: (2, 1.0),
                10_000: (2, 1.0),
            },
        ),
        (
            1,
            4,
            {
                0: (0, 1.0),
                1: (1, 0.0),
                2: (1, 0.25),
                4: (1, 0.75),
                5: (1, 1.0),
                6: (2, 0.0),
                9: (2, 0.75),
                10: (2, 1.0),
            },
        ),
        (2, 0, {0: (0, 1.0), 1: (0, 1.0), 2: (1, 1.0), 3: (1, 1.0), 4: (2, 1.0), 99: (2, 1.0)}),
        (0, 2, {0: (1, 0.0), 1: (1, 0.5), 2: (2, 0.0), 3: (2, 0.5), 4: (2, 1.0)}),
    ],
)
def test_schedule_maps_steps_to_level_and_alpha(stable, fade, table):
    for step, want in table.items():
        assert growth_schedule(step, 3, stable, fade) == want, step
    model = tiny(stable_steps=stable, fade_steps=fade)
    for step, (level, alpha) in table.items():
        model.begin_iteration(step)
        assert model.stage == (level, alpha) and model.resolution == 4 * 2**level


def test_sample_is_full_resolution_at_every_stage():
    model = tiny(stable_steps=2, fade_steps=2).eval()
    for step in (0, 2, 3, 5, 50):
        model.begin_iteration(step)
        level, alpha = model.stage
        x = model.sample(4, generator=torch.Generator().manual_seed(3))
        assert x.shape == (4, 1, 16, 16) and 0 <= x.min() and x.max() <= 1
        z = torch.randn(4, 6, generator=torch.Generator().manual_seed(3))
        with torch.no_grad():
            low = model.G(z, level, alpha)
        torch.testing.assert_close(x, ((up(low, 2 ** (2 - level)) + 1) / 2).clamp(0, 1))


# --------------------------------------------------------------------------- through the Trainer


def data(n=32):
    g = torch.Generator().manual_seed(0)
    return ImageDataset(torch.randint(0, 256, (n, 1, 16, 16), generator=g, dtype=torch.uint8))


def fit(run_dir, steps, resume=False, **train):
    model = tiny(stable_steps=1, fade_steps=3)
    cfg = TrainConfig(
        **{
            **dict(
                steps=steps,
                batch_size=8,
                progress=False,
                log_every=1,
                sample_every=0,
                checkpoint_every=0,
                device="cpu",
                ema_decay=0.9,
            ),
            **train,
        }
    )
    t = Trainer(model, data(), cfg, run_dir)
    if resume:
        assert t.restore() == 2
    t.fit(steps)
    return t


def test_resume_mid_fade_is_bit_identical(tmp_path):
    full = fit(tmp_path / "full", 5)
    fit(tmp_path / "part", 2)  # iterations 0 (4x4) and 1 (8x8 fade, alpha 0)
    torch.manual_seed(77)
    resumed = fit(tmp_path / "part", 5, resume=True)  # continues at alpha 1/3
    a, b = full.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert all(torch.equal(full.ema.shadow[k], resumed.ema.shadow[k]) for k in a)
    # the last iteration (index 4) was the first stable one at 8x8; the saved model knows it
    assert int(resumed.model.growth_step) == 4 and resumed.model.stage == (1, 1.0)
    loaded = genlab.load(tmp_path / "part")
    assert loaded.stage == (1, 1.0) and loaded.sample(2).shape == (2, 1, 16, 16)
    logged = [line for line in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    import json

    stages = [
        (json.loads(r)["discriminator/resolution"], round(json.loads(r)["discriminator/alpha"], 4)) for r in logged
    ]
    assert stages == [(4.0, 1.0), (8.0, 0.0), (8.0, 0.3333), (8.0, 0.6667), (8.0, 1.0)]


def test_each_trainer_step_leaves_the_other_player_bit_identical(tmp_path):
    model = tiny(stable_steps=1, fade_steps=2)
    snaps = []  # (step name, G weights, D weights) seen at the start of each step, then at the end

    def snap(tag):
        snaps.append(
            (
                tag,
                [p.detach().clone() for p in model.G.parameters()],
                [p.detach().clone() for p in model.D.parameters()],
            )
        )

    d_loss, g_loss = model.d_step_loss, model.g_step_loss
    model.d_step_loss = lambda b: (snap("D"), d_loss(b))[1]
    model.g_step_loss = lambda b: (snap("G"), g_loss(b))[1]
    cfg = TrainConfig(
        steps=3, batch_size=8, progress=False, log_every=0, sample_every=0, checkpoint_every=0, device="cpu"
    )
    Trainer(model, data(), cfg, tmp_path).fit()
    snap("end")
    assert [s[0] for s in snaps] == ["D", "G"] * 3 + ["end"]
    same = lambda a, b: all(torch.equal(x, y) for x, y in zip(a, b))  # noqa: E731
    for (tag, g0, d0), (_, g1, d1) in zip(snaps, snaps[1:]):
        if tag == "D":
            assert same(g0, g1) and not same(d0, d1)
        else:
            assert same(d0, d1) and not same(g0, g1)


@pytest.mark.parametrize("step", [0, 2])  # at 4x4, and mid-fade at 8x8 (both paths of the blend)
def test_discriminator_step_sends_no_gradient_to_the_generator(step):
    model = tiny(stable_steps=1, fade_steps=2)
    model.begin_iteration(step)
    batch = {"x": torch.rand(8, 1, 16, 16) * 2 - 1, "y": None}
    assert gradient_probe(model, "discriminator", batch) == {"D"}  # nothing frozen: the fakes must be detached
    assert "G" in gradient_probe(model, "generator", batch)


def test_first_dense_layer_keeps_he_gain():
    """sqrt(2) / sqrt(latent_dim), not the reference code's sqrt(2)/4 (see ProGenerator's docstring)."""
    for shape in ((1, 16, 16), (1, 28, 28)):
        G = tiny(image_shape=shape).G
        assert G.dense.scale == pytest.approx(math.sqrt(2) / math.sqrt(6))
        assert G.blocks[0][1].scale == pytest.approx(math.sqrt(2) / math.sqrt(G.w0 * 9))  # the conv after it: He's gain


# --------------------------------------------------------------------------- the loss


def test_gradient_penalty_matches_an_independent_jacobian():
    """WGAN-GP through D mid-fade (minibatch stddev couples the examples: the gradient is
    of the summed scores, as in the paper's code), against the full autograd Jacobian."""
    from genlab import losses

    D = tiny().D
    real, fake = torch.randn(4, 1, 16, 16), torch.randn(4, 1, 16, 16)
    fn = lambda inp: D(inp, 2, 0.5)  # noqa: E731
    pen = losses.gradient_penalty(fn, real, fake, 10.0, generator=torch.Generator().manual_seed(5))
    eps = torch.rand(4, 1, 1, 1, generator=torch.Generator().manual_seed(5))
    x_hat = eps * real + (1 - eps) * fake
    jac = torch.autograd.functional.jacobian(fn, x_hat)  # (4, 4, 1, 16, 16): d score_i / d x_hat_j
    grad = jac.sum(0).reshape(4, -1)
    expected = 10.0 * ((grad.norm(dim=1) - 1) ** 2).mean()
    torch.testing.assert_close(pen, expected, rtol=1e-4, atol=1e-6)


def test_d_loss_reads_like_the_paper():
    """L_D = E[D(G(z))] - E[D(x)] + lambda GP + eps_drift E[D(x)^2], recomputed by hand."""
    model = tiny(stable_steps=1, fade_steps=4, drift=0.01)
    model.begin_iteration(3)  # 8x8, alpha 0.5
    x = torch.rand(4, 1, 16, 16) * 2 - 1
    torch.manual_seed(9)
    out = model.d_step_loss({"x": x, "y": None})
    torch.manual_seed(9)
    z = torch.randn(4, 6)
    eps = torch.rand(4, 1, 1, 1)
    real = 0.5 * up(F.avg_pool2d(F.avg_pool2d(x, 2), 2)) + 0.5 * F.avg_pool2d(x, 2)
    fn = lambda inp: model.D(inp, 1, 0.5)  # noqa: E731
    fake = model.G(z, 1, 0.5).detach()
    x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
    (g,) = torch.autograd.grad(fn(x_hat).sum(), x_hat)
    gp = 10.0 * ((g.flatten(1).norm(dim=1) - 1) ** 2).mean()
    d_real, d_fake = fn(real), fn(fake)
    expected = d_fake.mean() - d_real.mean() + gp + 0.01 * d_real.pow(2).mean()
    torch.testing.assert_close(out["loss"], expected, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out["d/drift"], 0.01 * d_real.pow(2).mean())
    assert out["resolution"] == 8.0 and out["alpha"] == 0.5
    torch.manual_seed(9)
    g_out = model.g_step_loss({"x": x, "y": None})
    torch.manual_seed(9)
    torch.testing.assert_close(g_out["loss"], -fn(model.G(torch.randn(4, 6), 1, 0.5)).mean())


def test_non_saturating_option():
    model = tiny(objective="non-saturating", gp_weight=0.0)
    x = torch.rand(4, 1, 16, 16) * 2 - 1
    torch.manual_seed(4)
    out = model.d_step_loss({"x": x, "y": None})
    torch.manual_seed(4)
    fake = model.G(torch.randn(4, 6), 0, 1.0)
    r, f = model.D(F.avg_pool2d(F.avg_pool2d(x, 2), 2), 0, 1.0), model.D(fake, 0, 1.0)
    torch.testing.assert_close(out["loss"], -(F.logsigmoid(r).mean() + F.logsigmoid(-f).mean()))
    assert "d/drift" not in out and "d/gp" not in out


@pytest.mark.parametrize(
    "kw,match",
    [
        (dict(image_shape=(1, 18, 18)), "s \\* 2\\^k"),
        (dict(image_shape=(2,)), "images"),
        (dict(num_classes=10), "unconditional"),
        (dict(objective="wgan"), "wgan-gp or one of"),
        (dict(stable_steps=0, fade_steps=0), "positive sum"),
        (dict(fade_steps=-1), "stable_steps"),
    ],
)
def test_config_errors(kw, match):
    with pytest.raises(ConfigError, match=match):
        tiny(**kw)
