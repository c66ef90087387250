"""One contract over every registered model: declared attributes, the signature of
every contract method it provides (``genlab.models.base``), what each capability
returns, tiny build, finite loss, backward, sample shape and range, save/load round
trip, seed determinism, and the rule that models never step optimisers themselves.

A new registry entry fails here until it has a TINY config in tests/tiny.py and keeps the contract.
"""

from __future__ import annotations

import dataclasses
import inspect

import pytest
import torch

import genlab
from genlab import registry
from genlab.config import ModelConfig
from genlab.models.base import CONTRACT_METHODS, DATA_KINDS, LIKELIHOOD_KINDS, GenerativeModel, TrainStep
from tiny import TINY, build


def test_every_registered_model_has_a_tiny_config():
    assert set(TINY) == set(registry.MODELS), "add a TINY config for each new registry entry"


def batch_for(model: GenerativeModel, n: int = 4, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    x01 = torch.randint(0, 256, (n, *model.config.image_shape), generator=g).float() / 255
    y = torch.arange(n) % model.config.num_classes if model.config.num_classes else None
    return {"x": model.prepare(x01, generator=g), "y": y}


@pytest.fixture(params=sorted(TINY))
def name(request):
    return request.param


def test_train_steps_give_finite_losses_and_gradients_to_their_modules(name):
    torch.manual_seed(0)
    model = build(name).train()
    steps = model.train_steps()
    assert steps and all(isinstance(s, TrainStep) for s in steps)
    for step in steps:
        model.zero_grad(set_to_none=True)
        out = step.loss(batch_for(model))
        assert out["loss"].dim() == 0 and torch.isfinite(out["loss"]), (name, step.name)
        out["loss"].backward()
        grads = [p.grad for p in step.parameters()]
        assert any(g is not None and g.abs().sum() > 0 for g in grads), f"{name}/{step.name} trains nothing"


def test_sample_shape_range_and_seed_determinism(name):
    torch.manual_seed(0)
    model = build(name).eval()
    a = model.sample(3, generator=torch.Generator().manual_seed(1))
    b = model.sample(3, generator=torch.Generator().manual_seed(1))
    assert a.shape == (3, *model.config.image_shape)
    assert a.min() >= 0 and a.max() <= 1
    assert torch.equal(a, b)


def test_save_load_round_trip(name, tmp_path):
    torch.manual_seed(0)
    model = build(name).eval()
    model.save(tmp_path)
    loaded = genlab.load(tmp_path)
    assert type(loaded) is type(model) and loaded.config == model.config
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k]), k
    g1, g2 = torch.Generator().manual_seed(2), torch.Generator().manual_seed(2)
    assert torch.equal(model.sample(2, generator=g1), loaded.sample(2, generator=g2))


@pytest.mark.slow
def test_log_prob_is_finite_nats_per_example(name):
    model = build(name).eval()
    if model.likelihood_kind == "none":
        pytest.skip(f"{name} has no likelihood")
    lp = model.log_prob(batch_for(model)["x"])
    assert lp.shape == (4,) and torch.isfinite(lp).all() and (lp <= 1e-4).all()


def test_wrong_image_shape_is_a_clear_error(name):
    model = build(name).eval()
    c, h, w = model.config.image_shape
    bad = torch.zeros(2, c, h + 1, w)
    caps = model.capabilities
    fn = (
        model.log_prob
        if "log_prob" in caps
        else model.discriminate
        if "discriminate" in caps
        else lambda x: model.translate(x, "a2b")
    )
    with pytest.raises(ValueError, match="shape"):
        fn(bad)


def test_models_never_step_optimisers(name, monkeypatch):
    """The Trainer alone calls backward() and step(): a model's loss only computes."""
    model = build(name).train()
    calls = []
    monkeypatch.setattr(torch.Tensor, "backward", lambda *a, **k: calls.append("backward"))
    monkeypatch.setattr(torch.optim.Optimizer, "step", lambda *a, **k: calls.append("step"))
    for step in model.train_steps():
        step.loss(batch_for(model))
    assert calls == []


def test_config_json_round_trip(name):
    from genlab.config import from_dict, to_dict

    model = build(name)
    again = from_dict(type(model.config), to_dict(model.config))
    assert again == model.config and dataclasses.is_dataclass(again)


# --------------------------------------------------------------------------- the declared contract

#: Methods every model has, with the base class's signature where it overrides them.
ALWAYS = ("train_steps", "prepare", "begin_iteration", "likelihood_description")


def signature_problems(cls: type, method: str) -> list[str]:
    """How ``cls.method`` differs from ``GenerativeModel.method``: the same positional
    parameters (names, kinds, defaults), every keyword-only parameter of the base with
    its default, and nothing else but extra keyword-only parameters with defaults."""
    base = inspect.signature(getattr(GenerativeModel, method)).parameters
    own = inspect.signature(getattr(cls, method)).parameters
    where = f"{cls.__name__}.{method}"
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    want = [(p.name, p.kind, p.default) for p in base.values() if p.kind in positional]
    got = [(p.name, p.kind, p.default) for p in own.values() if p.kind in positional]
    problems = (
        []
        if got == want
        else [f"{where}: positional parameters {[g[0] for g in got]}, the contract has {[w[0] for w in want]}"]
    )
    for p in own.values():
        if p.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            problems.append(f"{where}: *{p.name} is not in the contract")
        elif p.kind is inspect.Parameter.KEYWORD_ONLY and p.name not in base and p.default is inspect.Parameter.empty:
            problems.append(f"{where}: its own keyword-only {p.name!r} needs a default")
    for p in base.values():
        if p.kind is not inspect.Parameter.KEYWORD_ONLY:
            continue
        mine = own.get(p.name)
        if mine is None or mine.kind is not inspect.Parameter.KEYWORD_ONLY or mine.default != p.default:
            problems.append(f"{where}: needs the keyword-only parameter {p.name}={p.default!r}")
    return problems


def contract_problems(model: GenerativeModel) -> list[str]:  # noqa: C901
    """Every way ``model`` breaks the contract of ``genlab.models.base`` (empty: it keeps it)."""
    cls, caps = type(model), model.capabilities
    problems = []
    if model.data_kind not in DATA_KINDS:
        problems.append(f"data_kind {model.data_kind!r} is not one of {DATA_KINDS}")
    if model.likelihood_kind not in LIKELIHOOD_KINDS:
        problems.append(f"likelihood_kind {model.likelihood_kind!r} is not one of {LIKELIHOOD_KINDS}")
    if not isinstance(model.importance_sampled, bool) or (
        model.importance_sampled and model.likelihood_kind != "bound"
    ):
        problems.append(
            f"importance_sampled {model.importance_sampled!r} must be a bool, True only for likelihood_kind 'bound'"
        )
    if model.likelihood_kind != "none":
        text = model.likelihood_description(7 if model.importance_sampled else None)
        if not isinstance(text, str) or not text or text.endswith("."):
            problems.append(f"likelihood_description must be a non-empty phrase without a final period, got {text!r}")
        elif model.importance_sampled and "k = 7" not in text:
            problems.append(f"an importance-sampled model's likelihood_description must state k, got {text!r}")
    if model.input_mode not in ("binary", "dequantize", "signed", "unit"):
        problems.append(f"input_mode {model.input_mode!r} is unknown")
    shape = tuple(model.config.image_shape)
    shapes = {
        "image": len(shape) == 3 and shape[1] > 1,
        "sequence": len(shape) == 3 and shape[1] == 1,
        "points": len(shape) == 1,
    }
    if not shapes.get(model.data_kind, True):
        problems.append(f"data_kind {model.data_kind!r} does not fit image_shape {shape}")
    if (model.likelihood_kind != "none") != ("log_prob" in caps):
        problems.append(
            f"likelihood_kind {model.likelihood_kind!r} but log_prob "
            f"{'is' if 'log_prob' in caps else 'is not'} provided"
        )
    if "sample" not in caps:
        problems.append("every model samples: sample is not provided")
    if caps & {"latent", "encode", "decode"}:
        try:
            ls = tuple(model.latent_shape)
        except NotImplementedError:
            ls = ()
        if not ls or not all(isinstance(d, int) and d > 0 for d in ls):
            problems.append(f"a latent model needs latent_shape, a tuple of positive ints, got {ls!r}")
    for method in CONTRACT_METHODS + ALWAYS:
        if getattr(cls, method) is not getattr(GenerativeModel, method):
            problems += signature_problems(cls, method)
    return problems


def test_every_registered_model_keeps_the_contract(name):
    model = build(name)
    assert contract_problems(model) == [], name
    for kw in ({"image_shape": (2,)},) if name == "gan" else ():  # the GAN on points: data_kind follows the config
        points = build(name, **kw)
        assert points.data_kind == "points" and contract_problems(points) == []


def test_a_model_that_breaks_the_contract_fails_the_check():
    class Broken(GenerativeModel):
        data_kind = "video"
        likelihood_kind = "exact"  # but no log_prob
        importance_sampled = True  # an exact likelihood is not importance-sampled

        def likelihood_description(self, k):  # iw_samples renamed, no default
            return "exact."

        def sample(self, n, generator=None):  # generator positional, no labels
            return torch.zeros(n, *self.config.image_shape)

        def decode(self, z, labels, **kwargs):  # labels positional and required, **kwargs
            return z

        def encode(self, x, *, level):  # an extra keyword without a default
            return x

    problems = contract_problems(Broken(ModelConfig(image_shape=(1, 4, 4))))
    expected = [
        "data_kind 'video'",
        "likelihood_kind 'exact' but log_prob is not provided",
        "Broken.sample: positional",
        "Broken.sample: needs the keyword-only parameter labels=None",
        "Broken.decode: positional",
        "Broken.decode: *kwargs",
        "Broken.decode: needs the keyword-only parameter generator=None",
        "Broken.encode: its own keyword-only 'level'",
        "a latent model needs latent_shape",
        "importance_sampled True must be a bool, True only",
        "Broken.likelihood_description: positional",
        "without a final period",
    ]
    for text in expected:
        assert any(text in p for p in problems), (text, problems)

    class Kept(GenerativeModel):  # the same toy written to the contract, with an extra keyword of its own
        @property
        def latent_shape(self):
            return (3,)

        def sample(self, n, *, labels=None, generator=None, temperature=1.0):
            return torch.zeros(n, *self.config.image_shape)

        def decode(self, z, *, generator=None, labels=None):
            return torch.zeros(len(z), *self.config.image_shape)

    kept = Kept(ModelConfig(image_shape=(1, 4, 4)))
    assert contract_problems(kept) == [] and kept.capabilities == {"sample", "decode"}


@pytest.mark.slow
def test_each_capability_answers_with_the_documented_shapes(name):
    """What ``capabilities`` promises works: codes of latent_shape, decoded data of the
    model's shape in [0, 1], reconstructions, critic scores and translations."""
    torch.manual_seed(0)
    model = build(name).eval()
    caps, shape = model.capabilities, tuple(model.config.image_shape)
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    labels = torch.arange(2) % model.config.num_classes if model.config.num_classes else None
    x = batch_for(model, n=2)["x"]
    if "latent" in caps:
        z = model.latent(2, generator=g())
        assert z.shape == (2, *model.latent_shape) and torch.equal(z, model.latent(2, generator=g()))
    if "encode" in caps:
        assert model.encode(x).shape == (2, *model.latent_shape)
    if "decode" in caps:
        out = model.decode(torch.zeros(2, *model.latent_shape), labels=labels, generator=g())
        assert out.shape == (2, *shape) and out.min() >= 0 and out.max() <= 1
    if "reconstruct" in caps:
        rec = model.reconstruct(x)
        assert rec.shape == x.shape and rec.min() >= 0 and rec.max() <= 1
    if "discriminate" in caps:
        assert model.discriminate(x, labels=labels).shape == (2,)
    if "log_prob" in caps:
        lp = model.log_prob(x, labels=labels, iw_samples=None, generator=g())
        assert lp.shape == (2,) and torch.equal(lp, model.log_prob(x, labels=labels, iw_samples=None, generator=g()))
    if "translate" in caps:
        one = torch.rand(2, model.domain_channels, *shape[1:])
        assert model.translate(one, "a2b").shape == one.shape
    model.begin_iteration(0)  # every model takes the Trainer's hook


def test_callers_decide_from_the_contract_not_from_model_types():
    """cli, app, viz, metrics, ood and the Trainer never inspect signatures, test a model's
    class or probe it for methods: they read capabilities, data_kind and likelihood_kind."""
    import re
    from pathlib import Path

    src = Path(genlab.__file__).parent
    guess = re.compile(r"isinstance\([\w.]*model\b|inspect\.signature|_accepts|(hasattr|getattr)\((self\.)?model\b")
    files = [src / "cli.py", src / "commands.py", src / "report.py"] + [
        f for d in ("app", "viz", "metrics", "train", "ood") for f in sorted((src / d).rglob("*.py"))
    ]
    files += [src / "ood.py"] if (src / "ood.py").exists() else []
    found = [
        f"{f.relative_to(src)}:{i}: {line.strip()}"
        for f in files
        for i, line in enumerate(f.read_text().splitlines(), 1)
        if guess.search(line)
    ]
    assert found == []
