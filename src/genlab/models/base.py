"""The contract every genlab model follows.

A model is an ``nn.Module`` that

* lists its optimisation steps with :meth:`GenerativeModel.train_steps` (a VAE has
  one; a GAN has a discriminator step and a generator step). Models never call
  ``backward()`` or ``optimizer.step()``: the Trainer does, one step at a time,
  with every parameter outside the step frozen;
* maps data in [0, 1] to its own input space with :meth:`prepare` (dynamic
  binarisation, dequantisation or [-1, 1] scaling, see ``genlab.data.transforms``);
* draws samples with :meth:`sample`, returned in [0, 1] image space
  (or the data's own space for non-image models);
* optionally: ``log_prob(x)`` (nats per example), ``encode``/``decode``,
  ``translate``.

Weights are saved as safetensors and the config as JSON: nothing is pickled.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import Tensor, nn

from ..config import ModelConfig, to_dict

Batch = dict  # {"x": Tensor (B, ...) in the model's input space, "y": LongTensor (B,) or None}


@dataclass
class TrainStep:
    """One optimisation step of an iteration.

    ``loss(batch)`` returns a dict with a scalar ``"loss"`` (what is minimised)
    and any other scalars to log. The Trainer gives each step its own optimiser
    over the parameters of ``modules``; ``lr``/``betas`` override the train
    config for this step. ``new_batch`` asks for a fresh batch before the step
    (e.g. several discriminator steps per generator step). Steps that share a
    name share one optimiser and must update the same parameters; learning-rate
    schedules advance once per iteration.
    """

    name: str
    modules: Sequence[nn.Module]
    loss: Callable[[Batch], dict]
    lr: float | None = None
    betas: tuple[float, float] | None = None
    new_batch: bool = False

    def parameters(self) -> list[nn.Parameter]:
        seen: dict[int, nn.Parameter] = {}
        for m in self.modules:
            for p in m.parameters():
                seen.setdefault(id(p), p)
        return list(seen.values())


class GenerativeModel(nn.Module):
    """Base class: holds the config and implements save/load and the defaults."""

    config_class: type[ModelConfig] = ModelConfig
    #: How data in [0, 1] is fed to the model: "binary", "dequantize", "signed" or "unit".
    input_mode: str = "unit"

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config

    # ---------------------------------------------------------------- contract
    def train_steps(self) -> list[TrainStep]:
        raise NotImplementedError

    def prepare(self, x01: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Data in [0, 1] -> the model's input space (see ``genlab.data.transforms``)."""
        from ..data import transforms

        if self.input_mode == "binary":
            return transforms.binarize(x01, generator=generator)
        if self.input_mode == "dequantize":
            return transforms.dequantize(x01, generator=generator)
        if self.input_mode == "signed":
            return transforms.to_signed(x01)
        if self.input_mode == "unit":
            return x01
        raise ValueError(f"unknown input_mode {self.input_mode!r}; use binary, dequantize, signed or unit")

    def sample(self, n: int, *, generator: torch.Generator | None = None, labels: Tensor | None = None) -> Tensor:
        raise NotImplementedError

    # ---------------------------------------------------------------- helpers
    @property
    def device(self) -> torch.device:
        for p in self.parameters():
            return p.device
        return torch.device("cpu")

    @property
    def num_dims(self) -> int:
        c, h, w = self.config.image_shape
        return c * h * w

    def check_labels(self, labels: Tensor | None, n: int) -> Tensor | None:
        """Validate class labels for a conditional model; None for an unconditional one."""
        k = self.config.num_classes
        if labels is None:
            if k > 0:
                raise ValueError(f"this model is class-conditional ({k} classes): pass labels= with {n} values in 0..{k - 1}")
            return None
        if k == 0:
            raise ValueError("labels were given, but this model is unconditional (model.num_classes=0)")
        labels = torch.as_tensor(labels, dtype=torch.long, device=self.device).reshape(-1)
        if labels.numel() == 1 and n > 1:
            labels = labels.expand(n)
        if labels.numel() != n:
            raise ValueError(f"got {labels.numel()} labels for {n} samples")
        if labels.min() < 0 or labels.max() >= k:
            raise ValueError(f"labels must be in 0..{k - 1}, got values from {int(labels.min())} to {int(labels.max())}")
        return labels

    def check_images(self, x: Tensor) -> None:
        """Raise a clear error when ``x`` is not a batch of this model's image shape."""
        want = tuple(self.config.image_shape)
        if x.dim() != 4 or tuple(x.shape[1:]) != want:
            raise ValueError(f"expected images of shape (N, {want[0]}, {want[1]}, {want[2]}), got {tuple(x.shape)}")

    # ---------------------------------------------------------------- persistence
    def save(self, directory: str | Path) -> Path:
        """Write ``config.json`` and ``model.safetensors`` into ``directory`` atomically."""
        from ..registry import name_of
        from ..io import atomic_write_json, make_dirs, save_tensors

        directory = make_dirs(directory)
        save_tensors(self.state_dict(), directory / "model.safetensors")
        atomic_write_json(directory / "config.json", config_document(name_of(self), self.config))
        return directory


def config_document(model_name: str, model_config: ModelConfig, **sections) -> dict:
    """The JSON document stored as ``config.json`` (model part plus optional train/data)."""
    from .. import __version__

    doc = {"genlab_version": __version__, "model_name": model_name, "model": to_dict(model_config)}
    for k, v in sections.items():
        doc[k] = to_dict(v)
    return doc


def dumps(doc: dict) -> str:
    return json.dumps(doc, indent=2, sort_keys=False) + "\n"
