"""Configuration: plain dataclasses, a JSON round trip and ``a.b=3`` overrides.

A run is described by a :class:`RunConfig` made of three parts:

* ``model``: the model's own dataclass (defined on top of its file in
  ``genlab/models``), always a subclass of :class:`ModelConfig`;
* ``train``: :class:`TrainConfig`, the optimisation schedule, in steps;
* ``data``: :class:`DataConfig`, which data set and where it lives.

Every field can be set from the command line with ``--set section.field=value``;
values are parsed as JSON when possible (``3``, ``1e-3``, ``true``, ``[1, 28, 28]``)
and as plain strings otherwise.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError


@dataclass
class ModelConfig:
    """Fields every model has. Subclasses add their own.

    ``image_shape`` is (channels, height, width) of the data the model sees;
    the trainer fills it from the data set. ``num_classes`` > 0 makes a model
    class-conditional where the model supports it.
    """

    image_shape: tuple[int, int, int] = (1, 28, 28)
    num_classes: int = 0


@dataclass
class TrainConfig:
    """The optimisation schedule. All lengths are in optimisation steps
    (iterations), so that stopping at step s and resuming gives the same run."""

    steps: int = 2000
    batch_size: int = 128
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    lr_schedule: str = "constant"  # "constant" or "cosine" (decays to 0 at schedule_steps)
    schedule_steps: int = 0  # length of the cosine schedule, in steps; required (> 0) with "cosine"
    warmup_steps: int = 0  # linear learning-rate warm-up
    grad_clip: float = 0.0  # max global gradient norm per step; 0 disables
    ema_decay: float = 0.0  # 0 disables the exponential moving average of the weights
    seed: int = 0
    log_every: int = 50
    sample_every: int = 500
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    device: str = "auto"  # "auto", "cpu", "cuda", "cuda:1", "mps"
    amp: bool = False  # autocast: bfloat16 on CPU; bfloat16 (or float16 + scaler) on GPU
    compile: bool = False  # torch.compile the model's modules
    progress: bool = True


@dataclass
class DataConfig:
    """Which data set, where it lives, and the shape it is converted to.

    ``image_size``: None keeps the data's own size; an int S or ``[H, W]`` resizes every
    image (scale to cover, then center crop: :mod:`genlab.data.images`). ``channels``:
    None keeps the data's own, 1 converts to grey, 3 to RGB. Every command that loads
    data for a run uses them (later commands follow the trained model's input shape).
    """

    name: str = "mnist-5k"
    data_dir: str | None = None
    split: str = "train"
    image_size: int | tuple[int, int] | None = None
    channels: int | None = None


@dataclass
class RunConfig:
    model_name: str
    model: ModelConfig
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)


# --------------------------------------------------------------------------- JSON


def to_dict(cfg: Any) -> dict:
    """Dataclass -> JSON-ready dict (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check and convert a JSON value to the annotated type ``tp``."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        if value is None and type(None) in args:
            return None
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, where)
            except ConfigError:
                pass
        raise ConfigError(f"{where}: {value!r} is not a valid {tp}")
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list like [1, 2], got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"{where}: expected {len(args)} values, got {len(value)}")
            return tuple(_coerce(v, a, where) for v, a in zip(value, args))
        inner = args[0] if args else Any
        seq = [_coerce(v, inner, where) for v in value]
        return tuple(seq) if origin is tuple else seq
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return int(value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where)
    return value


def from_dict(cls: type, data: dict, where: str = "config") -> Any:
    """Build dataclass ``cls`` from a dict, rejecting unknown keys with the valid ones."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected an object, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; valid keys: {names}")
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}") for k, v in data.items()}
    return cls(**kwargs)


# --------------------------------------------------------------------------- overrides


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def apply_overrides(cfg: RunConfig, overrides: list[str]) -> RunConfig:
    """Apply ``section.field=value`` strings to a RunConfig (returns a new one).

    >>> apply_overrides(cfg, ["model.latent_dim=2", "train.lr=3e-4"])
    """
    sections = {"model": cfg.model, "train": cfg.train, "data": cfg.data}
    updates: dict[str, dict[str, Any]] = {k: {} for k in sections}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like section.field=value, e.g. model.latent_dim=2")
        key, text = item.split("=", 1)
        if "." not in key:
            raise ConfigError(f"override key {key!r} must name a section: one of {sorted(sections)} (e.g. train.lr=3e-4)")
        section, name = key.split(".", 1)
        if section not in sections:
            raise ConfigError(f"unknown config section {section!r}; valid sections: {sorted(sections)}")
        updates[section][name] = _parse_value(text)
    new = {}
    for section, obj in sections.items():
        merged = {**to_dict(obj), **updates[section]}
        new[section] = from_dict(type(obj), merged, section)
    return RunConfig(model_name=cfg.model_name, **new)
