"""genlab.compat: the shims that keep 0.1.0 files loading, and the date on which each must go."""

from __future__ import annotations

import warnings
from pathlib import Path

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


def test_train_channels_last_moved_to_the_model_for_files_and_overrides():
    """train.channels_last (train with channels-last weights and batches) and model.channels_last did one
    job; the model's is kept (it holds for inference too). True turns the model's on, false (the old
    default) turned nothing off, and a model without the field trains in the standard layout."""
    import dataclasses

    from genlab.config import TrainConfig, to_dict

    assert "channels_last" not in {f.name for f in dataclasses.fields(TrainConfig)}
    vae, dcgan = registry.get("vae")[0], registry.get("dcgan")[0]
    doc = {"model_name": "vae", "model": {"channels_last": False}, "train": {"channels_last": True, "lr": 2e-3}}
    with pytest.warns(DeprecationWarning, match="train.channels_last=true now sets model.channels_last=true"):
        run = run_config_from_dict(doc, vae)
    assert run.model.channels_last is True and run.train.lr == 2e-3
    assert "channels_last" not in to_dict(run.train)  # saved anew without it
    doc = {"model_name": "vae", "model": {}, "train": {"channels_last": False}}
    with pytest.warns(DeprecationWarning, match="train.channels_last is deprecated: .* ignored: false was its default"):
        assert run_config_from_dict(doc, vae).model.channels_last is True  # the VAE's own default, untouched
    doc = {"model_name": "dcgan", "model": {}, "train": {"channels_last": True}}
    with pytest.warns(DeprecationWarning, match="DCGANConfig has no channels_last field"):
        assert run_config_from_dict(doc, dcgan).model == dcgan()
    # --set: the same mapping; a later override still wins
    with pytest.warns(DeprecationWarning, match="now sets model.channels_last=true"):
        cfg = registry.build_run_config("vae", overrides=["model.channels_last=false", "train.channels_last=true"])
    assert cfg.model.channels_last is True
    with pytest.warns(DeprecationWarning, match="now sets model.channels_last=true"):
        cfg = registry.build_run_config("vae", overrides=["train.channels_last=true", "model.channels_last=false"])
    assert cfg.model.channels_last is False
    with pytest.warns(DeprecationWarning, match="DCGANConfig has no channels_last field"):
        assert registry.build_run_config("dcgan", overrides=["train.channels_last=true"]).model == dcgan()
    with pytest.raises(ConfigError, match="train.channels_last: expected true or false"):
        registry.build_run_config("vae", overrides=["train.channels_last=yes"])
    assert set(compat.MOVED_TO_MODEL.values()) <= set(vae.__dataclass_fields__)


def _as_0_1_0(tmp_path, name: str) -> Path:
    """A copy of shipped model ``name`` whose config is written as genlab 0.1.0 wrote it:
    ``train.channels_last=false`` (that field's default then), whatever the model's own."""
    import json
    import shutil

    folder = tmp_path / name
    shutil.copytree(Path(genlab.pretrained.__file__).parent / name, folder)
    doc = json.loads((folder / "config.json").read_text())
    doc["genlab_version"], doc["train"]["channels_last"] = "0.1.0", False
    (folder / "config.json").write_text(json.dumps(doc))
    return folder


@pytest.mark.parametrize("name", ["vae-mnist", "vae-frey-face", "pixelvae-mnist", "pixelcnn-mnist", "dcgan-mnist"])
def test_0_1_0_run_configs_with_train_channels_last_still_load(name, tmp_path):
    """The old key moves to the model's own field where it has one (untouched by the old default) and is
    dropped where it has none (dcgan)."""
    from genlab.train import load_run_config

    folder = _as_0_1_0(tmp_path, name)
    with pytest.warns(DeprecationWarning, match="train.channels_last"):
        run = load_run_config(folder)
    assert getattr(run.model, "channels_last", None) is (None if name == "dcgan-mnist" else True)
    assert not hasattr(run.train, "channels_last")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the model alone (genlab.load) never read the train section
        genlab.load(folder)
