"""Where and how a training run executes, apart from what it computes: the device, the
processes (torchrun), mixed precision, ``torch.compile`` and the host's tuning (CPU threads,
glibc's allocator). The memory layout is not among them: it is the model's own setting
(``model.channels_last`` of the conv models that gain from it), for training and inference alike.

The :class:`~genlab.train.trainer.Trainer` is given one :class:`Runtime` and asks it to place
the model, to wrap each loss in :meth:`Runtime.autocast`, for a step's gradient scaler, and to
tune the host while its loop runs (:meth:`Runtime.tuned`); the loop itself knows none of this.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager, nullcontext

import torch
from torch import nn

from ..config import TrainConfig
from . import cpu, distributed
from .settings import cpu_has_bf16, resolve_device


class Runtime:
    """The execution settings of ``config`` (``train.device``, ``amp``, ``compile``, ``threads``,
    ``tune_malloc``) resolved for this machine and process.

    Attributes: ``dist`` (this process's place among torchrun's, :func:`distributed.setup`),
    ``device``, ``autocast_dtype`` (None: float32), ``threads`` (the CPU threads of the loop,
    set by :meth:`place`).
    """

    def __init__(self, config: TrainConfig):
        self.config = config
        self.dist = distributed.setup()
        self.device = resolve_device(config.device, self.dist.local_rank)
        self.autocast_dtype = self._autocast_dtype()
        self.threads = torch.get_num_threads()

    def _autocast_dtype(self) -> torch.dtype | None:
        """Mixed precision: bfloat16 autocast on CPUs (fast where the CPU has bfloat16 instructions,
        e.g. AVX512-BF16 or AMX) and on GPUs that support it, else float16 with a gradient scaler.
        Weights, optimiser state and checkpoints stay float32."""
        if not self.config.amp:
            return None
        kind = self.device.type
        if kind == "cpu":
            if not cpu_has_bf16():
                warnings.warn(
                    "train.amp on a CPU without bfloat16 instructions: autocast is "
                    "emulated and likely slower than float32",
                    stacklevel=3,
                )
            return torch.bfloat16
        if kind != "cuda":
            warnings.warn(f"train.amp is ignored on {kind}: mixed precision is used on CPU and CUDA only", stacklevel=3)
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16

    def place(self, model: nn.Module) -> None:
        """Move ``model`` to the device (in the memory layout the model chose), choose the loop's CPU threads,
        give every process rank 0's initial weights and compile it where asked (GPUs only)."""
        model.to(self.device)
        self.threads = cpu.loop_threads(self.config, self.device)
        distributed.broadcast_module_(model, self.dist)
        if self.config.compile:
            if self.device.type == "cpu":
                warnings.warn("train.compile is ignored on cpu: torch.compile is used on GPUs only", stacklevel=3)
            else:
                for child in model.children():  # in place: state_dict keys are unchanged
                    child.compile()

    def autocast(self):
        """The context one loss is computed in: autocast to :attr:`autocast_dtype`, or nothing."""
        if self.autocast_dtype is None:
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)

    def scalers(self, steps) -> dict[str, torch.amp.GradScaler]:
        """A gradient scaler for each train step name in ``steps`` under float16 autocast (CUDA
        without bfloat16); none otherwise. Checkpointed with the training state."""
        if self.autocast_dtype != torch.float16:
            return {}
        return {name: torch.amp.GradScaler("cuda") for name in steps}

    @contextmanager
    def tuned(self):
        """While the training loop runs: :attr:`threads` CPU threads, and glibc's allocator keeping
        freed activations for the next step (``train.tune_malloc``); both restored afterwards."""
        threads = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        tuned_here = self.config.tune_malloc and cpu.malloc_tuned() is None and cpu.tune_malloc() is not None
        try:
            yield
        finally:
            torch.set_num_threads(threads)
            if tuned_here:
                cpu.restore_malloc()
