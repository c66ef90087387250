"""Test helpers for models with several players (GAN, ALI, CycleGAN, ...): parameter
snapshots, and a recorder of every player's weights at the start of each train step,
so a test can run the real Trainer and check that a step left the others bit-identical."""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn


def snapshot(*modules: nn.Module) -> dict[str, torch.Tensor]:
    """Copies of the parameters of ``modules``, keyed ``"<module index>.<name>"``."""
    return {f"{i}.{k}": p.detach().clone() for i, m in enumerate(modules) for k, p in m.named_parameters()}


def identical(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def record_steps(model, players: dict[str, nn.Module | tuple[nn.Module, ...]]) -> tuple[list, Callable[[], dict]]:
    """Wrap ``model.train_steps`` so that each step's loss first appends ``(step name,
    {player: snapshot})`` to the returned list. Also returns ``take()``, the snapshot of
    every player now (append ``("end", take())`` after training)."""
    seen: list = []
    original = model.train_steps

    def take() -> dict:
        return {k: snapshot(*(m if isinstance(m, tuple) else (m,))) for k, m in players.items()}

    def instrumented():
        steps = original()
        for s in steps:
            def loss(batch, inner=s.loss, name=s.name):
                seen.append((name, take()))
                return inner(batch)

            s.loss = loss
        return steps

    model.train_steps = instrumented
    return seen, take


def train_alone(model, module: nn.Module, step_name: str, make_batch: Callable[[], dict], steps: int,
                lr: float = 3e-3, decay_at: int | None = None) -> None:
    """Run only the model's train step ``step_name``, ``steps`` times on fresh batches, with
    Adam over ``module``'s parameters (the learning rate divided by 5 from ``decay_at`` on):
    e.g. a discriminator trained to its optimum against fixed other players."""
    (step,) = [s for s in model.train_steps() if s.name == step_name][:1]
    opt = torch.optim.Adam(module.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 1.0 if decay_at is None or k < decay_at else 0.2)
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        step.loss(make_batch())["loss"].backward()
        opt.step()
        sched.step()
