"""One contract over every registered model: tiny build, finite loss, backward,
sample shape and range, save/load round trip, seed determinism, and the rule
that models never step optimisers themselves.

A new registry entry fails here until it has a TINY config below.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

import genlab
from genlab import registry
from genlab.models.base import GenerativeModel, TrainStep

#: The smallest sensible config of each model, and the shape of its data.
TINY = {
    "vae": dict(image_shape=(1, 8, 8), latent_dim=2, channels=(4, 8), hidden_dim=16),
    "pixelcnn": dict(image_shape=(1, 5, 5), hidden_channels=8, num_blocks=1, output_channels=8),
    "gated-pixelcnn": dict(image_shape=(3, 4, 4), hidden_channels=6, num_layers=2, output_channels=6, mixtures=2),
    "wavenet": dict(image_shape=(1, 1, 24), residual_channels=6, skip_channels=6, dilations=(1, 2), stacks=1),
    "gan": dict(image_shape=(1, 8, 8), latent_dim=4, hidden=16, depth=1),
    "dcgan": dict(image_shape=(1, 16, 16), latent_dim=4, channels=8),
    "lsgan": dict(image_shape=(3, 16, 16), latent_dim=4, channels=8),
    "ali": dict(image_shape=(1, 16, 16), latent_dim=4, channels=8, hidden=16),
    "cyclegan": dict(image_shape=(2, 8, 8), g_channels=4, g_downsamplings=1, g_blocks=1, d_channels=4, d_downsamplings=1, exemplars=4),
    "progan": dict(image_shape=(1, 16, 16), latent_dim=4, channels=8, min_channels=4, stable_steps=1, fade_steps=1),
    "pixelvae": dict(image_shape=(1, 6, 6), latent_levels=2, latent_dim=2, z1_channels=2, channels=(4, 8), hidden_dim=8, pixel_channels=4, pixel_layers=1, input_kernel=3),
    "glow": dict(image_shape=(1, 4, 4), num_scales=2, steps_per_scale=2, hidden_channels=8),
    "vqvae": dict(image_shape=(1, 8, 8), hidden_channels=8, residual_blocks=1, num_codes=4, code_dim=3, prior_start=0, freeze_autoencoder=False, prior_channels=8, prior_blocks=1),
}


def test_every_registered_model_has_a_tiny_config():
    assert set(TINY) == set(registry.MODELS), "add a TINY config for each new registry entry"


def build(name: str, **extra) -> GenerativeModel:
    config_cls, model_cls = registry.get(name)
    return model_cls(config_cls(**{**TINY[name], **extra}))


def batch_for(model: GenerativeModel, n: int = 4, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    x01 = torch.randint(0, 256, (n, *model.config.image_shape), generator=g).float() / 255
    y = torch.arange(n) % model.config.num_classes if model.config.num_classes else None
    return {"x": model.prepare(x01, generator=g), "y": y}


@pytest.fixture(params=sorted(TINY))
def name(request):
    return request.param


def test_train_steps_give_finite_losses_and_gradients_to_their_modules(name):
    torch.manual_seed(0)
    model = build(name).train()
    steps = model.train_steps()
    assert steps and all(isinstance(s, TrainStep) for s in steps)
    for step in steps:
        model.zero_grad(set_to_none=True)
        out = step.loss(batch_for(model))
        assert out["loss"].dim() == 0 and torch.isfinite(out["loss"]), (name, step.name)
        out["loss"].backward()
        grads = [p.grad for p in step.parameters()]
        assert any(g is not None and g.abs().sum() > 0 for g in grads), f"{name}/{step.name} trains nothing"


def test_sample_shape_range_and_seed_determinism(name):
    torch.manual_seed(0)
    model = build(name).eval()
    a = model.sample(3, generator=torch.Generator().manual_seed(1))
    b = model.sample(3, generator=torch.Generator().manual_seed(1))
    assert a.shape == (3, *model.config.image_shape)
    assert a.min() >= 0 and a.max() <= 1
    assert torch.equal(a, b)


def test_save_load_round_trip(name, tmp_path):
    torch.manual_seed(0)
    model = build(name).eval()
    model.save(tmp_path)
    loaded = genlab.load(tmp_path)
    assert type(loaded) is type(model) and loaded.config == model.config
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k]), k
    g1, g2 = torch.Generator().manual_seed(2), torch.Generator().manual_seed(2)
    assert torch.equal(model.sample(2, generator=g1), loaded.sample(2, generator=g2))


def test_log_prob_is_finite_nats_per_example(name):
    model = build(name).eval()
    if not hasattr(model, "log_prob"):
        pytest.skip(f"{name} has no likelihood")
    lp = model.log_prob(batch_for(model)["x"])
    assert lp.shape == (4,) and torch.isfinite(lp).all() and (lp <= 1e-4).all()


def test_wrong_image_shape_is_a_clear_error(name):
    model = build(name).eval()
    c, h, w = model.config.image_shape
    bad = torch.zeros(2, c, h + 1, w)
    fn = getattr(model, "log_prob", None) or getattr(model, "discriminate")
    with pytest.raises(ValueError, match="shape"):
        fn(bad)


def test_models_never_step_optimisers(name, monkeypatch):
    """The Trainer alone calls backward() and step(): a model's loss only computes."""
    model = build(name).train()
    calls = []
    monkeypatch.setattr(torch.Tensor, "backward", lambda *a, **k: calls.append("backward"))
    monkeypatch.setattr(torch.optim.Optimizer, "step", lambda *a, **k: calls.append("step"))
    for step in model.train_steps():
        step.loss(batch_for(model))
    assert calls == []


def test_config_json_round_trip(name):
    from genlab.config import from_dict, to_dict

    model = build(name)
    again = from_dict(type(model.config), to_dict(model.config))
    assert again == model.config and dataclasses.is_dataclass(again)
