"""genlab.compat: the shims that keep 0.1.0 files loading, and the date on which each must go."""

from __future__ import annotations

import warnings

import pytest

import genlab
from genlab import compat, registry
from genlab.config import model_config_from_dict, run_config_from_dict
from genlab.errors import ConfigError


def test_no_shim_outlives_its_removal_version():
    # Fails on the release that reaches REMOVED_IN: delete the shims (and this module's tables) then.
    assert compat.version_tuple(genlab.__version__) < compat.version_tuple(compat.REMOVED_IN), (
        f"genlab {genlab.__version__} has reached {compat.REMOVED_IN}: delete the 0.1.0 shims in genlab/compat.py"
    )


def test_version_numbers_compare_as_numbers():
    assert compat.version_tuple("0.10.0") > compat.version_tuple("0.9.1")
    assert compat.version_tuple("0.2.0.dev1") == (0, 2, 0)
    with pytest.raises(ValueError, match="not a version number"):
        compat.version_tuple("latest")


def test_deprecate_warns_before_and_raises_once_the_version_is_reached(monkeypatch):
    with pytest.warns(DeprecationWarning, match="old thing"):
        compat.deprecate("old thing", removed_in="99.0")
    monkeypatch.setattr(genlab, "__version__", "99.0.0")
    with pytest.raises(RuntimeError, match="outlived its removal version 99.0"):
        compat.deprecate("old thing", removed_in="99.0")


def test_every_table_names_a_real_class_and_real_fields():
    configs = {e.config_class.__name__: e.config_class for e in map(registry.entry, registry.MODELS)}
    models = {e.model_class.__name__ for e in map(registry.entry, registry.MODELS)}
    for table in (compat.RENAMED_FIELDS, compat.MOVED_TO_TRAIN):
        assert set(table) <= set(configs) | {"GANConfig"}
    assert set(compat.RETIRED_STATE_KEYS) <= models
    for name, renamed in compat.RENAMED_FIELDS.items():
        fields = set(configs.get(name, registry.get("gan")[0]).__dataclass_fields__)
        assert set(renamed.values()) <= fields and not set(renamed) & fields, name


def test_old_names_load_with_a_warning_and_inherit_from_the_base_config():
    dcgan = registry.get("dcgan")[0]  # a GANConfig subclass: GAN's 0.1.0 names apply
    with pytest.warns(DeprecationWarning, match="model.hidden is deprecated: it is now model.hidden_dim"):
        cfg = model_config_from_dict(dcgan, {"hidden": 64})
    assert cfg.hidden_dim == 64
    doc = {"model_name": "gan", "model": {"lr_d": 4e-4}, "train": {}}
    with pytest.warns(DeprecationWarning, match="use train.step_lr.discriminator"):
        run = run_config_from_dict(doc, registry.get("gan")[0])
    assert run.train.step_lr == {"discriminator": 4e-4}
    with pytest.raises(ConfigError, match="both 'levels' .* and 'grey_levels'"):
        model_config_from_dict(registry.get("pixelcnn")[0], {"levels": 4, "grey_levels": 4})


def test_retired_weights_are_dropped_with_a_warning():
    import torch

    vae = registry.build("vae", image_shape=(1, 4, 4), latent_dim=2, hidden_dim=8, encoder="mlp", decoder="mlp")
    state = {**vae.state_dict(), "step": torch.tensor(3)}
    with pytest.warns(DeprecationWarning, match=r"VAE weights with \['step'\]"):
        assert set(vae.upgrade_state_dict(state)) == set(vae.state_dict())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # today's weights: nothing to drop, nothing said
        assert set(vae.upgrade_state_dict(vae.state_dict())) == set(vae.state_dict())
