"""TINY, the smallest sensible config of every registered model (a few thousand parameters,
data of a few dozen values), and ``build``, which makes a model from it. tests/test_contract.py
checks that every registry entry has one; other test modules use them for a quick model of each kind."""

from __future__ import annotations

from genlab import registry
from genlab.models.base import GenerativeModel

#: The smallest sensible config of each model, and the shape of its data.
TINY = {
    "vae": dict(image_shape=(1, 8, 8), latent_dim=2, channels=(4, 8), hidden_dim=16),
    "pixelcnn": dict(image_shape=(1, 5, 5), hidden_channels=8, num_blocks=1, output_channels=8),
    "gated-pixelcnn": dict(image_shape=(3, 4, 4), hidden_channels=6, num_blocks=2, output_channels=6, mixtures=2),
    "wavenet": dict(image_shape=(1, 1, 24), residual_channels=6, skip_channels=6, dilations=(1, 2), stacks=1),
    "gan": dict(image_shape=(1, 8, 8), latent_dim=4, hidden_dim=16, hidden_layers=1),
    "dcgan": dict(image_shape=(1, 16, 16), latent_dim=4, channels=8),
    "lsgan": dict(image_shape=(3, 16, 16), latent_dim=4, channels=8),
    "ali": dict(image_shape=(1, 16, 16), latent_dim=4, channels=8, hidden_dim=16),
    "cyclegan": dict(
        image_shape=(2, 8, 8), g_channels=4, g_downsamplings=1, g_blocks=1, d_channels=4, d_downsamplings=1, exemplars=4
    ),
    "progan": dict(image_shape=(1, 16, 16), latent_dim=4, channels=8, min_channels=4, stable_steps=1, fade_steps=1),
    "pixelvae": dict(
        image_shape=(1, 6, 6),
        latent_levels=2,
        latent_dim=2,
        z1_channels=2,
        channels=(4, 8),
        hidden_dim=8,
        pixel_channels=4,
        pixel_blocks=1,
        input_kernel=3,
    ),
    "ddpm": dict(
        image_shape=(1, 6, 6),
        channels=8,
        channel_mult=(1, 2),
        attention_resolutions=(3,),
        groups=4,
        timesteps=10,
        sample_steps=4,
    ),
    "flow-matching": dict(
        image_shape=(1, 6, 6),
        channels=8,
        channel_mult=(1, 2),
        attention_resolutions=(3,),
        groups=4,
        sample_steps=3,
        likelihood_steps=3,
    ),
    "glow": dict(image_shape=(1, 4, 4), num_scales=2, steps_per_scale=2, hidden_channels=8),
    "transformer": dict(image_shape=(1, 4, 4), d_model=8, num_blocks=1, num_heads=2),
    "vqvae": dict(
        image_shape=(1, 8, 8),
        hidden_channels=8,
        residual_blocks=1,
        num_codes=4,
        code_dim=3,
        prior_start=0,
        freeze_autoencoder=False,
        prior_channels=8,
        prior_blocks=1,
    ),
    # a fresh tiny VQ-VAE built in place (autoencoder=new:MODEL): the suite has no saved autoencoder to load
    "latent": dict(
        image_shape=(1, 8, 8),
        autoencoder="new:vqvae",
        autoencoder_config=dict(
            hidden_channels=8, residual_blocks=1, num_codes=4, code_dim=3, prior_channels=8, prior_blocks=1
        ),
        prior="pixelcnn",
        prior_config=dict(hidden_channels=8, num_blocks=1, output_channels=8, input_kernel=3),
    ),
}


def build(name: str, **extra) -> GenerativeModel:
    """Registry model ``name``, untrained, from its TINY config with the fields in ``extra`` over it."""
    config_cls, model_cls = registry.get(name)
    return model_cls(config_cls(**{**TINY[name], **extra}))
