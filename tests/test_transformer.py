"""Transformer (Image GPT): exact normalisation, causality, cached == naive sampling, the cache's
one-position steps, completion, class conditioning, training, config errors. Its bit-identical
resume is tested with glow's and vqvae's in test_resume_glow_vqvae.py."""

from __future__ import annotations

import pytest
import torch

from genlab import registry
from genlab.errors import ConfigError
from genlab.models.transformer import Transformer, TransformerConfig
from genlab.train import Trainer


def tiny(shape=(1, 4, 4), likelihood="auto", **kw) -> Transformer:
    torch.manual_seed(kw.pop("seed", 0))
    return Transformer(
        TransformerConfig(
            image_shape=shape, likelihood=likelihood, **{"d_model": 16, "num_blocks": 2, "num_heads": 2, **kw}
        )
    )


def randomise(model: Transformer, std: float = 0.5) -> Transformer:
    """Large random weights: peaked distributions that depend strongly on the past, so that a
    wrong cache or a leak from the future shows."""
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, std)
    return model


def all_images(shape, levels: int) -> torch.Tensor:
    """Every image of ``shape`` with ``levels`` values per entry, float64 in [0, 1]."""
    grid = torch.arange(levels, dtype=torch.float64) / (levels - 1)
    n = shape[0] * shape[1] * shape[2]
    return (torch.cartesian_prod(*[grid] * n) if n > 1 else grid).reshape(-1, *shape)


def by_position(model: Transformer, params: torch.Tensor) -> torch.Tensor:
    """Parameters (B, C*P, H, W) -> (B, T, P), position t in the token order (row, column, channel)."""
    b, _, h, w = params.shape
    c = model.config.image_shape[0]
    return params.view(b, c, -1, h, w).permute(0, 3, 4, 1, 2).reshape(b, c * h * w, -1)


# --------------------------------------------------------------------------- the distribution


@pytest.mark.slow
@pytest.mark.parametrize(
    "shape,likelihood,levels",
    [
        ((1, 2, 2), "bernoulli", 2),  # 16 binary images
        ((1, 1, 2), "categorical", 256),  # 65,536 8-bit images
        ((3, 1, 1), "categorical", 5),  # one colour pixel: the channels condition on each other
    ],
)
def test_probabilities_sum_to_one(shape, likelihood, levels):
    model = randomise(tiny(shape, likelihood, grey_levels=levels), 0.3).double().eval()
    total = model.log_prob(all_images(shape, levels)).exp().sum().item()
    assert abs(total - 1.0) < 1e-5


def test_probabilities_sum_to_one_for_every_class():
    model = randomise(tiny((1, 2, 2), "bernoulli", num_classes=3), 0.3).double().eval()
    xs = all_images((1, 2, 2), 2)
    totals = [model.log_prob(xs, labels=torch.full((16,), k)).exp().sum().item() for k in range(3)]
    assert max(abs(t - 1.0) for t in totals) < 1e-5
    lp = [model.log_prob(xs, labels=torch.full((16,), k)) for k in range(3)]
    assert not torch.allclose(lp[0], lp[1])  # the class token conditions the distribution


def test_log_prob_is_the_sum_of_the_token_log_probabilities():
    model = randomise(tiny((3, 2, 2), "categorical", grey_levels=4)).double().eval()
    x = torch.randint(0, 4, (3, 3, 2, 2), generator=torch.Generator().manual_seed(0)).double() / 3
    logits = by_position(model, model(x))  # (B, T, 4)
    codes = model.sequence(x)  # (B, T)
    expected = torch.log_softmax(logits, -1).gather(2, codes[..., None]).sum((1, 2))
    torch.testing.assert_close(model.log_prob(x), expected)
    rgb = (x[0, :, 0, 0] * 3).round().long().tolist()
    assert codes[0, :3].tolist() == rgb  # the R, G, B tokens of pixel (0, 0) come first


@pytest.mark.parametrize("shape,likelihood", [((1, 3, 3), "bernoulli"), ((3, 2, 2), "categorical")])
def test_token_t_depends_on_every_token_before_it_and_on_none_after(shape, likelihood):
    """Changing token j leaves the parameters of positions <= j as they were (up to float64
    rounding: the attention kernel sums in blocks) and changes those of every later position
    (no blind spot)."""
    levels = 2 if likelihood == "bernoulli" else 4
    model = randomise(tiny(shape, likelihood, grey_levels=levels)).double().eval()
    x = torch.randint(0, levels, (1, *shape), generator=torch.Generator().manual_seed(1)).double() / (levels - 1)
    C, H, W = shape
    T = model.length
    batch = x.repeat(T + 1, 1, 1, 1)
    for j in range(T):  # image j + 1: token j (channel j % C of pixel j // C) takes another value
        c, i, w = j % C, j // (W * C), (j // C) % W
        batch[j + 1, c, i, w] = 1.0 - batch[j + 1, c, i, w]
    assert (model.sequence(batch[1:]) != model.sequence(x)).nonzero()[:, 1].tolist() == list(range(T))
    with torch.no_grad():
        p = by_position(model, model(batch))
    for j in range(T):
        leak = (p[j + 1, : j + 1] - p[0, : j + 1]).abs().max().item()
        assert leak < 1e-12, f"token {j} moves positions <= {j} by {leak}"  # float64 rounding at most
        changed = (p[j + 1, j + 1 :] - p[0, j + 1 :]).abs().amax(-1) > 1e-6
        blind = (~changed).nonzero().flatten().add(j + 1).tolist()
        assert changed.all(), f"positions after {j} that ignore it: {blind}"


# --------------------------------------------------------------------------- sampling


@pytest.mark.parametrize(
    "shape,likelihood,classes",
    [
        ((1, 6, 5), "bernoulli", 0),
        ((3, 3, 3), "categorical", 0),
        ((1, 4, 4), "bernoulli", 3),
    ],
)
def test_cached_sampling_equals_naive(shape, likelihood, classes):
    model = randomise(tiny(shape, likelihood, num_classes=classes))
    labels = torch.tensor([0, 1, 2, 0, 1]) if classes else None
    a = model.sample(5, labels=labels, generator=torch.Generator().manual_seed(7))
    b = model.sample(5, labels=labels, generator=torch.Generator().manual_seed(7), method="naive")
    assert torch.equal(a, b)
    assert a.shape == (5, *shape) and a.min() >= 0 and a.max() <= 1
    assert len(a.unique()) > 1 and not torch.equal(a[0], a[1])  # real draws, not a constant


def test_the_cached_sampler_runs_one_position_per_token():
    """The cache makes a token cost one position of work: T block calls of length 1 per
    image, where the naive path runs the whole sequence once per token."""
    model = tiny((1, 3, 4))
    seen = []
    model.blocks[0].register_forward_pre_hook(lambda module, args: seen.append(args[0].shape[1]))
    model.sample(2, generator=torch.Generator().manual_seed(0))
    assert seen == [1] * 12
    seen.clear()
    model.sample(2, generator=torch.Generator().manual_seed(0), method="naive")
    assert seen == [12] * 12
    with pytest.raises(ValueError, match="'cached' or 'naive'"):
        model.sample(2, method="fast")


def test_completion_keeps_the_given_pixels():
    model = randomise(tiny((1, 6, 6), "bernoulli"))
    x = (torch.rand(3, 1, 6, 6, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    mask = torch.zeros(6, 6)
    mask[:3] = 1  # the first rows given
    mask[4, 2] = 1  # and any other pixel
    a = model.complete(x, mask, generator=torch.Generator().manual_seed(1))
    b = model.complete(x, mask, generator=torch.Generator().manual_seed(1), method="naive")
    assert torch.equal(a, b)
    assert torch.equal(a[:, :, mask.bool()], x[:, :, mask.bool()])
    assert not torch.equal(a, x)  # the rest is drawn
    grey = tiny((1, 2, 3), "categorical")
    y = torch.rand(2, 1, 2, 3, generator=torch.Generator().manual_seed(2))
    out = grey.complete(y, torch.tensor([[1, 1, 1], [0, 0, 0]]), generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(out[:, :, 0], torch.round(y[:, :, 0] * 255) / 255)  # kept, on the 8-bit grid


def test_labels_are_checked():
    model = tiny((1, 4, 4), num_classes=3)
    with pytest.raises(ValueError, match="0..2"):
        model.sample(2, labels=torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="class-conditional"):
        model.sample(2)
    with pytest.raises(ValueError, match="unconditional"):
        tiny((1, 4, 4)).log_prob(torch.zeros(2, 1, 4, 4), labels=torch.tensor([0, 1]))


# --------------------------------------------------------------------------- training


class Patterns:
    """16 binary 4x4 images: four stripe patterns, four times each (uint8, 0 or 255)."""

    base = torch.zeros(4, 1, 4, 4, dtype=torch.uint8)
    base[0, :, :2] = base[1, :, :, :2] = base[2, :, ::2] = base[3, :, :, ::2] = 255
    images = base.repeat(4, 1, 1, 1)
    labels = None


def test_a_short_run_lowers_the_nll(tmp_path):
    """40 steps of the registry's training settings (a shorter warm-up, a higher rate) on 16 images."""
    model = tiny((1, 4, 4), d_model=32)
    x = Patterns.images.float() / 255
    before = -model.log_prob(x).mean().item()
    quiet = dict(log_every=0, sample_every=0, checkpoint_every=0, progress=False, device="cpu")
    cfg = registry.train_config("transformer", steps=40, batch_size=8, lr=3e-3, warmup_steps=5, **quiet)
    Trainer(model, Patterns(), cfg, tmp_path).fit(40)
    after = -model.eval().log_prob(x).mean().item()
    assert before > 10.0  # about 16 log 2 = 11.1 nats: nearly uniform at initialisation
    assert after < 0.5 * before, (before, after)


# --------------------------------------------------------------------------- configuration


def test_the_registry_entry_trains_binarised_mnist():
    cfg = registry.build_run_config("transformer", data="mnist")
    model = registry.build("transformer", cfg.model)
    assert (model.likelihood, model.input_mode, model.vocab, model.length) == ("bernoulli", "binary", 2, 784)
    assert (cfg.model.d_model, cfg.model.num_blocks, cfg.model.num_heads, cfg.model.dropout) == (64, 4, 4, 0.0)
    assert cfg.train.betas == (0.9, 0.95) and cfg.train.grad_clip == 1.0
    colour = tiny((3, 2, 2))
    assert (colour.likelihood, colour.input_mode, colour.vocab) == ("categorical", "unit", 256)


@pytest.mark.parametrize(
    "bad,message",
    [
        (dict(d_model=0), "model.d_model must be >= 1, got 0"),
        (dict(num_blocks=0), "model.num_blocks must be >= 1, got 0"),
        (dict(num_heads=0), "model.num_heads must be >= 1, got 0"),
        (dict(d_model=10, num_heads=4), r"model.d_model \(10\) must be a multiple of model.num_heads \(4\)"),
        (dict(dropout=1.0), r"model.dropout must be in \[0, 1\)"),
        (dict(likelihood="mixture"), "unknown model.likelihood 'mixture'; choose one of: auto, bernoulli, categorical"),
        (dict(grey_levels=1), "model.grey_levels must be >= 2"),
        (dict(image_shape=(2,)), r"transformer needs images \(C, H, W\)"),
    ],
)
def test_bad_config_names_the_field(bad, message):
    with pytest.raises(ConfigError, match=message):
        TransformerConfig(**bad)
