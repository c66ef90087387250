"""Configuration: plain dataclasses, a JSON round trip and ``a.b=3`` overrides.

A run is described by a :class:`RunConfig` made of three parts:

* ``model``: the model's own dataclass (defined on top of its file in
  ``genlab/models``), always a subclass of :class:`ModelConfig`;
* ``train``: :class:`TrainConfig`, the optimisation schedule, in steps, and every
  optimiser setting (learning rates and Adam betas, per train step where a model
  has several);
* ``data``: :class:`DataConfig`, which data set and where it lives.

:func:`genlab.registry.build_run_config` builds the RunConfig of a model from its
registry entry (its defaults and presets) and the user's overrides; the command
line and the Python API both use it.

Every field can be set from the command line with ``--set section.field=value``;
values are parsed as JSON when possible (``3``, ``1e-3``, ``true``, ``[1, 28, 28]``)
and as plain strings otherwise. A mapping field takes one entry at a time with
``--set train.step_lr.discriminator=4e-4``.

Each config validates itself when it is built (``__post_init__`` calls ``validate``)
and raises :class:`ConfigError` saying what was wrong and what would be right. Field
names written by older genlab versions keep loading: :mod:`genlab.compat` maps them, with a
``DeprecationWarning``.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from .compat import upgrade_model_fields, upgrade_train_fields
from .errors import ConfigError

#: The data set every tool uses when none is named: 5,000 MNIST digits shipped with the package.
DEFAULT_DATA = "mnist-5k"


@dataclass
class ModelConfig:
    """Fields every model has. Subclasses add their own and extend :meth:`validate`.

    ``image_shape`` is (channels, height, width) of the data the model sees;
    the trainer fills it from the data set. ``num_classes`` > 0 makes a model
    class-conditional where the model supports it.

    Naming scheme of the fields across models: ``grey_levels`` (values a pixel
    takes), ``latent_levels`` (layers of a latent hierarchy), ``hidden_dim`` (the
    width of a fully connected layer), ``*_channels`` (convolution widths),
    ``num_blocks``/``*_blocks`` (repeated blocks), ``input_kernel``/``block_kernel``
    (kernel sizes of the first convolution and of every block).
    """

    image_shape: tuple[int, int, int] = (1, 28, 28)
    num_classes: int = 0

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        """Raise :class:`ConfigError` on a bad value (called whenever a config is built)."""
        if any(not isinstance(s, int) or s < 1 for s in self.image_shape):
            raise ConfigError(f"model.image_shape must hold positive sizes, got {tuple(self.image_shape)}")
        if self.num_classes < 0:
            raise ConfigError(f"model.num_classes must be >= 0 (0: unconditional), got {self.num_classes}")

    def check_unconditional(self, model: str) -> None:
        """ConfigError unless ``num_classes`` is 0, for models without class conditioning."""
        if self.num_classes != 0:
            raise ConfigError(f"{model} is unconditional: set model.num_classes=0 (got {self.num_classes})")

    def check_choice(self, name: str, allowed: Iterable[str]) -> None:
        """ConfigError unless field ``name`` is one of ``allowed``."""
        allowed = tuple(allowed)
        if getattr(self, name) not in allowed:
            raise ConfigError(f"unknown model.{name} {getattr(self, name)!r}; choose one of: {', '.join(allowed)}")

    def check_positive(self, *names: str) -> None:
        """ConfigError unless every field in ``names`` is >= 1."""
        for name in names:
            if getattr(self, name) < 1:
                raise ConfigError(f"model.{name} must be >= 1, got {getattr(self, name)}")


@dataclass
class TrainConfig:
    """How a model is trained, in two sections (``--set train.FIELD=VALUE`` for either):

    * **optimisation**: what the run computes: steps, batch, Adam, schedule, EMA, seed, the
      time budget, and how often it logs, draws samples and checkpoints. All lengths are in
      optimisation steps (iterations), so that stopping at step s and resuming gives the same run.
    * **runtime**: where and how it runs (:data:`RUNTIME_FIELDS`, read by
      :class:`genlab.train.runtime.Runtime`): device, mixed precision, compile, CPU threads, the
      allocator, Adam's fused kernel. They change speed, and results only by float rounding
      (mixed precision by more: it computes in bfloat16 or float16).
    """

    # ------------------------------------------------------------------ optimisation
    steps: int = 2000
    batch_size: int = 128
    #: Adam's learning rate of every train step without its own in step_lr
    lr: float = 1e-3
    #: Adam's betas of every step without its own in step_betas
    betas: tuple[float, float] = (0.9, 0.999)
    #: train step name -> its own rate, e.g. {"discriminator": 4e-4}
    step_lr: dict[str, float] = field(default_factory=dict)
    #: train step name -> its own betas
    step_betas: dict[str, tuple[float, float]] = field(default_factory=dict)
    weight_decay: float = 0.0
    #: "constant" or "cosine" (decays to 0 at schedule_steps)
    lr_schedule: str = "constant"
    #: length of the cosine schedule, in steps; required (> 0) with "cosine"
    schedule_steps: int = 0
    #: linear learning-rate warm-up, in steps
    warmup_steps: int = 0
    #: max global gradient norm per step; 0 disables
    grad_clip: float = 0.0
    #: decay of the exponential moving average of the weights; 0 disables
    ema_decay: float = 0.0
    seed: int = 0
    #: time budget of the run in seconds, counted across resumes; 0 = none
    max_seconds: float = 0.0
    #: what max_seconds counts: "wall" (elapsed time) or "cpu" (this process's CPU time, all threads)
    budget_clock: str = "wall"
    log_every: int = 50
    sample_every: int = 500
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    progress: bool = True

    # ------------------------------------------------------------------ runtime
    #: "auto", "cpu", "cuda", "cuda:1", "mps"
    device: str = "auto"
    #: autocast: bfloat16 on CPU; bfloat16 (or float16 + scaler) on GPU
    amp: bool = False
    #: torch.compile the model's modules (GPUs only)
    compile: bool = False
    #: CPU threads while training: 0 = chosen at start from the free cores (never above torch's setting), N = exactly N
    threads: int = 0
    #: Linux/glibc: keep freed buffers in the process while training (mallopt), as MALLOC_MMAP_THRESHOLD_ would
    tune_malloc: bool = True
    #: Adam's fused kernel where torch has one (CPU, CUDA); false: torch's default (genlab <= 0.1.0)
    fused_adam: bool = True

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:  # noqa: C901
        """Raise :class:`ConfigError` on a bad value (called whenever a config is built).
        Step names in ``step_lr``/``step_betas`` are checked by the Trainer, which knows the model's steps."""
        if self.lr_schedule not in ("constant", "cosine"):
            raise ConfigError(f"train.lr_schedule={self.lr_schedule!r}; use constant or cosine")
        if self.lr_schedule == "cosine" and self.schedule_steps <= 0:
            raise ConfigError(
                "train.lr_schedule=cosine needs train.schedule_steps > 0 "
                "(the step where the rate reaches 0), e.g. train.schedule_steps=10000"
            )
        if self.warmup_steps < 0:
            raise ConfigError(f"train.warmup_steps must be >= 0, got {self.warmup_steps}")
        if self.batch_size < 1:
            raise ConfigError(f"train.batch_size must be >= 1, got {self.batch_size}")
        if self.steps < 0:
            raise ConfigError(f"train.steps must be >= 0, got {self.steps}")
        if not 0 <= self.seed < 2**63:  # what torch's generators take
            raise ConfigError(f"train.seed must be 0 <= seed < 2**63, got {self.seed}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"train.ema_decay must be in [0, 1) (0 disables EMA), got {self.ema_decay}")
        for where, lr in [("train.lr", self.lr)] + [(f"train.step_lr.{k}", v) for k, v in self.step_lr.items()]:
            if not lr > 0:
                raise ConfigError(f"{where} must be > 0, got {lr}")
        for where, b in [("train.betas", self.betas)] + [
            (f"train.step_betas.{k}", v) for k, v in self.step_betas.items()
        ]:
            if len(b) != 2 or not all(0.0 <= v < 1.0 for v in b):
                raise ConfigError(f"{where} must be two numbers in [0, 1), e.g. [0.5, 0.999], got {list(b)}")
        if self.grad_clip < 0:
            raise ConfigError(f"train.grad_clip must be >= 0 (0 disables), got {self.grad_clip}")
        if not 0.0 <= self.max_seconds < float("inf"):
            raise ConfigError(
                f"train.max_seconds must be a finite number >= 0 (0 = no time budget), got {self.max_seconds}"
            )
        if self.budget_clock not in ("wall", "cpu"):
            raise ConfigError(
                f"train.budget_clock={self.budget_clock!r}; use wall (elapsed time) or cpu "
                "(CPU time of this process, every thread)"
            )
        if self.threads < 0:
            raise ConfigError(f"train.threads must be >= 0 (0 = chosen from the free cores), got {self.threads}")

    def lr_of(self, step: str) -> float:
        """Adam's learning rate of the train step named ``step``."""
        return self.step_lr.get(step, self.lr)

    def betas_of(self, step: str) -> tuple[float, float]:
        """Adam's betas of the train step named ``step``."""
        return tuple(self.step_betas.get(step, self.betas))

    def check_steps(self, names: Iterable[str], model: str) -> None:
        """ConfigError when ``step_lr``/``step_betas`` name a step the model does not have."""
        names = list(dict.fromkeys(names))
        for field_name in ("step_lr", "step_betas"):
            unknown = sorted(set(getattr(self, field_name)) - set(names))
            if unknown:
                raise ConfigError(
                    f"train.{field_name} names {unknown}, but {model}'s train steps are {names}; "
                    f"e.g. train.{field_name}.{names[-1]}=..."
                )


#: The runtime section of :class:`TrainConfig`: where and how a run executes, not what it computes.
RUNTIME_FIELDS = ("device", "amp", "compile", "threads", "tune_malloc", "fused_adam")


@dataclass
class DataConfig:
    """Which data set (``genlab datasets``, ``folder:<path>``, ...), where local copies live,
    which split, and the shape it is converted to.

    ``image_size``: None keeps the data's own size; an int S or ``[H, W]`` resizes every
    image (scale to cover, then center crop: :mod:`genlab.data.images`). ``channels``:
    None keeps the data's own, 1 converts to grey, 3 to RGB. Every command that loads
    data for a run uses them (later commands follow the trained model's input shape).
    """

    name: str = DEFAULT_DATA
    data_dir: str | None = None
    split: str = "train"
    image_size: int | tuple[int, int] | None = None
    channels: int | None = None

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        if not self.name:
            raise ConfigError(
                f"data.name must name a data set, e.g. data.name={DEFAULT_DATA} (genlab datasets lists them)"
            )
        if self.split not in ("train", "test", "all"):
            raise ConfigError(f"data.split must be train, test or all, got {self.split!r}")


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


def _coerce(value: Any, tp: Any, where: str) -> Any:  # noqa: C901
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
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f'{where}: expected an object like {{"name": value}}, got {value!r}')
        key_tp, value_tp = args if args else (str, Any)
        return {_coerce(k, key_tp, where): _coerce(v, value_tp, f"{where}.{k}") for k, v in value.items()}
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


# --------------------------------------------------------------------------- older field names


def model_config_from_dict(cls: type, data: dict, where: str = "model") -> Any:
    """The model config ``cls`` from a dict that may use older field names (optimiser
    settings that moved to the train section are dropped: a loaded model has no optimiser)."""
    model, _ = upgrade_model_fields(cls, data, where)
    return from_dict(cls, model, where)


def run_config_from_dict(doc: dict, config_cls: type) -> RunConfig:
    """A :class:`RunConfig` from a ``config.json`` document (``model_name``, ``model``,
    ``train``, optional ``data``), older field names included: optimiser settings that
    older versions kept in the model section move to the train section, and train
    settings that moved to the model section go there."""
    model, moved = upgrade_model_fields(config_cls, doc["model"])
    train, to_model = upgrade_train_fields(config_cls, doc["train"])
    model.update(to_model)
    for path, value in moved.items():
        _set_path(train, path, value, "train")
    return RunConfig(
        model_name=doc["model_name"],
        model=from_dict(config_cls, model, "model"),
        train=from_dict(TrainConfig, train, "train"),
        data=from_dict(DataConfig, doc.get("data", {}), "data"),
    )


# --------------------------------------------------------------------------- overrides


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _set_path(section: dict, path: str, value: Any, where: str) -> None:
    """``section[path] = value``; ``"step_lr.generator"`` sets one entry of a mapping field."""
    name, _, key = path.partition(".")
    if not key:
        section[name] = value
        return
    if name in section and not isinstance(section[name], dict):
        raise ConfigError(f"{where}.{name} is not a mapping: set it as a whole, e.g. {where}.{name}=...")
    section[name] = {**section.get(name, {}), key: value}


def parse_overrides(overrides: Iterable[str | tuple[str, Any]] | Mapping[str, Any]) -> list[tuple[str, Any]]:
    """``["train.lr=3e-4", ...]`` (values parsed as JSON when they are JSON), a mapping
    ``{"train.lr": 3e-4}`` or ``(key, value)`` pairs -> ``[("train.lr", 3e-4), ...]``, in order."""
    if isinstance(overrides, Mapping):
        return list(overrides.items())
    pairs = []
    for item in overrides:
        if isinstance(item, tuple) and len(item) == 2:
            pairs.append(item)
            continue
        if not isinstance(item, str) or "=" not in item:
            raise ConfigError(f"override {item!r} must look like section.field=value, e.g. model.latent_dim=2")
        key, text = item.split("=", 1)
        pairs.append((key, _parse_value(text)))
    return pairs


def apply_overrides(cfg: RunConfig, overrides: Iterable[str | tuple[str, Any]] | Mapping[str, Any]) -> RunConfig:
    """Apply ``section.field=value`` overrides (strings, or a mapping of keys to values) to a
    RunConfig; returns a new one, validated. Later overrides win. Older field names are
    accepted with a ``DeprecationWarning`` (see :func:`upgrade_model_fields`, :func:`upgrade_train_fields`).

    >>> apply_overrides(cfg, ["model.latent_dim=2", "train.lr=3e-4", "train.step_lr.discriminator=4e-4"])
    """
    sections = {"model": cfg.model, "train": cfg.train, "data": cfg.data}
    updates: dict[str, dict[str, Any]] = {k: to_dict(v) for k, v in sections.items()}
    for key, value in parse_overrides(overrides):
        if "." not in key:
            raise ConfigError(
                f"override key {key!r} must name a section: one of {sorted(sections)} (e.g. train.lr=3e-4)"
            )
        section, name = key.split(".", 1)
        if section not in sections:
            raise ConfigError(f"unknown config section {section!r}; valid sections: {sorted(sections)}")
        if section == "data":
            _set_path(updates["data"], name, value, "data")
            continue
        # older names: a model field may go to the train section and a train field to the model's
        if section == "model":
            model, train = upgrade_model_fields(type(cfg.model), {name: value})
        else:
            train, model = upgrade_train_fields(type(cfg.model), {name: value})
        for path, v in model.items():
            _set_path(updates["model"], path, v, "model")
        for path, v in train.items():
            _set_path(updates["train"], path, v, "train")
    new = {section: from_dict(type(obj), updates[section], section) for section, obj in sections.items()}
    return RunConfig(model_name=cfg.model_name, **new)
