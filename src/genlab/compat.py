"""What genlab keeps only so that files written by older versions still load.

genlab 0.1.0 wrote some model fields under other names, kept optimiser settings (learning rates,
betas) in the model section of ``config.json``, had a second memory-layout switch in the train section
(``train.channels_last``, in files written before 0.2.0; the layout is now the model's own
``model.channels_last``) and saved a VAE buffer the model no longer has. Loading such a run maps each
of them to today's form with a ``DeprecationWarning`` that names the new form. Every shim here carries
the version that deletes it (:data:`REMOVED_IN`); once genlab's own version reaches it,
:func:`deprecate` raises instead of warning and ``tests/test_compat.py`` fails, so a shim is deleted
on its date rather than kept forever (as diffusers' ``deprecate()`` does).

Nothing outside this module knows an old name.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any, Mapping

from .errors import ConfigError

#: The version whose release deletes the 0.1.0 shims below (config field names, optimiser settings
#: in the model section, train.channels_last, retired state keys).
REMOVED_IN = "0.3.0"

#: Model config class name -> {field name genlab 0.1.0 wrote: today's name}. Subclasses inherit
#: their base class's entry (DCGANConfig and LSGANConfig: GANConfig's) unless they have their own.
RENAMED_FIELDS: dict[str, dict[str, str]] = {
    "VAEConfig": {"iaf_hidden": "iaf_hidden_dim"},
    "GANConfig": {"hidden": "hidden_dim", "depth": "hidden_layers"},
    "ALIConfig": {"hidden": "hidden_dim", "depth": "hidden_layers", "levels": "latent_levels"},
    "PixelCNNConfig": {"levels": "grey_levels"},
    "GatedPixelCNNConfig": {"levels": "grey_levels", "num_layers": "num_blocks", "kernel": "block_kernel"},
    "WaveNetConfig": {"levels": "amplitude_levels", "kernel_size": "block_kernel"},
    "PixelVAEConfig": {"levels": "grey_levels", "pixel_layers": "pixel_blocks"},
}

#: Model config class name -> {optimiser field genlab 0.1.0 kept in the model section: its path in
#: the train section}. Inherited like :data:`RENAMED_FIELDS`.
MOVED_TO_TRAIN: dict[str, dict[str, str]] = {
    "GANConfig": {
        "lr_g": "step_lr.generator",
        "lr_d": "step_lr.discriminator",
        "betas_g": "step_betas.generator",
        "betas_d": "step_betas.discriminator",
    },
    "ALIConfig": {
        "lr_g": "step_lr.generator-encoder",
        "lr_d": "step_lr.discriminator",
        "betas_g": "step_betas.generator-encoder",
        "betas_d": "step_betas.discriminator",
    },
    "CycleGANConfig": {"lr": "lr", "betas": "betas"},
    "ProGANConfig": {"lr": "lr", "betas": "betas"},
}

#: Train field genlab had before 0.2.0 -> the model field that replaced it. ``train.channels_last``
#: (channels-last weights and batches while training, any model) and the model's own ``channels_last``
#: (VAE, PixelVAE, PixelCNN: NHWC weights and inputs for training and inference alike) did one job; the
#: model's is kept. ``true`` turns the model's on; ``false``, the old default, turned nothing off and is
#: dropped; a model without the field trains in the standard layout (channels-last trained no faster
#: there: benchmarks/README.md).
MOVED_TO_MODEL: dict[str, str] = {"channels_last": "channels_last"}

#: Model class name -> state-dict keys genlab 0.1.0 saved that the model no longer has.
RETIRED_STATE_KEYS: dict[str, tuple[str, ...]] = {
    "VAE": ("step",),  # 0.1.0 counted the KL warm-up steps in a buffer; the Trainer's step does it now
}


def version_tuple(version: str) -> tuple[int, ...]:
    """``"0.2.0"`` -> ``(0, 2, 0)`` (release numbers only; a suffix such as ``.dev1`` is ignored)."""
    parts = []
    for piece in version.split("."):
        digits = "".join(c for c in piece if c.isdigit()) if piece[:1].isdigit() else ""
        if not digits:
            break
        parts.append(int(digits))
    if not parts:
        raise ValueError(f"not a version number: {version!r} (expected e.g. 0.2.0)")
    return tuple(parts)


def deprecate(message: str, removed_in: str = REMOVED_IN, *, stacklevel: int = 3) -> None:
    """Warn (``DeprecationWarning``) that an old form was used; raise once genlab has reached
    ``removed_in``, the version whose release was to delete the shim: a reminder that cannot be missed."""
    from . import __version__

    if version_tuple(__version__) >= version_tuple(removed_in):
        raise RuntimeError(
            f"a compatibility shim outlived its removal version {removed_in} (genlab is {__version__}): "
            f"delete it from genlab/compat.py ({message})"
        )
    warnings.warn(message, DeprecationWarning, stacklevel=stacklevel)


def _inherited(table: Mapping[str, dict[str, str]], cls: type) -> dict[str, str]:
    for klass in cls.__mro__:
        if klass.__name__ in table:
            return table[klass.__name__]
    return {}


def renamed_fields(config_cls: type) -> dict[str, str]:
    """{old field name: today's name} of model config class ``config_cls`` (or its base class)."""
    return _inherited(RENAMED_FIELDS, config_cls)


def moved_to_train(config_cls: type) -> dict[str, str]:
    """{old model field: its path in the train section} of model config class ``config_cls``."""
    return _inherited(MOVED_TO_TRAIN, config_cls)


def upgrade_model_fields(cls: type, data: Mapping[str, Any], where: str = "model") -> tuple[dict, dict]:
    """Map the model fields an older genlab wrote for config class ``cls`` to today's:
    ``(model fields, train settings)``.

    Renamed fields get their new name; optimiser fields are returned as ``{path in the train
    section: value}`` (e.g. ``{"step_lr.generator": 2e-4}``). Each old name is deprecated (a
    ``DeprecationWarning`` naming the new one); giving both an old name and its new one is an error.
    """
    renamed, moved = renamed_fields(cls), moved_to_train(cls)
    model: dict = {}
    train: dict = {}
    for key, value in data.items():
        if key in renamed:
            new = renamed[key]
            if new in data:
                raise ConfigError(f"{where}: both {key!r} (its old name) and {new!r} are set; keep {new!r}")
            deprecate(f"{where}.{key} is deprecated: it is now {where}.{new}", stacklevel=4)
            model[new] = value
        elif key in moved:
            deprecate(
                f"{where}.{key} is deprecated: optimiser settings live in the train section, use train.{moved[key]}",
                stacklevel=4,
            )
            train[moved[key]] = value
        else:
            model[key] = value
    return model, train


def upgrade_train_fields(config_cls: type, data: Mapping[str, Any], where: str = "train") -> tuple[dict, dict]:
    """Map the train fields an older genlab wrote to today's, for a model with config class
    ``config_cls``: ``(train fields, model fields)``.

    A switch that moved to the model (:data:`MOVED_TO_MODEL`) set to ``true`` becomes ``{model field:
    True}`` where ``config_cls`` has that field; ``false`` (it switched nothing off) and a model without
    the field drop it. Each is deprecated (a ``DeprecationWarning`` that says which).
    """
    fields = {f.name for f in dataclasses.fields(config_cls)}
    train: dict = {}
    model: dict = {}
    for key, value in data.items():
        if key not in MOVED_TO_MODEL:
            train[key] = value
            continue
        if not isinstance(value, bool):
            raise ConfigError(f"{where}.{key}: expected true or false, got {value!r}")
        new = MOVED_TO_MODEL[key]
        if value and new in fields:
            model[new] = True
            effect = f"{where}.{key}=true now sets model.{new}=true"
        elif value:
            effect = f"ignored: {config_cls.__name__} has no {new} field and trains in the standard layout"
        else:
            effect = "ignored: false was its default and switched nothing off"
        deprecate(
            f"{where}.{key} is deprecated: the memory layout is the model's own setting, model.{new} "
            f"(training and inference); {effect}",
            stacklevel=4,
        )
    return train, model


def retired_state_keys(model_cls: type) -> tuple[str, ...]:
    """State-dict keys an older genlab saved for ``model_cls`` (or a base class) that it no longer has."""
    for klass in model_cls.__mro__:
        if klass.__name__ in RETIRED_STATE_KEYS:
            return RETIRED_STATE_KEYS[klass.__name__]
    return ()
