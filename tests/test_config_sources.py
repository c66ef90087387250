"""``genlab train ... --print-config``: every resolved value and the layer that set it."""

from __future__ import annotations

from genlab import registry
from genlab.cli import main


def test_each_layer_is_named_as_the_source_of_the_values_it_set():
    cfg, src = registry.resolve_run_config(
        "gan", data="ring8", overrides=["train.lr=1e-4", "train.steps=7"], flags={"train.steps": "--steps"}
    )
    assert src["train.weight_decay"] == "default"  # the config class
    assert src["train.betas"] == "gan's training defaults" and cfg.train.betas == (0.5, 0.999)
    assert src["model.penalty"] == "preset 'points' (for data ring8)"  # applied because of the data set
    assert src["data.name"] == "--data"
    assert src["train.lr"] == "--set" and cfg.train.lr == 1e-4
    assert src["train.steps"] == "--steps" and cfg.train.steps == 7
    assert set(src) == set(registry.flat_config(cfg))  # every field has a source


def test_a_named_preset_and_the_default_data_are_sources_and_set_wins_over_the_preset():
    cfg, src = registry.resolve_run_config("vae", preset="mnist-10min", overrides=["train.batch_size=64"])
    assert src["train.lr"] == "preset 'mnist-10min'" and cfg.train.lr == 2e-3
    assert src["train.batch_size"] == "--set" and cfg.train.batch_size == 64
    assert src["data.name"] in ("preset 'mnist-10min'", "vae's default data")
    cfg, src = registry.resolve_run_config("vae")
    assert src["data.name"] == "vae's default data"
    assert cfg == registry.build_run_config("vae")


def test_flat_config_walks_nested_mappings():
    cfg = registry.build_run_config("dcgan", overrides=["train.step_lr.discriminator=4e-4"])
    flat = registry.flat_config(cfg)
    assert flat["train.step_lr.discriminator"] == 4e-4 and "train.step_lr" not in flat
    assert flat["train.step_betas"] == {}  # an empty mapping is one value


def test_print_config_prints_every_value_with_its_source_and_trains_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    main(["train", "vae", "--preset", "mnist-10min", "--steps", "3", "--set", "model.latent_dim=4", "--print-config"])
    out = capsys.readouterr().out
    lines = {line.split(" = ")[0]: line for line in out.splitlines() if " = " in line}
    assert lines["train.steps"].endswith("(--steps)") and " = 3 " in lines["train.steps"]
    assert lines["model.latent_dim"].endswith("(--set)") and lines["train.lr"].endswith("(preset 'mnist-10min')")
    assert lines["model.beta"].endswith("(default)")
    assert not list(tmp_path.iterdir())  # no run folder, no data download


def test_print_config_refuses_an_unknown_preset(capsys):
    assert main(["train", "vae", "--preset", "nope", "--print-config"]) != 0
    assert "unknown preset 'nope'" in capsys.readouterr().err
