"""What genlab keeps only so that files written by older versions still load.

genlab 0.1.0 wrote some model fields under other names, kept optimiser settings (learning rates,
betas) in the model section of ``config.json``, and saved a VAE buffer the model no longer has.
Loading such a run maps each of them to today's form with a ``DeprecationWarning`` that names the new
form. Every shim here carries the version that deletes it (:data:`REMOVED_IN`); once genlab's own
version reaches it, :func:`deprecate` raises instead of warning and ``tests/test_compat.py`` fails,
so a shim is deleted on its date rather than kept forever (as diffusers' ``deprecate()`` does).

Nothing outside this module knows an old name.
"""

from __future__ import annotations

import warnings
from typing import Any, Mapping

from .errors import ConfigError

#: The version whose release deletes the 0.1.0 shims below (config field names, optimiser settings
#: in the model section, retired state keys).
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


def retired_state_keys(model_cls: type) -> tuple[str, ...]:
    """State-dict keys an older genlab saved for ``model_cls`` (or a base class) that it no longer has."""
    for klass in model_cls.__mro__:
        if klass.__name__ in RETIRED_STATE_KEYS:
            return RETIRED_STATE_KEYS[klass.__name__]
    return ()
