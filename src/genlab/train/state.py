"""Training state beside the weights: the optimiser, the global random streams
(seeding, capture, restore) and the exponential moving average of the weights."""

from __future__ import annotations

import random
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import CheckpointError
from .logs import trim_metrics


def seed_everything(seed: int) -> None:
    """Seed the global RNGs the models use (torch CPU and GPU, numpy, python random)."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def capture_rng(device: torch.device) -> dict:
    """The global RNG states (torch, numpy, python, and the device's own) as a dict."""
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    elif device.type == "mps" and hasattr(torch, "mps"):
        state["mps"] = torch.mps.get_rng_state()
    return state


def restore_rng(state: dict, device: torch.device) -> None:
    """Inverse of :func:`capture_rng`."""
    torch.set_rng_state(state["torch"].to(torch.uint8).cpu())
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"].to(torch.uint8).cpu(), device)
    if "mps" in state and device.type == "mps":
        torch.mps.set_rng_state(state["mps"].to(torch.uint8).cpu())


def adam(params, fused: bool = True, **hyper) -> torch.optim.Adam:
    """Adam (``hyper``: lr, betas, weight_decay); with ``fused`` (``train.fused_adam``) the
    fused kernel where torch has it for the parameters' device (CPU and CUDA): one pass
    over all tensors per step. On CPU torch's default is a Python loop over the tensors;
    fused, an optimiser step of the default conv VAE takes 1.2 ms instead of 7.7
    (benchmarks/README.md, 'Trainer overhead'). The same update rule, so the same run up
    to float rounding (which Adam magnifies only where a gradient is pure rounding noise,
    e.g. a bias just before a normalisation), as long as each gradient and moment has its
    parameter's memory layout: autograd's gradient layout contract gives that, and
    :func:`load_optimizer` does it for moments read from a checkpoint."""
    params = list(params)
    if fused:
        try:
            return torch.optim.Adam(params, fused=True, **hyper)
        except RuntimeError:  # a device without the fused kernel
            pass
    return torch.optim.Adam(params, **hyper)


def load_optimizer(opt: torch.optim.Optimizer, state: dict) -> None:
    """``opt.load_state_dict(state)`` (a resumed run keeps the implementation it was written
    with, fused or not, so it continues bit for bit), with every state tensor laid out in
    memory as its parameter is. The fused kernel walks the parameter, its gradient and its
    moments in memory order: a channels-last weight with moments read back in the standard
    layout got its updates at the wrong positions (masked weights of a PixelCNN moved); the
    Python-loop Adam indexes by element."""
    opt.load_state_dict(state)
    for g in opt.param_groups:
        for p in g["params"]:
            for k, v in opt.state.get(p, {}).items():
                if torch.is_tensor(v) and v.shape == p.shape and v.stride() != p.stride():
                    opt.state[p][k] = torch.empty_like(p, dtype=v.dtype).copy_(v)


class EMA:
    """Exponential moving average of every floating parameter and buffer, kept in
    float32 (integer buffers are copied): ``ema <- decay * ema + (1 - decay) * value``."""

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.shadow = {
            k: (v.detach().float().clone() if v.is_floating_point() else v.detach().clone())
            for k, v in model.state_dict().items()
        }

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """shadow <- decay * shadow + (1 - decay) * weights, for every floating-point tensor of ``model``."""
        w = 1.0 - self.decay
        for k, v in model.state_dict().items():
            s = self.shadow[k]
            if v.is_floating_point():
                s.lerp_(v.float(), w)
            else:
                s.copy_(v)

    def weights_like(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """The EMA weights cast to the dtypes of ``model``'s state_dict."""
        ref = model.state_dict()
        return {k: v.to(ref[k].dtype) for k, v in self.shadow.items()}

    def load(self, weights: dict[str, torch.Tensor]) -> None:
        """Replace the shadow weights with ``weights`` (a checkpoint's); CheckpointError when they do not match."""
        if set(weights) != set(self.shadow):
            raise CheckpointError("the EMA weights in the checkpoint do not match this model's parameters")
        for k, v in weights.items():
            self.shadow[k].copy_(v)


def training_state(trainer) -> dict:
    """Everything of a :class:`~genlab.train.trainer.Trainer` beside its weights that a
    resumed run needs to continue bit-identically: step, training time (seconds), data
    position, optimiser moments, schedules and gradient scalers (RNG states are added
    by the caller, gathered from every process)."""
    return {
        "step": trainer.step,
        "elapsed": trainer._elapsed,
        "data": {
            "epoch": trainer.epoch,
            "batch_index": trainer._batch_index,
            "started": trainer._perm is not None,
            "generator": trainer._epoch_gen_state,
        },
        "optimizers": {k: o.state_dict() for k, o in trainer.optimizers.items()},
        "schedulers": {k: s.state_dict() for k, s in trainer.schedulers.items()},
        "scalers": {k: s.state_dict() for k, s in trainer.scalers.items()},
        "world_size": trainer.dist.world_size,
        "batch_size": trainer.config.batch_size,
    }


def apply_training_state(trainer, weights: dict, state: dict, where: Path) -> None:  # noqa: C901
    """Load a checkpoint's weights (by file stem) and :func:`training_state` (plus "rng")
    into ``trainer``; a CheckpointError when they do not fit its model and steps."""
    expected = trainer.model.state_dict()
    got = trainer.model.upgrade_state_dict(weights.get("model", {}))
    bad = sorted(set(expected) ^ set(got)) + sorted(
        k for k in set(expected) & set(got) if expected[k].shape != got[k].shape
    )
    if bad:
        raise CheckpointError(f"the checkpoint {where} does not fit this model (mismatched weights: {bad[:5]})")
    if (trainer.ema is not None) != ("ema" in weights):
        warnings.warn(
            f"train.ema_decay changed since {where} was written; the EMA "
            f"{'starts from the current weights' if trainer.ema is not None else 'is dropped'}",
            stacklevel=3,
        )
    if set(state["optimizers"]) != set(trainer.optimizers):
        raise CheckpointError(
            f"the checkpoint {where} has optimisers for steps {sorted(state['optimizers'])}, this "
            f"model has {sorted(trainer.optimizers)}"
        )
    if state.get("batch_size") != trainer.config.batch_size:
        warnings.warn(
            f"train.batch_size changed since {where} was written; the data order will differ from an uninterrupted run",
            stacklevel=3,
        )
    with torch.no_grad():
        trainer.model.load_state_dict(got)
    if trainer.ema is not None:
        if "ema" in weights:
            trainer.ema.load(trainer.model.upgrade_state_dict(weights["ema"]))
        else:
            trainer.ema = EMA(trainer.model, trainer.config.ema_decay)
    for k, opt in trainer.optimizers.items():
        load_optimizer(opt, state["optimizers"][k])
    for k, sch in trainer.schedulers.items():
        sch.load_state_dict(state["schedulers"][k])
    for k, sc in trainer.scalers.items():
        if k in state.get("scalers", {}):
            sc.load_state_dict(state["scalers"][k])
    trainer.step = int(state["step"])
    trainer._elapsed = float(state.get("elapsed", 0.0))
    data = state["data"]
    trainer.epoch, trainer._batch_index = int(data["epoch"]), int(data["batch_index"])
    trainer._epoch_gen_state = data["generator"].to(torch.uint8)
    trainer._data_gen.set_state(trainer._epoch_gen_state)
    trainer._perm = torch.randperm(trainer._images.shape[0], generator=trainer._data_gen) if data["started"] else None
    rngs = state["rng"]
    if len(rngs) == trainer.dist.world_size:
        restore_rng(rngs[trainer.dist.rank], trainer.device)
    else:
        warnings.warn(
            f"{where} was written by {len(rngs)} processes, this run has "
            f"{trainer.dist.world_size}: the random streams are re-seeded",
            stacklevel=3,
        )
        seed_everything(trainer.config.seed + 1000 * trainer.step + trainer.dist.rank)
    trainer._last_checkpoint_step = trainer.step
    if trainer.dist.is_main:
        trim_metrics(trainer.run_dir / "metrics.jsonl", trainer.step)
