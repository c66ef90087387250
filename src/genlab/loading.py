"""``genlab.load(dir)``: rebuild a model from ``config.json`` + ``model.safetensors``
(through :class:`genlab.Run`, which reads the config), and the checked reading of the weights.

:func:`resolve_run` turns a run argument (a folder, or ``pretrained:<name>`` for a model
shipped in the package) into a folder.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .errors import CheckpointError
from .io import load_tensors


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
    from .run import Run

    return Run(path, device=device).model
