"""The toy models of the Trainer tests and their helpers: ToyData (an in-memory stand-in for
an image data set), ToyConfig and three tiny models on it (NoisyAE: one step with noise and
dropout; ToyGAN: two steps; LinearModel: deterministic), TOY_MODELS and ``register_toys`` to put
them in the registry (the ``toys`` fixture of conftest.py does it for one test; a child process
calls it itself), and ``tcfg`` / ``run_cfg`` / ``params_of`` / ``assert_bit_identical`` /
``train_direct`` for short runs and bit-identical comparisons."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from genlab.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from genlab.models.base import GenerativeModel, TrainStep
from genlab.registry import ModelEntry


class ToyData:
    """Duck-typed stand-in for genlab.data.ImageDataset."""

    def __init__(self, n: int = 96, shape=(1, 6, 6), num_classes: int = 3, seed: int = 0, labelled: bool = True):
        g = torch.Generator().manual_seed(seed)
        self.images = torch.randint(0, 256, (n, *shape), generator=g, dtype=torch.uint8)
        self.labels = torch.arange(n) % num_classes if labelled else None
        self.num_classes = num_classes if labelled else 0
        self.shape = tuple(shape)


@dataclass
class ToyConfig(ModelConfig):
    hidden: int = 16
    dropout: float = 0.2
    noise: float = 0.1


class NoisyAE(GenerativeModel):
    """One step; uses the global RNG (reparameterisation-like noise, dropout)."""

    config_class = ToyConfig

    def __init__(self, config: ToyConfig):
        super().__init__(config)
        d = self.num_dims
        self.enc = nn.Sequential(nn.Flatten(), nn.Linear(d, config.hidden), nn.Tanh(), nn.Dropout(config.dropout))
        self.dec = nn.Linear(config.hidden, d)

    def train_steps(self):
        return [TrainStep("ae", [self], self.loss)]

    def loss(self, batch):
        h = self.enc(batch["x"])
        h = h + self.config.noise * torch.randn_like(h)
        rec = torch.sigmoid(self.dec(h))
        loss = ((rec - batch["x"].flatten(1)) ** 2).mean()
        return {"loss": loss, "mse": loss.detach()}

    @torch.inference_mode()
    def sample(self, n, *, generator=None, labels=None):
        h = torch.randn(n, self.config.hidden, generator=generator, device=self.device)
        return torch.sigmoid(self.dec(h)).view(n, *self.config.image_shape)


class ToyGAN(GenerativeModel):
    """Two steps: "d" updates D, "g" updates G; each loss touches both modules.
    ``snapshots`` records every parameter at the start of each step's loss."""

    config_class = ToyConfig

    def __init__(self, config: ToyConfig):
        super().__init__(config)
        d = self.num_dims
        self.G = nn.Sequential(nn.Linear(4, config.hidden), nn.ReLU(), nn.Linear(config.hidden, d))
        self.D = nn.Sequential(nn.Linear(d, config.hidden), nn.ReLU(), nn.Linear(config.hidden, 1))
        self.snapshots: list | None = None

    def _record(self, name):
        if self.snapshots is not None:
            self.snapshots.append(
                (
                    name,
                    {k: v.detach().clone() for k, v in self.named_parameters()},
                    {k: v.grad for k, v in self.named_parameters()},
                    {k: v.requires_grad for k, v in self.named_parameters()},
                )
            )

    def train_steps(self):
        return [TrainStep("d", [self.D], self.d_loss), TrainStep("g", [self.G], self.g_loss)]

    def fake(self, n):
        return torch.tanh(self.G(torch.randn(n, 4, device=self.device)))

    def d_loss(self, batch):
        self._record("d")
        x = batch["x"].flatten(1)
        # deliberately NOT detached: the Trainer's freezing must keep G untouched
        fake = self.fake(x.shape[0])
        sp = nn.functional.softplus
        loss = sp(-self.D(x)).mean() + sp(self.D(fake)).mean()
        return {"loss": loss}

    def g_loss(self, batch):
        self._record("g")
        fake = self.fake(batch["x"].shape[0])
        return {"loss": nn.functional.softplus(-self.D(fake)).mean()}

    def sample(self, n, *, generator=None, labels=None):
        raise NotImplementedError


class LinearModel(GenerativeModel):
    """Deterministic (no noise, no dropout, no batchnorm): for distributed equivalence."""

    config_class = ToyConfig

    def __init__(self, config: ToyConfig):
        super().__init__(config)
        d = self.num_dims
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(d, config.hidden), nn.Tanh(), nn.Linear(config.hidden, d))

    def train_steps(self):
        return [TrainStep("mse", [self.net], lambda b: {"loss": ((self.net(b["x"]) - b["x"].flatten(1)) ** 2).mean()})]


TOY_MODELS = {
    "toy-ae": ModelEntry(ToyConfig, NoisyAE),
    "toy-gan": ModelEntry(ToyConfig, ToyGAN),
    "toy-linear": ModelEntry(ToyConfig, LinearModel),
}


def register_toys() -> list[str]:
    """Add the toy models to the registry dict of this process; returns the keys added. Only for the
    child processes a test starts (a SIGKILL'd training, torchrun workers), which end with them; tests
    themselves use the ``toys`` fixture, which leaves genlab's registry as it was."""
    from genlab import registry

    added = [k for k in TOY_MODELS if k not in registry.MODELS]
    registry.MODELS.update(TOY_MODELS)
    return added


def tcfg(**kw) -> TrainConfig:
    """A short CPU TrainConfig (12 steps of 16, no logging, samples or checkpoints) with ``kw`` over it."""
    base = dict(
        steps=12,
        batch_size=16,
        lr=1e-2,
        log_every=0,
        sample_every=0,
        checkpoint_every=0,
        progress=False,
        device="cpu",
        keep_checkpoints=2,
    )
    base.update(kw)
    return TrainConfig(**base)


def run_cfg(model="toy-ae", data="toy", **train) -> RunConfig:
    """A RunConfig of a registered toy model (``register_toys`` first) with ``tcfg(**train)``."""
    return RunConfig(model_name=model, model=ToyConfig(), train=tcfg(**train), data=DataConfig(name=data))


def params_of(model) -> dict[str, torch.Tensor]:
    """Copies of every tensor in ``model``'s state dict."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_bit_identical(a: dict, b: dict) -> None:
    """The same keys, and every tensor equal to the bit."""
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs"


def train_direct(model_cls, cfg, run_dir, data, steps, resume_from_dir=None, **model_kw):
    """A Trainer of ``model_cls`` (ToyConfig with ``model_kw``, seed 123) fitted to ``steps`` in ``run_dir``,
    restored from its newest checkpoint first when ``resume_from_dir`` is given; returns the Trainer."""
    from genlab.train import Trainer

    torch.manual_seed(123)
    model = model_cls(ToyConfig(image_shape=data.shape, **model_kw))
    t = Trainer(model, data, cfg, run_dir)
    if resume_from_dir is not None:
        assert t.restore() is not None
    t.fit(steps)
    return t
