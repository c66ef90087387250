"""PixelCNN and Gated PixelCNN: causality by gradient, exact normalisation,
sampling against log_prob, cached == naive, completion, conditioning, save/load."""

import itertools

import numpy as np
import pytest
import torch
from scipy.stats import chisquare

import genlab
from genlab.errors import ConfigError
from genlab.models.gated_pixelcnn import GatedPixelCNN, GatedPixelCNNConfig
from genlab.models.pixelcnn import PixelCNN, PixelCNNConfig
from genlab.nn.masked import pixelcnn_conv

LIKELIHOODS = ["bernoulli", "categorical", "logistic-mixture"]


def tiny(kind: str, shape=(1, 4, 4), likelihood="auto", **kw):
    width = kw.pop("width", 12)
    common = dict(
        image_shape=shape,
        likelihood=likelihood,
        hidden_channels=width,
        output_channels=width,
        grey_levels=kw.pop("grey_levels", 4),
        mixtures=2,
    )
    if kind == "pixelcnn":
        return PixelCNN(PixelCNNConfig(num_blocks=2, input_kernel=3, **common, **kw))
    return GatedPixelCNN(GatedPixelCNNConfig(num_blocks=3, input_kernel=3, **common, **kw))


def dependencies(net, x: torch.Tensor, params_per_channel: int) -> dict:
    """For each output (pixel, channel) in raster order: the set of input indices
    (same ordering) whose gradient is non-zero. One backward pass: copy b of the
    batch carries the gradient of output b only."""
    _, c, h, w = x.shape
    n = c * h * w
    xs = x.detach().expand(n, c, h, w).clone().requires_grad_(True)
    out = net(xs)
    picked = 0
    for b, (i, j, k) in enumerate(itertools.product(range(h), range(w), range(c))):
        picked = picked + out[b, k * params_per_channel : (k + 1) * params_per_channel, i, j].sum()
    (g,) = torch.autograd.grad(picked, xs)
    order = g.permute(0, 2, 3, 1).reshape(n, -1)  # (h, w, c) flattened = raster order with channels inside
    return {b: set(torch.nonzero(order[b]).flatten().tolist()) for b in range(n)}


@pytest.mark.parametrize("kind", ["pixelcnn", "gated-pixelcnn"])
@pytest.mark.parametrize("shape", [(1, 4, 4), (3, 3, 3)])
def test_causal_by_gradient(kind, shape):
    torch.manual_seed(0)
    model = tiny(kind, shape, "categorical")
    x = torch.rand(1, *shape)
    deps = dependencies(model, x, model.head.params_per_channel)
    for i, d in deps.items():
        assert all(k < i for k in d), f"output {i} depends on inputs {sorted(k for k in d if k >= i)}"


@pytest.mark.parametrize("shape", [(1, 4, 4), (3, 3, 3)])
def test_gated_pixelcnn_has_no_blind_spot(shape):
    torch.manual_seed(0)
    # Wide enough that no path is switched off by chance by dead ReLUs.
    model = tiny("gated-pixelcnn", shape, "categorical", width=48)
    x = torch.rand(1, *shape)
    for i, d in dependencies(model, x, model.head.params_per_channel).items():
        assert d == set(range(i)), f"output {i} misses inputs {sorted(set(range(i)) - d)}"


def test_pixelcnn_has_the_blind_spot():
    # The plain PixelCNN cannot see the pixel up-right of the one above-right
    # chain: (0, 3) is invisible from (1, 0) with 3x3 kernels.
    torch.manual_seed(0)
    model = tiny("pixelcnn", (1, 4, 4), "categorical")
    x = torch.rand(1, 1, 4, 4)
    deps = dependencies(model, x, model.head.params_per_channel)
    assert 3 not in deps[4]


@pytest.mark.parametrize("mask_type", ["A", "B"])
@pytest.mark.parametrize("channels", [1, 3])
def test_masked_conv_layer_causality(mask_type, channels):
    torch.manual_seed(0)
    conv = pixelcnn_conv(channels, channels, 5, mask_type, channels, first=True)
    x = torch.rand(1, channels, 4, 4)
    deps = dependencies(conv, x, 1)
    for i, d in deps.items():
        allowed = set(range(i)) if mask_type == "A" else set(range(i + 1))
        assert d <= allowed
        assert (i in d) == (mask_type == "B")


def all_images(shape, levels):
    grid = torch.arange(levels, dtype=torch.float64) / (levels - 1)
    n = int(np.prod(shape))
    return torch.cartesian_prod(*[grid] * n).reshape(-1, *shape) if n > 1 else grid.reshape(-1, *shape)


@pytest.mark.parametrize("kind", ["pixelcnn", "gated-pixelcnn"])
@pytest.mark.parametrize(
    "shape,likelihood,levels",
    [
        ((1, 2, 2), "bernoulli", 2),
        ((1, 3, 3), "bernoulli", 2),
        ((1, 2, 2), "categorical", 3),
        ((3, 1, 2), "categorical", 2),
        ((3, 1, 2), "logistic-mixture", 3),
        ((1, 2, 2), "logistic-mixture", 4),
    ],
)
def test_normalizes_exactly(kind, shape, likelihood, levels):
    torch.manual_seed(0)
    model = tiny(kind, shape, likelihood, grey_levels=levels).double()
    xs = all_images(shape, levels)
    total = model.log_prob(xs).exp().sum().item()
    assert abs(total - 1.0) < 1e-5


@pytest.mark.parametrize("kind,likelihood", [("pixelcnn", "bernoulli"), ("gated-pixelcnn", "logistic-mixture")])
def test_sampling_matches_log_prob(kind, likelihood):
    torch.manual_seed(0)
    levels = 2 if likelihood == "bernoulli" else 3
    model = tiny(kind, (1, 2, 2), likelihood, grey_levels=levels)
    with torch.no_grad():  # sharpen the distribution a little so that it is far from uniform
        model.out2.weight.mul_(4)
    xs = all_images((1, 2, 2), levels).float()
    p = model.log_prob(xs).exp().double().detach()
    n = 4000
    samples = model.sample(n, generator=torch.Generator().manual_seed(123))
    codes = torch.round(samples * (levels - 1)).long().reshape(n, -1)
    index = (codes * (levels ** torch.arange(3, -1, -1))).sum(1)  # same order as all_images
    counts = torch.bincount(index, minlength=levels**4).double()
    assert chisquare(counts.numpy(), (p * n / p.sum()).numpy()).pvalue > 1e-3


@pytest.mark.parametrize("kind", ["pixelcnn", "gated-pixelcnn"])
@pytest.mark.parametrize(
    "shape,likelihood", [((1, 6, 5), "bernoulli"), ((3, 4, 4), "logistic-mixture"), ((1, 4, 4), "categorical")]
)
def test_cached_sampling_equals_naive(kind, shape, likelihood):
    torch.manual_seed(0)
    model = tiny(kind, shape, likelihood, grey_levels=256 if likelihood != "bernoulli" else 4)
    a = model.sample(5, generator=torch.Generator().manual_seed(7), method="cached")
    b = model.sample(5, generator=torch.Generator().manual_seed(7), method="naive")
    assert torch.equal(a, b)
    assert a.shape == (5, *shape) and a.min() >= 0 and a.max() <= 1


@pytest.mark.parametrize("kind", ["pixelcnn", "gated-pixelcnn"])
def test_completion_keeps_observed_pixels(kind):
    torch.manual_seed(0)
    model = tiny(kind, (1, 6, 6), "bernoulli")
    x = (torch.rand(3, 1, 6, 6) > 0.5).float()
    mask = torch.zeros(6, 6)
    mask[:3] = 1
    mask[4, 2] = 1  # any mask, not only top rows
    for method in ("cached", "naive"):
        out = model.complete(x, mask, generator=torch.Generator().manual_seed(1), method=method)
        assert torch.equal(out[:, :, mask.bool()], x[:, :, mask.bool()])
    a = model.complete(x, mask, generator=torch.Generator().manual_seed(1))
    b = model.complete(x, mask, generator=torch.Generator().manual_seed(1), method="naive")
    assert torch.equal(a, b)


def test_class_conditioning():
    torch.manual_seed(0)
    model = tiny("gated-pixelcnn", (1, 4, 4), "bernoulli", num_classes=3)
    x = (torch.rand(2, 1, 4, 4) > 0.5).float()
    assert not torch.allclose(
        model.log_prob(x, labels=torch.tensor([0, 0])), model.log_prob(x, labels=torch.tensor([1, 1]))
    )
    a = model.sample(4, generator=torch.Generator().manual_seed(0), labels=torch.tensor([0, 1, 2, 0]))
    b = model.sample(4, generator=torch.Generator().manual_seed(0), labels=torch.tensor([0, 1, 2, 0]), method="naive")
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="0..2"):
        model.sample(2, labels=torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="class-conditional"):
        model.sample(2)
    with pytest.raises(ValueError, match="unconditional"):
        tiny("gated-pixelcnn").sample(2, labels=torch.tensor([0, 1]))


@pytest.mark.parametrize("kind", ["pixelcnn", "gated-pixelcnn"])
def test_bad_images_are_rejected(kind):
    model = tiny(kind, (1, 4, 4))
    with pytest.raises(ValueError, match=r"expected images of shape \(N, 1, 4, 4\)"):
        model.log_prob(torch.zeros(2, 3, 4, 4))
    with pytest.raises(ValueError, match="expected images"):
        model.complete(torch.zeros(2, 1, 5, 4), torch.ones(5, 4))


@pytest.mark.parametrize("kind", ["pixelcnn", "gated-pixelcnn"])
def test_train_step_and_save_load_round_trip(kind, tmp_path):
    torch.manual_seed(0)
    model = tiny(kind, (3, 4, 4), "logistic-mixture", grey_levels=256, num_classes=2 if kind == "gated-pixelcnn" else 0)
    assert model.input_mode == "unit"
    x = torch.randint(0, 256, (4, 3, 4, 4)).float() / 255
    y = torch.tensor([0, 1, 0, 1]) if kind == "gated-pixelcnn" else None
    (step,) = model.train_steps()
    out = step.loss({"x": x, "y": y})
    out["loss"].backward()
    assert torch.isfinite(out["loss"]) and set(out) >= {"loss", "nll", "bpd"}
    model.save(tmp_path)
    loaded = genlab.load(tmp_path)
    assert type(loaded) is type(model)
    assert torch.allclose(loaded.log_prob(x, labels=y), model.log_prob(x, labels=y))


def test_defaults_follow_the_data():
    assert tiny("pixelcnn", (1, 4, 4)).input_mode == "binary"
    assert tiny("pixelcnn", (3, 4, 4)).likelihood == "logistic-mixture"
    with pytest.raises(ConfigError, match="unknown model.likelihood 'gaussian'; choose one of: auto, bernoulli"):
        tiny("pixelcnn", likelihood="gaussian")


@pytest.mark.parametrize("kernel", [3, 5, 7])
@pytest.mark.parametrize("mask_type,first", [("A", True), ("B", False)])
@pytest.mark.parametrize("channels", [1, 3])
def test_masked_conv_skips_the_all_zero_rows_exactly(kernel, mask_type, first, channels):
    """The whole-image pass convolves with the k//2 + 1 kernel rows that can be non-zero:
    outputs and gradients equal the full k x k convolution with the masked weight."""
    torch.manual_seed(0)
    width = channels if first else 2 * channels
    conv = pixelcnn_conv(width, 4 * channels, kernel, mask_type, channels, first=first)
    assert conv._rows == kernel // 2 + 1
    with torch.no_grad():
        conv.weight.normal_()  # the rows under the centre too: they must still be ignored
    x = torch.randn(2, width, 6, 5, requires_grad=True)
    out = conv(x)
    ref_w = conv.weight.detach().clone().requires_grad_(True)
    ref = torch.nn.functional.conv2d(torch.nn.functional.pad(x, (kernel // 2,) * 4), ref_w * conv.mask, conv.bias)
    torch.testing.assert_close(out, ref)
    g = torch.randn_like(out)
    gx, gw = torch.autograd.grad(out, (x, conv.weight), g)
    rx, rw = torch.autograd.grad(ref, (x, ref_w), g)
    torch.testing.assert_close(gx, rx)
    torch.testing.assert_close(gw, rw)
    assert not gw[:, :, kernel // 2 + 1 :].any()


def test_channels_last_changes_the_layout_not_the_likelihood(tmp_path):
    torch.manual_seed(0)
    a = tiny("pixelcnn", (1, 6, 6), "bernoulli", channels_last=True)
    b = tiny("pixelcnn", (1, 6, 6), "bernoulli", channels_last=False)
    b.load_state_dict(a.state_dict())
    assert a.input_conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert b.input_conv.weight.is_contiguous()
    x = (torch.rand(5, 1, 6, 6) < 0.4).float()
    torch.testing.assert_close(a.log_prob(x), b.log_prob(x))
    g = torch.Generator().manual_seed(3)
    s_a = a.sample(3, generator=g)
    s_b = b.sample(3, generator=torch.Generator().manual_seed(3))
    assert torch.equal(s_a, s_b)
    a.save(tmp_path)
    torch.testing.assert_close(genlab.load(tmp_path).log_prob(x), a.log_prob(x))
