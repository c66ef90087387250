"""What the train config means to the Trainer: the device it names and the
learning-rate schedule it describes (its values are checked by ``TrainConfig.validate``)."""

from __future__ import annotations

import math

import torch

from ..config import TrainConfig
from ..errors import ConfigError


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


def resolve_device(name: str, local_rank: int = 0, setting: str = "train.device") -> torch.device:
    """``"auto"`` -> cuda (this process's GPU under torchrun) if available, else mps, else cpu.
    Any other name must be a device this machine has; else a ConfigError naming ``setting``."""
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
        raise ConfigError(f"{setting}: unknown device {name!r}; use auto, cpu, cuda, cuda:1 or mps") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"{setting}={name!r} but CUDA is not available; use {setting}=auto or cpu")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ConfigError(
            f"{setting}={name!r} but this machine has {torch.cuda.device_count()} CUDA device(s); use cuda:0 "
            f"to cuda:{torch.cuda.device_count() - 1}"
        )
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError(f"{setting}={name!r} but MPS (Apple's GPU) is not available; use {setting}=auto or cpu")
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", local_rank)
    return dev


def cpu_has_bf16() -> bool:
    """Whether this CPU has bfloat16 instructions (AVX512-BF16, AMX) for autocast."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False
