"""``genlab.load(dir)``: rebuild a model from ``config.json`` + ``model.safetensors``.

:func:`resolve_run` is the one place a run argument (a folder, or ``pretrained:<name>``
for a model shipped in the package) becomes a folder; ``genlab.load`` and every
command of the CLI go through it.
"""

from __future__ import annotations

from pathlib import Path

import torch

from . import registry
from .config import model_config_from_dict
from .errors import CheckpointError, ConfigError
from .io import load_tensors, read_json


def resolve_run(run: str | Path) -> Path:
    """The folder of a run argument: ``pretrained:<name>`` -> the shipped model's folder
    (:class:`~genlab.pretrained.PretrainedError` listing the names when unknown); anything
    else is taken as a path."""
    from . import pretrained

    if pretrained.is_pretrained(run):
        return pretrained.path(str(run))
    return Path(run)


def load_weights(folder: Path) -> dict[str, torch.Tensor]:
    """The tensors of ``folder/model.safetensors``, checked: readable, matching the SHA-256
    written with them (files saved before genlab wrote one have none) and free of NaN and
    infinity; else a CheckpointError that says how to restore the file."""
    file = folder / "model.safetensors"
    try:
        state = load_tensors(file)
        bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
        if bad:
            raise CheckpointError(
                f"{file} holds NaN or infinite weights (in {', '.join(bad[:3])}{', ...' if len(bad) > 3 else ''})"
            )
    except CheckpointError as e:
        raise CheckpointError(f"{e}; {_how_to_restore(folder)}") from None
    return state


def _how_to_restore(folder: Path) -> str:
    from . import pretrained
    from .train.checkpoint import list_checkpoints

    checkpoints = list_checkpoints(folder / "checkpoints")
    if (
        checkpoints
    ):  # the newest checkpoint's weights: its EMA ones when the run keeps an average, as the Trainer writes
        step, newest = checkpoints[-1]
        weights = newest / ("ema.safetensors" if (newest / "ema.safetensors").exists() else "model.safetensors")
        return (
            f"restore it from checkpoints/ with: cp {weights} "
            f"{folder / 'model.safetensors'} (the weights at step {step})"
        )
    if folder.resolve().parent == pretrained.ROOT:
        return "it ships with genlab: reinstall genlab to restore it"
    return "save or train the model again"


def load(path: str | Path, device: str | torch.device = "cpu"):
    """Load a saved model (a run directory, a ``model.save`` directory, or
    ``"pretrained:<name>"`` for a model shipped with genlab, see ``genlab models``).

    Floating tensors stored in another precision (the float16 of the shipped models)
    are converted to the dtype of the model's own parameters (float32).

    Reads only JSON and safetensors, never pickle. Returns the model in eval mode.
    Folders written by older genlab versions load too: renamed config fields are
    mapped (with a ``DeprecationWarning``) and retired weights dropped.
    Raises :class:`CheckpointError` with a clear message when the folder is not a
    genlab model, belongs to an unknown model, or its weights are corrupt or do
    not fit the config.
    """
    path = resolve_run(path)
    if not path.is_dir():
        raise CheckpointError(
            f"{path} is not a directory; expected a run directory with config.json and model.safetensors"
        )
    doc = read_json(path / "config.json")
    name = doc.get("model_name")
    if not isinstance(name, str) or "model" not in doc:
        raise CheckpointError(f"{path / 'config.json'} is not a genlab model config (no model_name/model keys)")
    try:
        config_cls, model_cls = registry.get(name)
        config = model_config_from_dict(config_cls, doc["model"], "model")
    except ConfigError as e:
        raise CheckpointError(f"cannot rebuild the model in {path}: {e}") from None
    model = model_cls(config)
    state = model.upgrade_state_dict(load_weights(path))
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(state) & set(expected) if state[k].shape != expected[k].shape)
    if missing or unexpected or wrong:
        raise CheckpointError(
            f"the weights in {path / 'model.safetensors'} do not fit a {name!r} model with this config: "
            f"missing {missing[:5]}, unexpected {unexpected[:5]}, wrong shape {wrong[:5]}"
        )
    state = {
        k: v.to(expected[k].dtype) if v.is_floating_point() and expected[k].is_floating_point() else v
        for k, v in state.items()
    }
    model.load_state_dict(state)
    return model.to(device).eval()
