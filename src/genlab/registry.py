"""The model registry: one literal dict from a model's name to its :class:`ModelEntry`.

An entry carries everything a run of the model starts from: its config and model
classes, the data it trains on when none is named, its training defaults (the
learning rate and betas its paper uses, ...) and its presets. :func:`build_run_config`
turns (model, data, preset, overrides) into a :class:`~genlab.config.RunConfig`; the
command line (``genlab train``) and the Python API (``genlab.train.train``) both call
it, so the same arguments give the same run.

Add a model by adding one entry here; nothing registers itself at import time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from .config import DEFAULT_DATA, DataConfig, RunConfig, TrainConfig, apply_overrides, parse_overrides, to_dict
from .errors import ConfigError
from .models.ali import ALI, ALIConfig
from .models.cyclegan import DEFAULT_DATA as CYCLEGAN_DATA
from .models.cyclegan import TRAIN_DEFAULTS as CYCLEGAN_TRAIN
from .models.cyclegan import CycleGAN, CycleGANConfig
from .models.dcgan import DCGAN, DCGANConfig, LSGANConfig
from .models.ddpm import DDPM, DDPMConfig
from .models.flow_matching import FlowMatching, FlowMatchingConfig
from .models.gan import GAN, POINT_PRESET, GANConfig
from .models.gan import TRAIN_DEFAULTS as GAN_TRAIN
from .models.gated_pixelcnn import GatedPixelCNN, GatedPixelCNNConfig
from .models.glow import Glow, GlowConfig
from .models.latent import TRAIN_DEFAULTS as LATENT_TRAIN
from .models.latent import LatentConfig, LatentModel
from .models.pixelcnn import PixelCNN, PixelCNNConfig
from .models.pixelvae import PixelVAE, PixelVAEConfig
from .models.progan import TRAIN_DEFAULTS as PROGAN_TRAIN
from .models.progan import ProGAN, ProGANConfig
from .models.transformer import TRAIN_DEFAULTS as TRANSFORMER_TRAIN
from .models.transformer import Transformer, TransformerConfig
from .models.vae import VAE, VAEConfig
from .models.vqvae import VQVAE, VQVAEConfig
from .models.wavenet import WaveNet, WaveNetConfig
from .presets import BUDGET, PAPER, VAE_QUICKSTART, Preset, Published  # noqa: F401  (Preset and Published are part of the registry's interface)


@dataclass(frozen=True)
class ModelEntry:
    """What the registry knows about a model (see the module docstring); every value of :data:`MODELS` is one.
    :func:`get` gives its ``(ConfigClass, ModelClass)`` pair."""

    config_class: type
    model_class: type
    default_data: str = DEFAULT_DATA
    train: Mapping[str, Any] = field(default_factory=dict)  # TrainConfig defaults of this model, by field
    presets: Mapping[str, Preset] = field(default_factory=dict)


_POINTS = Preset(
    POINT_PRESET,
    data=("ring8", "grid25"),
    source=(
        "benchmarks/gan_ring8.py: on ring8, seeds 0-2, minimax and non-saturating cover 8/8 modes with 0.89-0.93 "
        "high-quality samples (see the genlab.models.gan docstring)"
    ),
)

_FSDD = Preset(
    {
        "model.num_classes": 10,
        "model.residual_channels": 32,
        "model.skip_channels": 64,
        "model.dilations": (1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
        "model.stacks": 1,
        "model.train_crop": 1024,
        "train.batch_size": 16,
        "train.steps": 2000,
        "train.lr": 1e-3,
        "train.sample_every": 0,
        "train.checkpoint_every": 250,
    },
    data=("fsdd",),
    source=(
        "benchmarks/wavenet_fsdd.py: digit-conditional, receptive field 1,024 samples (128 ms at 8 kHz), 16 random "
        "1,024-sample windows per step; 1.2-5.0 s per step on 1 thread of a shared 2-core machine at load 17-22, "
        "where the image-sized defaults took 181 s per step; test NLL 5.47 bits/sample after 550 steps (18.6 min)"
    ),
)

#: CPU-budget presets: settings chosen by measurement for a short CPU run, not a paper's.
_PIXELCNN_CPU = Preset(
    {
        "data.name": "mnist",
        "model.image_shape": (1, 28, 28),
        "model.likelihood": "bernoulli",
        "model.channels_last": True,
        "train.batch_size": 64,
        "train.lr": 2e-3,
        "train.warmup_steps": 100,
        "train.lr_schedule": "cosine",
        "train.steps": 4_000,
        "train.schedule_steps": 4_000,
        "train.ema_decay": 0.999,
    },
    source=(
        "benchmarks/pixelcnn_mnist.py --preset mnist-cpu: the default network for 30 CPU-minutes of one thread "
        "(about 4,000 steps of 64 at 150 images/s; the benchmark fits the schedule to its budget during the run)"
    ),
)
_ALICE = Preset(
    {"model.cycle_weight": 1.0},
    source=(
        "Li et al. 2017 (ALICE), explicit cycle consistency: ALI/BiGAN plus an l2 reconstruction term x -> E -> G -> x "
        "in the (G, E) loss (model.cycle_weight); the weight was chosen for benchmarks/ali_mnist.py"
    ),
)

MODELS: dict[str, ModelEntry] = {
    "vae": ModelEntry(VAEConfig, VAE, presets={"quickstart": VAE_QUICKSTART, **PAPER["vae"], **BUDGET["vae"]}),
    "pixelcnn": ModelEntry(PixelCNNConfig, PixelCNN, presets={**PAPER["pixelcnn"], "mnist-cpu": _PIXELCNN_CPU}),
    "gated-pixelcnn": ModelEntry(GatedPixelCNNConfig, GatedPixelCNN, presets=PAPER["gated-pixelcnn"]),
    "transformer": ModelEntry(TransformerConfig, Transformer, train=TRANSFORMER_TRAIN),
    "wavenet": ModelEntry(WaveNetConfig, WaveNet, default_data="sines", presets={"fsdd": _FSDD}),
    "gan": ModelEntry(GANConfig, GAN, train=GAN_TRAIN, presets={"points": _POINTS}),
    "dcgan": ModelEntry(DCGANConfig, DCGAN, train=GAN_TRAIN, presets=PAPER["dcgan"]),
    "lsgan": ModelEntry(LSGANConfig, DCGAN, train=GAN_TRAIN, presets=PAPER["lsgan"]),
    "ali": ModelEntry(ALIConfig, ALI, train=GAN_TRAIN, presets={**PAPER["ali"], "alice": _ALICE}),
    "cyclegan": ModelEntry(
        CycleGANConfig, CycleGAN, default_data=CYCLEGAN_DATA, train=CYCLEGAN_TRAIN, presets=PAPER["cyclegan"]
    ),
    "progan": ModelEntry(ProGANConfig, ProGAN, train=PROGAN_TRAIN, presets=PAPER["progan"]),
    "pixelvae": ModelEntry(PixelVAEConfig, PixelVAE, presets={**PAPER["pixelvae"], **BUDGET["pixelvae"]}),
    "ddpm": ModelEntry(
        DDPMConfig, DDPM, train={"grad_clip": 1.0}, presets=PAPER["ddpm"]
    ),  # Ho et al. 2020, appendix B: gradients clipped to norm 1
    "flow-matching": ModelEntry(FlowMatchingConfig, FlowMatching, train={"grad_clip": 1.0}),
    "glow": ModelEntry(GlowConfig, Glow, presets=PAPER["glow"]),
    "vqvae": ModelEntry(VQVAEConfig, VQVAE, presets=PAPER["vqvae"]),
    "latent": ModelEntry(LatentConfig, LatentModel, train=LATENT_TRAIN),
}


def entry(name: str) -> ModelEntry:
    """The :class:`ModelEntry` of ``name``, or a clear error listing the choices."""
    try:
        return MODELS[name]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}; available models: {', '.join(sorted(MODELS))}") from None


def get(name: str):
    """(ConfigClass, ModelClass) for ``name``, or a clear error listing the choices."""
    e = entry(name)
    return e.config_class, e.model_class


def name_of(model) -> str:
    for name in MODELS:
        e = entry(name)
        if type(model) is e.model_class and type(model.config) is e.config_class:
            return name
    raise ConfigError(f"{type(model).__name__} is not in the genlab registry")


def build(name: str, config=None, **fields):
    """Build a registered model from its config (defaults when None) plus field overrides."""
    config_cls, model_cls = get(name)
    if config is None:
        config = config_cls(**fields)
    return model_cls(config)


def train_config(model_name: str, **fields) -> TrainConfig:
    """The :class:`TrainConfig` of ``model_name``'s registry entry (its paper's learning rate
    and betas, ...) with ``fields`` set, for code that drives a Trainer itself."""
    return TrainConfig(**{**entry(model_name).train, **fields})


def build_run_config(
    model_name: str,
    data: str | None = None,
    preset: str | None = None,
    overrides: Iterable[str] | Mapping[str, Any] = (),
) -> RunConfig:
    """The :class:`RunConfig` of a run of ``model_name``, built in this order (later wins):

    1. the model config's defaults and the entry's training defaults (``entry.train``);
    2. the data set: ``data``, else a ``data.name`` override, else the entry's default data;
    3. every preset of the entry whose ``data`` names that data set (e.g. gan's point
       preset for ``ring8``), then the preset named ``preset`` (a ``paper`` preset names
       the paper's data set: ``data``, when given, still wins);
    4. ``overrides``: ``["train.lr=3e-4", ...]`` or ``{"train.lr": 3e-4}``.

    >>> build_run_config("gan", data="ring8", overrides=["train.steps=100"])
    """
    return resolve_run_config(model_name, data, preset, overrides)[0]


def resolve_run_config(
    model_name: str,
    data: str | None = None,
    preset: str | None = None,
    overrides: Iterable[str] | Mapping[str, Any] = (),
    flags: Mapping[str, str] | None = None,
) -> tuple[RunConfig, dict[str, str]]:
    """:func:`build_run_config` and where each value came from: ``(config, {"train.lr": "preset 'paper'", ...})``.

    Every field of the config has a source: ``default`` (the config class), ``MODEL's training defaults``,
    ``data MODEL's default``, ``preset NAME (for data DATA)`` (applied because of the data set), ``preset NAME``,
    ``--data``, or, for an override, its entry in ``flags`` (e.g. ``{"train.steps": "--steps"}``), else ``--set``.
    """
    e = entry(model_name)
    pairs = parse_overrides(overrides)
    flags = flags or {}
    given_data = data
    if data is None:
        data = next((v for k, v in reversed(pairs) if k == "data.name"), e.default_data)
    if preset is not None and preset not in e.presets:
        have = ", ".join(sorted(e.presets)) or "none"
        raise ConfigError(f"unknown preset {preset!r} for {model_name}; its presets: {have}")
    cfg = RunConfig(
        model_name=model_name, model=e.config_class(), train=train_config(model_name), data=DataConfig(name=data)
    )
    sources = dict.fromkeys(flat_config(cfg), "default")
    sources.update({f"train.{k}": f"{model_name}'s training defaults" for k in e.train})
    sources["data.name"] = "--data" if given_data is not None else f"{model_name}'s default data"
    for name, p in e.presets.items():
        if data in p.data and name != preset:
            cfg = apply_overrides(cfg, p.values)
            sources.update(dict.fromkeys(p.values, f"preset {name!r} (for data {data})"))
    if preset is not None:
        cfg = apply_overrides(cfg, e.presets[preset].values)
        sources.update(dict.fromkeys(e.presets[preset].values, f"preset {preset!r}"))
        if given_data is not None and cfg.data.name != given_data:
            cfg = apply_overrides(cfg, {"data.name": given_data})  # the user's data set, not the preset's
    if given_data is not None:
        sources["data.name"] = "--data"
    sources.update({k: flags.get(k, "--set") for k, _ in pairs})
    cfg = apply_overrides(cfg, pairs)
    values = flat_config(cfg)
    return cfg, {k: sources.get(k, "--set") for k in values}


def flat_config(cfg: RunConfig) -> dict[str, Any]:
    """Every field of ``cfg`` by its dotted name (``"model.latent_dim"``, ``"train.step_lr.generator"``), in order."""
    out: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict) and value:
            for k, v in value.items():
                walk(f"{prefix}.{k}", v)
        else:
            out[prefix] = value

    for section in ("model", "train", "data"):
        walk(section, to_dict(getattr(cfg, section)))
    return out


def describe_run_config(cfg: RunConfig, sources: Mapping[str, str]) -> str:
    """One line per field: ``model.latent_dim = 32  (preset 'mnist-10min')``, aligned, for ``--print-config``."""
    values = flat_config(cfg)
    width = max(len(f"{k} = {json.dumps(v)}") for k, v in values.items())
    lines = [
        f"# {cfg.model_name}: every value and where it came from (later layers win: default, the model's "
        "training defaults, presets for the data set, --preset, --data, flags and --set)"
    ]
    lines += [f"{f'{k} = {json.dumps(v)}':<{width}}  ({sources.get(k, '--set')})" for k, v in values.items()]
    return "\n".join(lines)
