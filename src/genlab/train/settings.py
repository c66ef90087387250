"""What the train config means: its validation, the device it names and the
learning-rate schedule it describes."""

from __future__ import annotations

import math

import torch

from ..config import TrainConfig
from ..errors import ConfigError


def validate_train_config(c: TrainConfig) -> None:
    """Raise a ConfigError naming the field when a train setting is out of range."""
    if c.lr_schedule not in ("constant", "cosine"):
        raise ConfigError(f"train.lr_schedule={c.lr_schedule!r}; use constant or cosine")
    if c.lr_schedule == "cosine" and c.schedule_steps <= 0:
        raise ConfigError("train.lr_schedule=cosine needs train.schedule_steps > 0 (the step where the rate reaches 0), e.g. train.schedule_steps=10000")
    if c.warmup_steps < 0:
        raise ConfigError(f"train.warmup_steps must be >= 0, got {c.warmup_steps}")
    if c.batch_size < 1:
        raise ConfigError(f"train.batch_size must be >= 1, got {c.batch_size}")
    if c.steps < 0:
        raise ConfigError(f"train.steps must be >= 0, got {c.steps}")
    if not 0.0 <= c.ema_decay < 1.0:
        raise ConfigError(f"train.ema_decay must be in [0, 1) (0 disables EMA), got {c.ema_decay}")
    if c.lr <= 0:
        raise ConfigError(f"train.lr must be > 0, got {c.lr}")
    if not c.max_seconds >= 0 or c.max_seconds == float("inf"):
        raise ConfigError(f"train.max_seconds must be a finite number >= 0 (0 = no time budget), got {c.max_seconds}")
    if c.grad_clip < 0:
        raise ConfigError(f"train.grad_clip must be >= 0 (0 disables), got {c.grad_clip}")



def lr_factor(step: int, config: TrainConfig) -> float:
    """Multiplier of the base learning rate at (0-based) iteration ``step``:
    linear warm-up over ``warmup_steps``, then constant or cosine decay to 0 at
    ``schedule_steps``."""
    w = config.warmup_steps
    if w > 0 and step < w:
        return (step + 1) / w
    if config.lr_schedule == "cosine":
        span = max(1, config.schedule_steps - w)
        progress = min(1.0, max(0.0, (step - w) / span))
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    return 1.0


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``"auto"`` -> cuda (this process's GPU under torchrun) if available, else mps, else cpu."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank)
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"train.device: unknown device {name!r}; use auto, cpu, cuda, cuda:1 or mps") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"train.device={name!r} but CUDA is not available; use train.device=auto or cpu")
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", local_rank)
    return dev


def cpu_has_bf16() -> bool:
    """Whether this CPU has bfloat16 instructions (AVX512-BF16, AMX) for autocast."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False
