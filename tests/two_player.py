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


def train_alone(
    model,
    module: nn.Module,
    step_name: str,
    make_batch: Callable[[], dict],
    steps: int,
    lr: float = 3e-3,
    decay_at: int | None = None,
) -> None:
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


def gradient_probe(model, step_name: str, batch: dict) -> set[str]:
    """Run the model's train step ``step_name`` once with **nothing frozen** and backward
    its loss; return the names of the model's players (its direct child modules that hold
    parameters) that received a non-zero gradient.

    A discriminator step must return only the discriminators: its fakes are made without a
    graph, so no gradient can reach the other players even where the Trainer would not
    freeze them (the Trainer's snapshot tests cannot see such a leak, because every step
    zeroes its own gradients first). A generator step must reach every player it trains
    (and, through the scores, the discriminators, which the Trainer freezes for it)."""
    model.zero_grad(set_to_none=True)
    (step,) = [s for s in model.train_steps() if s.name == step_name][:1]
    step.loss(batch)["loss"].backward()
    got = set()
    for name, child in model.named_children():
        if any(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in child.parameters()):
            got.add(name)
    model.zero_grad(set_to_none=True)
    return got
