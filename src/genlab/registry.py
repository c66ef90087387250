"""The model registry: one literal dict from a model's name to its :class:`ModelEntry`, read from its module.

A model's recipe lives in its own module (``genlab/models/<name>.py``), beside its config
class: ``TRAIN_DEFAULTS`` (TrainConfig fields: the learning rate and betas its paper uses,
...; may be empty), ``PRESETS`` (name -> :class:`~genlab.presets.Preset`: the paper's
settings, those sized for a CPU budget, those applied to a data set; may be empty) and,
where it trains on other data than genlab's default, ``DEFAULT_DATA``. :func:`entry_from`
turns a module and its two classes into the entry that carries them.
:func:`build_run_config` turns (model, data, preset, overrides) into a
:class:`~genlab.config.RunConfig`; the command line (``genlab train``) and the Python API
(``genlab.train.train``) both call it, so the same arguments give the same run.

Add a model by adding one line to :data:`MODELS`; nothing registers itself at import time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Iterable, Mapping

from .config import DEFAULT_DATA, DataConfig, RunConfig, TrainConfig, apply_overrides, parse_overrides, to_dict
from .errors import ConfigError
from .models import (
    ali,
    cyclegan,
    dcgan,
    ddpm,
    flow_matching,
    gan,
    gated_pixelcnn,
    glow,
    latent,
    pixelcnn,
    pixelvae,
    progan,
    transformer,
    vae,
    vqvae,
    wavenet,
)
from .presets import Preset, Published  # noqa: F401  (Preset and Published are part of the registry's interface)


@dataclass(frozen=True)
class ModelEntry:
    """What the registry knows about a model (see the module docstring); every value of :data:`MODELS` is one.
    :func:`get` gives its ``(ConfigClass, ModelClass)`` pair."""

    config_class: type
    model_class: type
    default_data: str = DEFAULT_DATA
    train: Mapping[str, Any] = field(default_factory=dict)  # TrainConfig defaults of this model, by field
    presets: Mapping[str, Preset] = field(default_factory=dict)


#: The names of a model's recipe in its module (``DEFAULT_DATA`` may be left out: genlab's default data).
RECIPE = ("TRAIN_DEFAULTS", "PRESETS")


def entry_from(module: ModuleType, config_class: type, model_class: type, prefix: str = "") -> ModelEntry:
    """The :class:`ModelEntry` of a model whose recipe lives in ``module``: its ``TRAIN_DEFAULTS``,
    ``PRESETS`` and ``DEFAULT_DATA`` (each with ``prefix`` in front where one module holds several
    models' recipes, e.g. ``"LSGAN_"`` in :mod:`genlab.models.dcgan`)."""
    missing = [prefix + name for name in RECIPE if not hasattr(module, prefix + name)]
    if missing:
        raise ConfigError(
            f"{module.__name__} has no {' or '.join(missing)}: a registered model's module defines its recipe "
            "beside its config class (an empty dict where it has none; CONTRIBUTING.md, 'Adding a model')"
        )
    return ModelEntry(
        config_class,
        model_class,
        default_data=getattr(module, prefix + "DEFAULT_DATA", DEFAULT_DATA),
        train=getattr(module, prefix + "TRAIN_DEFAULTS"),
        presets=getattr(module, prefix + "PRESETS"),
    )


MODELS: dict[str, ModelEntry] = {
    "vae": entry_from(vae, vae.VAEConfig, vae.VAE),
    "pixelcnn": entry_from(pixelcnn, pixelcnn.PixelCNNConfig, pixelcnn.PixelCNN),
    "gated-pixelcnn": entry_from(gated_pixelcnn, gated_pixelcnn.GatedPixelCNNConfig, gated_pixelcnn.GatedPixelCNN),
    "transformer": entry_from(transformer, transformer.TransformerConfig, transformer.Transformer),
    "wavenet": entry_from(wavenet, wavenet.WaveNetConfig, wavenet.WaveNet),
    "gan": entry_from(gan, gan.GANConfig, gan.GAN),
    "dcgan": entry_from(dcgan, dcgan.DCGANConfig, dcgan.DCGAN),
    "lsgan": entry_from(dcgan, dcgan.LSGANConfig, dcgan.DCGAN, prefix="LSGAN_"),
    "ali": entry_from(ali, ali.ALIConfig, ali.ALI),
    "cyclegan": entry_from(cyclegan, cyclegan.CycleGANConfig, cyclegan.CycleGAN),
    "progan": entry_from(progan, progan.ProGANConfig, progan.ProGAN),
    "pixelvae": entry_from(pixelvae, pixelvae.PixelVAEConfig, pixelvae.PixelVAE),
    "ddpm": entry_from(ddpm, ddpm.DDPMConfig, ddpm.DDPM),
    "flow-matching": entry_from(flow_matching, flow_matching.FlowMatchingConfig, flow_matching.FlowMatching),
    "glow": entry_from(glow, glow.GlowConfig, glow.Glow),
    "vqvae": entry_from(vqvae, vqvae.VQVAEConfig, vqvae.VQVAE),
    "latent": entry_from(latent, latent.LatentConfig, latent.LatentModel),
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
