"""Each model owns its recipe: its module holds ``TRAIN_DEFAULTS``, ``PRESETS`` and (where it is not
genlab's) ``DEFAULT_DATA`` beside its config class, and registering it is one line in
``genlab/registry.py`` (CONTRIBUTING.md, 'Adding a model', steps 1 and 2). A toy model written here
follows those steps and runs through the registry like a shipped one; every registered model's module
holds its recipe, and ``genlab/presets.py`` holds no model's table."""

from __future__ import annotations

import dataclasses
import importlib.util
import re
import sys
import types

import pytest

from genlab import presets, registry
from genlab.cli import main
from genlab.config import DEFAULT_DATA, TrainConfig
from genlab.errors import ConfigError
from genlab.presets import Preset

#: A model module as CONTRIBUTING.md's checklist asks for it: config, recipe beside it, model.
TOY_MODULE = """
from dataclasses import dataclass

from torch import nn

from genlab.config import ModelConfig
from genlab.models.base import GenerativeModel, TrainStep
from genlab.presets import Preset

DEFAULT_DATA = "digits"


@dataclass
class ToyRecipeConfig(ModelConfig):
    hidden: int = 16


TRAIN_DEFAULTS = {"lr": 5e-4, "betas": (0.5, 0.9), "batch_size": 8}

PRESETS = {
    "small": Preset({"model.hidden": 4, "train.steps": 30}, source="tests/test_registry_recipes.py: a toy's preset"),
}


class ToyRecipe(GenerativeModel):
    config_class = ToyRecipeConfig

    def __init__(self, config):
        super().__init__(config)
        self.net = nn.Linear(self.num_dims, config.hidden)

    def train_steps(self):
        return [TrainStep("fit", [self], lambda batch: {"loss": self.net(batch["x"].flatten(1)).pow(2).mean()})]
"""


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """The toy module, imported from a file, and registered in a copy of the registry (MODELS itself is kept)."""
    path = tmp_path / "toy_recipe.py"
    path.write_text(TOY_MODULE)
    spec = importlib.util.spec_from_file_location("toy_recipe", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    shipped = registry.MODELS
    entry = registry.entry_from(module, module.ToyRecipeConfig, module.ToyRecipe)  # the one registry line
    monkeypatch.setattr(registry, "MODELS", {**shipped, "toy-recipe": entry})
    yield module
    assert "toy-recipe" not in shipped


def test_a_models_module_and_one_registry_line_give_its_runs_their_recipe(toy):
    cfg, sources = registry.resolve_run_config("toy-recipe")
    assert (cfg.train.lr, tuple(cfg.train.betas), cfg.train.batch_size) == (5e-4, (0.5, 0.9), 8)
    assert cfg.train.steps == TrainConfig().steps and cfg.model.hidden == 16 and cfg.data.name == "digits"
    assert sources["train.lr"] == "toy-recipe's training defaults"
    assert sources["data.name"] == "toy-recipe's default data" and sources["model.hidden"] == "default"
    assert registry.train_config("toy-recipe").lr == 5e-4

    cfg, sources = registry.resolve_run_config("toy-recipe", preset="small", overrides=["train.batch_size=4"])
    assert (cfg.model.hidden, cfg.train.steps, cfg.train.lr, cfg.train.batch_size) == (4, 30, 5e-4, 4)
    assert sources["model.hidden"] == sources["train.steps"] == "preset 'small'"
    assert (
        registry.build_run_config("toy-recipe", preset="small")
        == registry.resolve_run_config("toy-recipe", preset="small")[0]
    )
    assert type(registry.build("toy-recipe", cfg.model)) is toy.ToyRecipe
    assert registry.get("toy-recipe") == (toy.ToyRecipeConfig, toy.ToyRecipe)


def test_the_toys_recipe_shows_in_print_config_and_its_presets(toy, capsys):
    main(["train", "toy-recipe", "--preset", "small", "--print-config"])
    out = capsys.readouterr().out
    assert re.search(r"model\.hidden = 4 +\(preset 'small'\)", out)
    assert re.search(r"train\.lr = 0\.0005 +\(toy-recipe's training defaults\)", out)
    main(["models", "toy-recipe"])
    assert "tests/test_registry_recipes.py: a toy's preset" in capsys.readouterr().out


def test_a_module_without_its_recipe_is_refused_by_name():
    bare = types.ModuleType("genlab_toy_bare")
    bare.TRAIN_DEFAULTS = {}
    with pytest.raises(ConfigError, match="genlab_toy_bare has no PRESETS"):
        registry.entry_from(bare, object, object)
    with pytest.raises(ConfigError, match="has no LSGAN_TRAIN_DEFAULTS or LSGAN_PRESETS"):
        registry.entry_from(bare, object, object, prefix="LSGAN_")
    bare.PRESETS = {}
    e = registry.entry_from(bare, object, object)
    assert (e.default_data, dict(e.train), dict(e.presets)) == (DEFAULT_DATA, {}, {})


def recipe_names(module: types.ModuleType, suffix: str) -> dict:
    return {k: v for k, v in vars(module).items() if k.endswith(suffix) and not k.startswith("_")}


@pytest.mark.parametrize("name", list(registry.MODELS))
def test_every_registered_models_module_holds_its_recipe(name):
    e = registry.entry(name)
    module = sys.modules[e.config_class.__module__]
    assert module.__name__.startswith("genlab.models.")
    assert isinstance(module.TRAIN_DEFAULTS, dict) and isinstance(module.PRESETS, dict)  # possibly empty
    train_fields = {f.name for f in dataclasses.fields(TrainConfig)}
    # the entry's recipe is one of the module's own (PRESETS or, where it holds several models, LSGAN_PRESETS, ...)
    assert any(e.train is t for t in recipe_names(module, "TRAIN_DEFAULTS").values())
    assert any(e.presets is p for p in recipe_names(module, "PRESETS").values())
    assert set(e.train) <= train_fields
    assert all(isinstance(p, Preset) and p.source.strip() for p in e.presets.values())
    if e.default_data != DEFAULT_DATA:
        assert e.default_data in recipe_names(module, "DEFAULT_DATA").values()


def test_presets_py_holds_only_what_models_share():
    shipped = set(registry.MODELS)
    for key, value in vars(presets).items():
        assert not isinstance(value, Preset), key  # every Preset lives in its model's module
        if isinstance(value, dict):
            assert not set(value) & shipped, key  # no table keyed by model name
    assert not {"PAPER", "BUDGET", "VAE_QUICKSTART"} & set(vars(presets))
    source = open(presets.__file__).read()
    assert not re.search(r'^\s*"(%s)": ' % "|".join(map(re.escape, shipped)), source, re.M)
