"""Pretrained models shipped inside the package: ``genlab.load("pretrained:vae-mnist")``.

Each model is a folder ``genlab/pretrained/<name>/`` holding

* ``config.json``: the run's config (model, train and data sections), as ``genlab train``
  writes it, with the training machine's ``data.data_dir`` removed;
* ``model.safetensors``: the weights, floating tensors stored in float16 (half the
  size; :func:`genlab.load` converts them back to the model's float32);
* ``card.json``: the model card: data, steps, CPU minutes, machine, and what was
  measured on the test split (NLL, FID/KID, digit or mode coverage).

All of them are trained by ``scripts/train_pretrained.py``. ``genlab models`` lists
them; every command that takes a run folder also takes ``pretrained:<name>``.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..errors import GenlabError

#: The folder holding one sub-folder per shipped model.
ROOT = Path(__file__).resolve().parent
#: What a run argument starts with to name a shipped model.
PREFIX = "pretrained:"


class PretrainedError(GenlabError, LookupError):
    """An unknown pretrained model name, or a shipped model whose files are missing."""


#: The shipped model the explorer opens on: the best sampler by the independent judge
#: (scripts/check_pretrained.py); the others follow in alphabetical order.
FEATURED = "vq-transformer-mnist"


def names() -> list[str]:
    """Names of the shipped models (folders holding a ``config.json``): :data:`FEATURED` first,
    then the others sorted."""
    found = sorted(p.name for p in ROOT.iterdir() if p.is_dir() and (p / "config.json").is_file())
    return sorted(found, key=lambda name: name != FEATURED)


def is_pretrained(spec: str | Path) -> bool:
    """True when ``spec`` is ``pretrained:<name>`` (a name, not a folder)."""
    return isinstance(spec, str) and spec.startswith(PREFIX)


def path(name: str) -> Path:
    """The folder of the shipped model ``name``; a :class:`PretrainedError` listing the
    available names when there is none (``name`` may carry the ``pretrained:`` prefix)."""
    if name.startswith(PREFIX):
        name = name[len(PREFIX) :]
    have = names()
    if name not in have:
        listed = ", ".join(have) if have else "none (this installation ships no pretrained models)"
        raise PretrainedError(f"no pretrained model {name!r}; available: {listed}")
    return ROOT / name


def card(name: str) -> dict:
    """The model card of ``name`` (``card.json`` as a dict)."""
    p = path(name) / "card.json"
    if not p.is_file():
        raise PretrainedError(f"the pretrained model {name!r} has no card.json in {p.parent}")
    return json.loads(p.read_text())


def half_tensors(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` with every floating tensor cast to float16 (integer buffers unchanged).

    Raises :class:`GenlabError` when a value does not fit float16 (|x| > 65504 or not
    finite), naming the tensor, rather than storing an infinity.
    """
    out = {}
    for k, v in state.items():
        if v.is_floating_point():
            h = v.detach().to(torch.float16)
            if not torch.isfinite(h).all():
                raise GenlabError(
                    f"tensor {k!r} does not fit float16 (max |x| = {v.abs().max().item():.4g}); store it in float32"
                )
            v = h
        out[k] = v
    return out


def save_half(state: dict[str, torch.Tensor], file: str | Path) -> Path:
    """Write ``state`` as a float16 safetensors file (see :func:`half_tensors`)."""
    from ..io import save_tensors

    save_tensors(half_tensors(state), file)
    return Path(file)
