"""``genlab.Run``: a trained model on disk, opened once.

A run is a folder written by ``genlab train`` (``config.json``, ``model.safetensors``,
``metrics.jsonl``, checkpoints), a folder written by ``model.save``, or ``pretrained:NAME`` for a
model shipped with genlab. :class:`Run` is the one place that reads its ``config.json``; the CLI
commands, the explorer and the report take a ``Run`` and ask it for the model, its data, its test
images, its class labels and where outputs go:

>>> run = genlab.Run("pretrained:flow-matching-mnist")
>>> x = run.model.sample(16)                          # the model, loaded on first use
>>> x01, x = run.test_images(8, torch.Generator().manual_seed(0))   # needs the data set locally
>>> run.output_dir                                     # ./pretrained-flow-matching-mnist (never the package)
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any

import torch

from .config import DEFAULT_DATA
from .errors import CheckpointError, ConfigError, GenlabError
from .io import read_json


class LabelError(GenlabError, ValueError):
    """Class labels that do not fit the model (not integers, out of range, given to an unconditional model)."""


def parse_labels(text: str | list[int] | None, num_classes: int, n: int | None = None) -> torch.Tensor | None:
    """Class labels from ``"3"``, ``"0,1,2"`` or a list, for a model with ``num_classes`` classes.

    Empty (None or blank) gives None. With ``n``, the labels are repeated to fill ``n`` values.
    Raises :class:`LabelError` for anything else: not integers, out of ``0..num_classes - 1``, or
    labels for an unconditional model (``num_classes == 0``).
    """
    if text is None or (isinstance(text, str) and not text.strip()):
        return None
    if isinstance(text, str):
        try:
            values = [int(v) for v in text.replace(" ", "").split(",") if v]
        except ValueError:
            raise LabelError(f"labels must be integers separated by commas, like 0,1,2; got {text!r}") from None
    else:
        values = list(text)
        if any(isinstance(v, bool) or not isinstance(v, int) for v in values):
            raise LabelError(f"labels must be integers, got {values[:5]!r}")
    if not values:
        return None
    if num_classes == 0:
        raise LabelError("this model is unconditional (num_classes=0): give no labels")
    bad = [v for v in values if not 0 <= v < num_classes]
    if bad:
        raise LabelError(f"label {bad[0]} is out of range: this model has {num_classes} classes (0..{num_classes - 1})")
    if n is not None:
        values = [values[i % len(values)] for i in range(n)]
    return torch.tensor(values)


class Run:
    """A trained model on disk (see the module docstring): ``Run("runs/vae-mnist-5k")`` or
    ``Run("pretrained:NAME")``.

    Attributes: ``ref`` (what was given), ``path`` (the folder), ``is_pretrained``, ``doc`` (its
    ``config.json``: ``model_name``, ``model``, and for a training run ``train`` and ``data``).
    Raises :class:`~genlab.errors.CheckpointError` when the folder holds no genlab model config.
    """

    def __init__(self, ref: str | Path, *, device: str | torch.device = "cpu", model=None):
        """``model``: the run's model when the caller has it loaded already (else loaded on first use)."""
        from . import pretrained

        self.ref = str(ref)
        self.is_pretrained = pretrained.is_pretrained(ref)
        self.path = pretrained.path(self.ref) if self.is_pretrained else Path(ref)
        self.device = device
        if not self.path.is_dir():
            raise CheckpointError(
                f"{self.path} is not a directory; expected a run directory with config.json and model.safetensors"
            )
        self.doc: dict[str, Any] = read_json(self.path / "config.json")
        if not isinstance(self.doc.get("model_name"), str) or "model" not in self.doc:
            raise CheckpointError(
                f"{self.path / 'config.json'} is not a genlab model config (no model_name/model keys)"
            )
        self._data: dict[tuple, Any] = {}
        if model is not None:
            self.__dict__["model"] = model  # what the cached property would load

    def __repr__(self) -> str:
        return f"Run({self.ref!r}, model={self.model_name!r})"

    # ------------------------------------------------------------------ what it is
    @property
    def name(self) -> str:
        """The shipped model's name, or the run folder's name."""
        return self.path.name

    @property
    def model_name(self) -> str:
        """The registry name of its model (``vae``, ``dcgan``, ...)."""
        return self.doc["model_name"]

    @property
    def data_spec(self) -> dict[str, Any]:
        """The ``data`` section of its config (empty for a ``model.save`` folder)."""
        return self.doc.get("data") or {}

    @property
    def card(self) -> dict | None:
        """The ``card.json`` of a shipped model (what it was trained with and measured at), else None."""
        file = self.path / "card.json"
        return read_json(file) if file.is_file() else None

    @property
    def output_dir(self) -> Path:
        """Where a command writes by default: the run folder, or ``./pretrained-NAME`` for a shipped
        model (never the installed package)."""
        return Path(f"pretrained-{self.name}") if self.is_pretrained else self.path

    @cached_property
    def model(self):
        """The model (loaded on first use, in eval mode, float32): see :func:`genlab.load`."""
        return _build_model(self.doc, self.path).to(self.device).eval()

    # ------------------------------------------------------------------ its data
    def data_name(self, override: str | None = None) -> str:
        """``override``, else the data set the run was trained on, else genlab's default."""
        return override or self.data_spec.get("name") or DEFAULT_DATA

    def dataset(
        self, split: str = "test", name: str | None = None, data_dir: str | Path | None = None, download: bool = True
    ):
        """A split of the run's data set (or ``name``) shaped like the model's input (resized and
        converted to its channels), loaded once per (split, name, data_dir). ``data_dir``: the
        folder of local copies, else the run's own."""
        from . import data
        from .viz.samples import domain_shape

        name, data_dir = self.data_name(name), data_dir or self.data_spec.get("data_dir")
        key = (split, name, str(data_dir), download)
        if key not in self._data:
            model = self.model
            if model.data_kind == "points":  # 2-D points: nothing to resize
                ds = data.load(name, split=split, data_dir=data_dir, download=download)
            else:
                c, h, w = domain_shape(model)
                stacked = model.config.image_shape[0] != c  # a translator's two domains along channels
                ds = data.load(
                    name, split, data_dir, image_size=(h, w), channels=None if stacked else c, download=download
                )
            self._data[key] = ds
        return self._data[key]

    def test_images(
        self, n: int, generator: torch.Generator, name: str | None = None, data_dir: str | Path | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` random test images of the run's data set (or ``name``): (in [0, 1], in the model's input space)."""
        ds = self.dataset("test", name, data_dir)
        idx = torch.randperm(len(ds), generator=generator)[:n]
        x01 = ds.images[idx].float() / 255
        return x01, self.model.prepare(x01, generator=generator)

    def labels(self, text: str | list[int] | None, n: int | None = None) -> torch.Tensor | None:
        """:func:`parse_labels` for this run's model."""
        return parse_labels(text, self.model.config.num_classes, n)


def _build_model(doc: dict, path: Path):
    """The model of ``doc`` (a ``config.json``) with the weights of ``path/model.safetensors``, checked."""
    from . import registry
    from .config import model_config_from_dict
    from .loading import load_weights

    name = doc["model_name"]
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
    return model
