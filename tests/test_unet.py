"""The shared U-Net (genlab.nn.unet): shapes on odd sizes, the time embedding, and
classifier-free guidance's arithmetic and label dropout."""

from __future__ import annotations

import math

import pytest
import torch

from genlab.nn.unet import UNet, drop_labels, guided, timestep_embedding


def _perturbed(net: UNet, seed: int = 0) -> UNet:
    """The output conv starts at zero; give it random weights so outputs depend on the inputs."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        net.conv_out.weight.copy_(0.1 * torch.randn(net.conv_out.weight.shape, generator=g))
    return net


@pytest.mark.parametrize("size", [(28, 28), (7, 5), (6, 6)])
def test_output_shape_on_any_size(size):
    net = _perturbed(
        UNet(
            2, 4, channels=8, channel_mult=(1, 2, 2), attention_resolutions=(min(size) // 2,), image_size=size, groups=4
        )
    )
    x = torch.randn(3, 2, *size)
    out = net(x, torch.tensor([0.0, 5.0, 999.0]))
    assert out.shape == (3, 4, *size) and torch.isfinite(out).all()


def test_network_starts_as_the_zero_function():
    net = UNet(1, 1, channels=8, channel_mult=(1, 2), attention_resolutions=(), image_size=(8, 8), groups=4)
    assert torch.equal(net(torch.randn(2, 1, 8, 8), torch.tensor([1.0, 2.0])), torch.zeros(2, 1, 8, 8))


def test_timestep_embedding_is_cos_and_sin_of_geometric_frequencies():
    t = torch.tensor([0.0, 3.0, 250.0])
    emb = timestep_embedding(t, 8)
    freqs = [10000 ** (-k / 4) for k in range(4)]
    want = torch.tensor([[math.cos(v * f) for f in freqs] + [math.sin(v * f) for f in freqs] for v in t.tolist()])
    assert torch.allclose(emb, want, atol=1e-5)
    assert timestep_embedding(t, 7).shape == (3, 7)


def test_time_and_labels_change_the_output():
    net = _perturbed(
        UNet(
            1, 1, channels=8, channel_mult=(1, 2), attention_resolutions=(), image_size=(8, 8), groups=4, num_classes=3
        )
    )
    x = torch.randn(2, 1, 8, 8)
    a = net(x, torch.tensor([10.0, 10.0]), torch.tensor([0, 0]))
    assert not torch.allclose(a, net(x, torch.tensor([500.0, 500.0]), torch.tensor([0, 0])))
    assert not torch.allclose(a, net(x, torch.tensor([10.0, 10.0]), torch.tensor([1, 1])))
    # labels=None is the null class (index num_classes)
    assert torch.equal(net(x, torch.tensor([10.0, 10.0])), net(x, torch.tensor([10.0, 10.0]), torch.tensor([3, 3])))


def test_guidance_mixes_conditional_and_unconditional_outputs():
    net = _perturbed(
        UNet(
            1, 2, channels=8, channel_mult=(1, 2), attention_resolutions=(), image_size=(8, 8), groups=4, num_classes=3
        )
    )
    x, t, y = torch.randn(2, 1, 8, 8), torch.tensor([3.0, 7.0]), torch.tensor([0, 2])
    cond, uncond = net(x, t, y), net(x, t, torch.tensor([3, 3]))
    assert torch.allclose(guided(net, x, t, y, 1.0), cond)
    assert torch.allclose(guided(net, x, t, y, 0.0), uncond, atol=1e-6)
    assert torch.allclose(guided(net, x, t, y, 3.0), uncond + 3 * (cond - uncond), atol=1e-5)
    partial = guided(net, x, t, y, 3.0, channels=1)  # only the first channel is guided
    assert torch.allclose(partial[:, :1], (uncond + 3 * (cond - uncond))[:, :1], atol=1e-5)
    assert torch.allclose(partial[:, 1:], cond[:, 1:], atol=1e-6)


def test_label_dropout_rate():
    labels = torch.zeros(20000, dtype=torch.long)
    dropped = drop_labels(labels, 10, 0.25, generator=torch.Generator().manual_seed(0))
    share = (dropped == 10).float().mean().item()
    assert abs(share - 0.25) < 0.015 and set(dropped.unique().tolist()) == {0, 10}
    assert drop_labels(None, 10, 0.5) is None and torch.equal(drop_labels(labels, 10, 0.0), labels)
