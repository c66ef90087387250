"""genlab.Run: a run folder or shipped model opened once (config, model, data, labels, outputs)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import genlab
from genlab.errors import CheckpointError, GenlabError
from genlab.run import LabelError, Run, parse_labels


def test_labels_parse_repeat_and_refuse_what_does_not_fit():
    assert parse_labels(None, 10) is None and parse_labels("  ", 10) is None
    assert parse_labels("1, 2", 10, n=5).tolist() == [1, 2, 1, 2, 1]
    assert parse_labels([3], 10, n=2).tolist() == [3, 3]
    with pytest.raises(LabelError, match="integers separated by commas"):
        parse_labels("one", 10)
    with pytest.raises(LabelError, match="label 10 is out of range: this model has 10 classes"):
        parse_labels("10", 10)
    with pytest.raises(LabelError, match="unconditional"):
        parse_labels("1", 0)
    with pytest.raises(LabelError, match="must be integers"):
        parse_labels([True], 10)
    assert issubclass(LabelError, GenlabError)


def test_a_shipped_model_opens_with_its_card_and_writes_outside_the_package():
    run = genlab.Run("pretrained:vae-mnist")
    assert run.is_pretrained and run.name == "vae-mnist" and run.model_name == "vae"
    assert run.output_dir == Path("pretrained-vae-mnist") and run.card["name"] == "vae-mnist"
    assert run.data_name() == "mnist" and run.data_name("fashion-mnist") == "fashion-mnist"
    assert run.data_spec.get("data_dir") is None
    model = run.model
    assert run.model is model and not model.training  # loaded once, in eval mode
    assert run.labels(None) is None


def test_a_saved_model_folder_opens_and_the_given_model_is_not_loaded_again(tmp_path):
    model = genlab.models.vae.VAE(genlab.models.vae.VAEConfig(image_shape=(1, 4, 4), latent_dim=2, hidden_dim=8))
    model.save(tmp_path / "m")
    run = Run(tmp_path / "m")
    assert run.output_dir == tmp_path / "m" and run.card is None and run.data_spec == {}
    assert run.data_name() == "mnist-5k"  # genlab's default data set when the folder names none
    loaded = run.model
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))
    assert Run(tmp_path / "m", model=model).model is model


def test_test_images_come_from_the_runs_data_shaped_for_the_model(shared_data):
    run = Run("pretrained:vae-mnist")
    g = torch.Generator().manual_seed(0)
    x01, x = run.test_images(4, g, data_dir=shared_data)
    assert x01.shape == (4, 1, 28, 28) and set(x.unique().tolist()) <= {0.0, 1.0}  # binarised for a Bernoulli VAE
    assert run.dataset("test", data_dir=shared_data) is run.dataset("test", data_dir=shared_data)  # loaded once


def test_not_a_run_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="is not a directory"):
        Run(tmp_path / "nothing")
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "config.json").write_text('{"hello": 1}')
    with pytest.raises(CheckpointError, match="not a genlab model config"):
        Run(tmp_path / "x")
