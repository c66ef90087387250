"""Configuration in one place: the registry's defaults and presets, one builder for the CLI and
the Python API, optimiser settings in ``train`` for every model, one naming scheme, one
validation style, older field names mapped with a deprecation warning."""

from __future__ import annotations

import dataclasses
import json
import typing
import warnings

import pytest
import torch

from genlab import compat, registry
from genlab.config import (
    ModelConfig,
    RunConfig,
    TrainConfig,
    apply_overrides,
    model_config_from_dict,
    run_config_from_dict,
    to_dict,
)
from genlab.errors import ConfigError
from genlab.io import load_tensors
from tiny import TINY


def fit(name: str, **overrides) -> RunConfig:
    """The registry's run config of ``name`` with the contract suite's tiny model."""
    cfg = registry.build_run_config(name, overrides={f"model.{k}": v for k, v in TINY[name].items()})
    return apply_overrides(cfg, overrides)


class Fake:
    """A data set shaped for ``config``: uint8 images, or float points for (D,)-shaped models."""

    def __init__(self, config, n: int = 8):
        shape = tuple(config.image_shape)
        self.images = (
            torch.randn(n, *shape) if len(shape) == 1 else torch.randint(0, 256, (n, *shape), dtype=torch.uint8)
        )
        self.labels = torch.arange(n) % config.num_classes if config.num_classes else None


# --------------------------------------------------------------------------- one builder, CLI and Python


def test_cli_and_python_train_give_bit_identical_weights(tmp_path):
    from genlab.cli import main
    from genlab.train import train

    sets = ["train.log_every=0", "train.progress=false", "model.hidden_dim=32"]
    argv = ["train", "gan", "--data", "ring8", "--steps", "12", "--out", str(tmp_path / "cli")]
    assert main(argv + [a for s in sets for a in ("--set", s)]) == 0
    run = train("gan", data="ring8", overrides=sets + ["train.steps=12"], out_dir=str(tmp_path / "py"))
    a, b = load_tensors(tmp_path / "cli" / "model.safetensors"), load_tensors(run / "model.safetensors")
    assert sorted(a) == sorted(b) and all(torch.equal(a[k], b[k]) for k in a)
    doc = json.loads((run / "config.json").read_text())
    assert doc["train"]["batch_size"] == 256 and doc["train"]["lr"] == 1e-3  # the ring8 point preset, in Python too
    assert (
        doc["model"]["hidden_dim"] == 32 and doc["model"]["hidden_layers"] == 3
    )  # the user's flag wins, the rest stays


def test_set_train_lr_changes_what_a_gan_trains_with(tmp_path):
    from genlab.cli import main

    base = [
        "train",
        "gan",
        "--data",
        "ring8",
        "--steps",
        "4",
        "--set",
        "train.log_every=1",
        "--set",
        "train.progress=false",
        "--set",
        "train.lr_schedule=constant",
        "--set",
        "model.hidden_dim=16",
    ]
    assert main(base + ["--out", str(tmp_path / "a")]) == 0
    assert main(base + ["--set", "train.lr=3e-4", "--out", str(tmp_path / "b")]) == 0
    lines = [json.loads(x) for x in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert all(r["discriminator/lr"] == 3e-4 and r["generator/lr"] == 3e-4 for r in lines)
    lines = [json.loads(x) for x in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert all(r["discriminator/lr"] == 1e-3 for r in lines)  # the point preset's rate
    a, b = load_tensors(tmp_path / "a" / "model.safetensors"), load_tensors(tmp_path / "b" / "model.safetensors")
    assert not torch.equal(a["G.net.0.weight"], b["G.net.0.weight"])


@pytest.mark.parametrize("name", sorted(registry.MODELS))
def test_train_lr_and_betas_reach_every_optimiser_of_every_model(name, tmp_path):
    from genlab.train import Trainer

    cfg = fit(
        name,
        **{
            "train.lr": 1.5e-5,
            "train.betas": [0.25, 0.75],
            "train.batch_size": 4,
            "train.progress": False,
            "train.device": "cpu",
            "train.warmup_steps": 0,
        },
    )  # a warm-up (the vae quick start's) scales the first rate
    model = registry.build(name, cfg.model)
    trainer = Trainer(model, Fake(cfg.model), cfg.train, tmp_path)
    for opt in trainer.optimizers.values():
        assert opt.param_groups[0]["lr"] == 1.5e-5 and tuple(opt.param_groups[0]["betas"]) == (0.25, 0.75)
    other = next(iter(trainer.optimizers))  # one step's own rate leaves the others on train.lr
    step = Trainer(model, Fake(cfg.model), dataclasses.replace(cfg.train, step_lr={other: 7e-5}), tmp_path).optimizers
    assert [o.param_groups[0]["lr"] for o in step.values()] == [7e-5 if k == other else 1.5e-5 for k in step]


def test_the_registrys_training_defaults_are_the_papers():
    gan, progan, cyclegan = (registry.build_run_config(n).train for n in ("dcgan", "progan", "cyclegan"))
    assert (gan.lr, gan.betas) == (2e-4, (0.5, 0.999))
    assert (progan.lr, progan.betas) == (1e-3, (0.0, 0.99))
    assert (cyclegan.lr, cyclegan.betas, cyclegan.batch_size, cyclegan.steps) == (2e-4, (0.5, 0.999), 32, 600)
    assert registry.build_run_config("vae", data="mnist").train == TrainConfig()
    quick = registry.build_run_config("vae")  # the quick start: mnist-5k brings its data preset
    assert (quick.model.encoder, quick.model.decoder, quick.train.ema_decay, quick.train.steps) == (
        "mlp",
        "mlp",
        0.995,
        5000,
    )
    assert registry.build_run_config("cyclegan").data.name == "unpaired:mnist-5k,mnist-5k+invert"
    assert registry.build_run_config("vae").data.name == "mnist-5k"


def test_presets_apply_in_order_and_name_their_source(monkeypatch):
    for name in registry.MODELS:
        for preset in registry.entry(name).presets.values():
            assert preset.source.strip()
    ring = registry.build_run_config("gan", data="ring8")
    assert (ring.model.hidden_dim, ring.train.lr, ring.train.steps) == (256, 1e-3, 6000)
    assert registry.build_run_config("gan", overrides=["data.name=grid25"]).train.lr == 1e-3
    assert registry.build_run_config("gan").train.lr == 2e-4  # images: no point preset
    mine = registry.build_run_config("gan", data="ring8", overrides={"train.steps": 50, "model.hidden_dim": 8})
    assert (mine.train.steps, mine.train.schedule_steps, mine.model.hidden_dim) == (50, 6000, 8)
    # a named preset (e.g. a paper's) goes over the data preset and under the user's overrides
    paper = registry.Preset({"train.lr": 5e-5, "model.latent_dim": 3}, source="a paper, table 1")
    e = registry.entry("gan")
    monkeypatch.setitem(registry.MODELS, "gan", dataclasses.replace(e, presets={**e.presets, "paper": paper}))
    cfg = registry.build_run_config("gan", data="ring8", preset="paper", overrides=["model.latent_dim=4"])
    assert (cfg.train.lr, cfg.model.latent_dim, cfg.train.batch_size) == (5e-5, 4, 256)
    with pytest.raises(ConfigError, match="unknown preset 'papr' for gan; its presets: paper, points"):
        registry.build_run_config("gan", preset="papr")


def test_registry_entries_are_model_entries_and_get_gives_their_classes(monkeypatch):
    assert all(type(e) is registry.ModelEntry for e in registry.MODELS.values())
    e = registry.entry("gan")
    assert registry.get("gan") == (e.config_class, e.model_class)
    monkeypatch.setitem(registry.MODELS, "plain", registry.ModelEntry(e.config_class, e.model_class))
    assert registry.entry("plain").train == {} and registry.build_run_config("plain").train == TrainConfig()


def test_train_with_a_run_config_rejects_builder_arguments():
    from genlab.train import train

    with pytest.raises(ConfigError, match="go with a model name"):
        train(registry.build_run_config("vae"), overrides=["train.steps=1"])


# --------------------------------------------------------------------------- overrides and older names


def test_overrides_set_one_entry_of_a_mapping_and_keep_the_rest():
    cfg = registry.build_run_config(
        "gan",
        overrides=[
            "train.step_lr.discriminator=4e-4",
            "train.step_lr.generator=1e-4",
            'train.step_betas={"generator": [0.0, 0.9]}',
        ],
    )
    assert cfg.train.step_lr == {"discriminator": 4e-4, "generator": 1e-4}
    assert cfg.train.step_betas == {"generator": (0.0, 0.9)}
    with pytest.raises(ConfigError, match="train.lr is not a mapping"):
        apply_overrides(cfg, ["train.lr.generator=1"])
    with pytest.raises(ConfigError, match="expected a number"):
        apply_overrides(cfg, ["train.step_lr.generator=fast"])


def test_old_names_in_overrides_are_mapped_with_a_warning():
    with pytest.warns(DeprecationWarning, match="model.lr_d is deprecated: .* use train.step_lr.discriminator"):
        cfg = registry.build_run_config("dcgan", overrides=["model.lr_d=4e-4"])
    assert cfg.train.step_lr == {"discriminator": 4e-4} and cfg.train.lr == 2e-4
    with pytest.warns(DeprecationWarning, match="model.levels is deprecated: it is now model.latent_levels"):
        assert registry.build_run_config("ali", overrides=["model.levels=2"]).model.latent_levels == 2
    with pytest.warns(DeprecationWarning, match="model.lr is deprecated"):
        assert registry.build_run_config("progan", overrides=["model.lr=3e-3"]).train.lr == 3e-3
    with pytest.raises(ConfigError, match="both 'levels' .* and 'grey_levels'"):
        model_config_from_dict(registry.get("pixelcnn")[0], {"levels": 4, "grey_levels": 8})


def test_a_run_config_round_trips_through_json_without_warnings():
    cfg = registry.build_run_config("ali", overrides=["train.step_lr.discriminator=4e-4", "model.latent_levels=2"])
    doc = {
        "model_name": "ali",
        **{k: to_dict(v) for k, v in (("model", cfg.model), ("train", cfg.train), ("data", cfg.data))},
    }
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = run_config_from_dict(json.loads(json.dumps(doc)), registry.get("ali")[0])
    assert again == cfg


# --------------------------------------------------------------------------- one naming scheme, one validation style

#: names that meant different things in different models before (or moved to train)
RETIRED = {
    "levels",
    "hidden",
    "depth",
    "kernel",
    "kernel_size",
    "num_layers",
    "pixel_layers",
    "iaf_hidden",
    "lr",
    "betas",
    "lr_g",
    "lr_d",
    "betas_g",
    "betas_d",
}


@pytest.mark.parametrize("name", sorted(registry.MODELS))
def test_model_configs_follow_the_naming_scheme(name):
    config_cls = registry.get(name)[0]
    fields = {f.name for f in dataclasses.fields(config_cls)}
    assert not fields & RETIRED, (
        f"{name}: use grey_levels/latent_levels, hidden_dim, block_kernel, num_blocks; optimiser settings go in train"
    )
    renamed = compat.renamed_fields(config_cls)
    assert set(renamed.values()) <= fields and not set(renamed) & fields
    train_fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    for path in compat.moved_to_train(config_cls).values():
        head, _, key = path.partition(".")
        assert head in train_fields and (not key or typing.get_origin(typing.get_type_hints(TrainConfig)[head]) is dict)


@pytest.mark.parametrize("name", sorted(registry.MODELS))
def test_every_model_config_validates_when_built_with_a_config_error(name):
    config_cls = registry.get(name)[0]
    assert issubclass(config_cls, ModelConfig) and config_cls.validate is not ModelConfig.validate
    with pytest.raises(ConfigError, match="model.num_classes"):
        config_cls(num_classes=-1)
    good = config_cls(**TINY[name])
    with pytest.raises(ConfigError, match=r"model\.image_shape"):
        dataclasses.replace(good, image_shape=(0,) * len(good.image_shape))


@pytest.mark.parametrize(
    "bad, message",
    [
        (dict(latent_dim=0), "model.latent_dim must be >= 1"),
        (
            dict(likelihood="poisson"),
            "unknown model.likelihood 'poisson'; choose one of: bernoulli, logistic, gaussian",
        ),
        (dict(posterior="iaf", iaf_hidden_dim=0), "model.iaf_hidden_dim must be >= 1"),
        (dict(channels=()), "model.channels must list one positive width"),
    ],
)
def test_vae_config_errors_say_what_would_be_right(bad, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        registry.get("vae")[0](**bad)


@pytest.mark.parametrize(
    "bad, message",
    [
        (dict(lr=0.0), "train.lr must be > 0"),
        (dict(step_lr={"generator": -1.0}), "train.step_lr.generator must be > 0"),
        (dict(step_betas={"generator": (0.5, 1.0)}), r"train.step_betas.generator must be two numbers in \[0, 1\)"),
        (dict(lr_schedule="cosine"), "train.schedule_steps"),
        (dict(batch_size=0), "train.batch_size must be >= 1"),
    ],
)
def test_train_config_errors(bad, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**bad)


def test_data_config_errors():
    from genlab.config import DataConfig

    with pytest.raises(ConfigError, match="data.split must be train, test or all"):
        DataConfig(split="validation")
    with pytest.raises(ConfigError, match="data.name must name a data set"):
        registry.build_run_config("vae", overrides=['data.name=""'])


def test_train_config_lists_its_runtime_section_last():
    from genlab.config import RUNTIME_FIELDS

    names = [f.name for f in dataclasses.fields(TrainConfig)]
    assert names[-len(RUNTIME_FIELDS) :] == list(RUNTIME_FIELDS)  # optimisation first, then the runtime section
