"""Latent-space tools: interpolation paths, grids and GIFs."""

import math

import pytest
import torch
from PIL import Image
from torch import nn

from genlab.config import ModelConfig
from genlab.models.base import GenerativeModel
from genlab.models.vae import VAE, VAEConfig
from genlab.viz import latent as L


def tiny_vae(shape=(1, 8, 8), latent_dim=3):
    torch.manual_seed(0)
    return VAE(VAEConfig(image_shape=shape, latent_dim=latent_dim, channels=(4, 8), hidden_dim=16)).eval()


class DecodeOnly(GenerativeModel):
    """A generator-like model: decode(z) only, no encoder (e.g. a GAN)."""

    def __init__(self, d=4, shape=(3, 5, 6)):
        super().__init__(ModelConfig(image_shape=shape))
        self.d = d
        self.lin = nn.Linear(d, math.prod(shape))

    @property
    def latent_shape(self):
        return (self.d,)

    def decode(self, z, *, labels=None, generator=None):
        return torch.sigmoid(self.lin(z)).view(-1, *self.config.image_shape)


def test_lerp_is_linear():
    z0, z1 = torch.randn(5), torch.randn(5)
    assert torch.allclose(L.lerp(z0, z1, 0.0), z0)
    assert torch.allclose(L.lerp(z0, z1, 1.0), z1)
    a, b = L.lerp(z0, z1, 0.2), L.lerp(z0, z1, 0.6)
    assert torch.allclose(L.lerp(z0, z1, 0.4), (a + b) / 2, atol=1e-6)


def test_slerp_endpoints_and_norm():
    g = torch.Generator().manual_seed(0)
    z0, z1 = torch.randn(4, 16, generator=g), torch.randn(4, 16, generator=g)
    assert torch.allclose(L.slerp(z0, z1, 0.0), z0, atol=1e-5)
    assert torch.allclose(L.slerp(z0, z1, 1.0), z1, atol=1e-5)
    u0, u1 = z0 / z0.norm(dim=-1, keepdim=True), z1 / z1.norm(dim=-1, keepdim=True)
    for t in torch.linspace(0, 1, 7):
        assert torch.allclose(L.slerp(u0, u1, t).norm(dim=-1), torch.ones(4), atol=1e-5)
    # the angle moves uniformly: half-way point is equally far from both ends
    mid = L.slerp(u0, u1, 0.5)
    assert torch.allclose((mid * u0).sum(-1), (mid * u1).sum(-1), atol=1e-5)


def test_slerp_falls_back_to_lerp_for_parallel_vectors():
    z0 = torch.tensor([1.0, 2.0, 3.0])
    z1 = 2 * z0
    out = L.slerp(z0, z1, 0.3)
    assert torch.isfinite(out).all() and torch.allclose(out, L.lerp(z0, z1, 0.3), atol=1e-5)
    assert torch.isfinite(L.slerp(z0, z0.clone(), 0.5)).all()


def test_interpolation_frames_from_images():
    m = tiny_vae()
    xa, xb = m.prepare(torch.rand(2, 1, 8, 8))
    frames = L.interpolation_frames(m, xa, xb, steps=5, method="lerp")
    assert len(frames) == 5 and all(f.shape == (1, 8, 8) for f in frames)
    with torch.inference_mode():
        mu = m.encode(torch.stack([xa, xb]))
        ends = m.decode(mu)
    assert torch.allclose(frames[0], ends[0], atol=1e-5) and torch.allclose(frames[-1], ends[1], atol=1e-5)
    batch = L.interpolation_frames(m, m.prepare(torch.rand(3, 1, 8, 8)), m.prepare(torch.rand(3, 1, 8, 8)), steps=4)
    assert len(batch) == 4 and batch[0].shape == (3, 1, 8, 8)
    with pytest.raises(ValueError, match="slerp"):
        L.interpolation_frames(m, xa, xb, method="cubic")


def test_interpolation_of_an_iaf_vae_ends_at_the_flow_codes():
    torch.manual_seed(0)
    m = VAE(
        VAEConfig(
            image_shape=(1, 8, 8),
            latent_dim=3,
            channels=(4, 8),
            hidden_dim=16,
            posterior="iaf",
            iaf_steps=2,
            iaf_hidden_dim=8,
            iaf_context=4,
        )
    ).eval()
    with torch.no_grad():  # move the flow away from (near) the identity so mu and its image differ
        for p in m.flow.parameters():
            p.add_(0.5 * torch.randn_like(p))
    x = m.prepare(torch.rand(2, 1, 8, 8), generator=torch.Generator().manual_seed(1))
    frames = L.interpolation_frames(m, x[0], x[1], steps=3, method="lerp")
    with torch.inference_mode():
        ends = m.decode(m.encode(x))
        mu_ends = m.decode(m.posterior(x)[0])
    assert torch.allclose(frames[0], ends[0], atol=1e-5) and torch.allclose(frames[-1], ends[1], atol=1e-5)
    assert not torch.allclose(ends, mu_ends, atol=1e-3)


def test_decode_only_model_loop_and_gif(tmp_path):
    m = DecodeOnly()
    z = torch.randn(3, 4)
    frames = L.loop_frames(m, z, steps_per_leg=4)
    assert len(frames) == 12 and frames[0].shape == (3, 5, 6)
    assert torch.allclose(frames[4], m.decode(z[1:2])[0], atol=1e-5)
    path = L.save_interpolation_gif(frames, tmp_path / "loop.gif", scale=2)
    with Image.open(path) as im:
        assert im.n_frames == 12 and im.size == (12, 10)
    fwd = L.z_interpolation_frames(m, z[0], z[1], steps=6)
    path = L.save_interpolation_gif(fwd, tmp_path / "ab.gif", boomerang=True)
    with Image.open(path) as im:
        assert im.n_frames == 10  # 6 forward, 4 back (ends not repeated)
    with pytest.raises(NotImplementedError, match="encode"):
        L.interpolation_frames(m, torch.rand(3, 5, 6), torch.rand(3, 5, 6))


def test_manifold_grid_shape_and_quantiles():
    m = tiny_vae(shape=(1, 28, 20), latent_dim=2)
    grid = L.manifold_grid(m, n=6)
    assert grid.shape == (1, 6 * 28, 6 * 20)
    assert grid.min() >= 0 and grid.max() <= 1
    # the top-left cell decodes z = (Phi^-1(0.05), Phi^-1(0.05))
    q = torch.distributions.Normal(0.0, 1.0).icdf(torch.tensor(0.05))
    with torch.inference_mode():
        cell = m.decode(torch.tensor([[q, q]]))[0]
    assert torch.allclose(grid[:, :28, :20], cell, atol=1e-5)
    rgb = L.manifold_grid(DecodeOnly(d=5), n=3, dims=(1, 4), span=2.0, padding=1)
    assert rgb.shape == (3, 3 * 6 + 1, 3 * 7 + 1)
    with pytest.raises(ValueError):
        L.manifold_grid(m, dims=(0, 0))


def test_traversal_grid_shape():
    m = tiny_vae(latent_dim=4)
    x = m.prepare(torch.rand(1, 8, 8))
    grid = L.traversal_grid(m, x, dims=[0, 2], span=2, steps=5, padding=0)
    assert grid.shape == (1, 2 * 8, 5 * 8)
    assert L.traversal_grid(m, x, dims=None, steps=3, padding=0).shape == (1, 4 * 8, 3 * 8)
    with pytest.raises(ValueError):
        L.traversal_grid(m, x, dims=[7])
