"""A model saved as a run folder without training: weights, and config.json with a
data section when a data set is named (what the explorer and the report read)."""

from __future__ import annotations

import torch

from genlab import registry
from genlab.config import DataConfig
from genlab.io import atomic_write_json
from genlab.models.base import config_document


def saved(folder, name, data_name=None, **fields):
    """Build registry model ``name`` with ``fields`` (seed 0), save it in ``folder``, return the folder."""
    config_cls, model_cls = registry.get(name)
    torch.manual_seed(0)
    model = model_cls(config_cls(**fields))
    model.save(folder)
    if data_name:
        atomic_write_json(folder / "config.json", config_document(name, model.config, data=DataConfig(name=data_name)))
    return folder
