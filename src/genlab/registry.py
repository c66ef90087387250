"""The model registry: one literal dict from a model's name to its config and class.

Add a model by adding one line here; nothing registers itself at import time.
"""

from __future__ import annotations

from .errors import ConfigError
from .models.cyclegan import CycleGAN, CycleGANConfig
from .models.dcgan import DCGAN, DCGANConfig, LSGANConfig
from .models.ali import ALI, ALIConfig
from .models.gan import GAN, GANConfig
from .models.progan import ProGAN, ProGANConfig
from .models.vae import VAE, VAEConfig
from .models.pixelcnn import PixelCNN, PixelCNNConfig
from .models.gated_pixelcnn import GatedPixelCNN, GatedPixelCNNConfig
from .models.wavenet import WaveNet, WaveNetConfig
from .models.pixelvae import PixelVAE, PixelVAEConfig
from .models.glow import Glow, GlowConfig
from .models.vqvae import VQVAE, VQVAEConfig

MODELS = {
    "vae": (VAEConfig, VAE),
    "pixelcnn": (PixelCNNConfig, PixelCNN),
    "gated-pixelcnn": (GatedPixelCNNConfig, GatedPixelCNN),
    "wavenet": (WaveNetConfig, WaveNet),
    "gan": (GANConfig, GAN),
    "dcgan": (DCGANConfig, DCGAN),
    "lsgan": (LSGANConfig, DCGAN),
    "ali": (ALIConfig, ALI),
    "cyclegan": (CycleGANConfig, CycleGAN),
    "progan": (ProGANConfig, ProGAN),
    "pixelvae": (PixelVAEConfig, PixelVAE),
    "glow": (GlowConfig, Glow),
    "vqvae": (VQVAEConfig, VQVAE),
}


def get(name: str):
    """(ConfigClass, ModelClass) for ``name``, or a clear error listing the choices."""
    try:
        return MODELS[name]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}; available models: {', '.join(sorted(MODELS))}") from None


def name_of(model) -> str:
    for name, (config_cls, cls) in MODELS.items():
        if type(model) is cls and type(model.config) is config_cls:
            return name
    raise ConfigError(f"{type(model).__name__} is not in the genlab registry")


def build(name: str, config=None, **fields):
    """Build a registered model from its config (defaults when None) plus field overrides."""
    config_cls, model_cls = get(name)
    if config is None:
        config = config_cls(**fields)
    return model_cls(config)
