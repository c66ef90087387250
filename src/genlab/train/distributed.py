"""Data-parallel training across processes launched by ``torchrun``.

``torchrun --nproc_per_node=N -m genlab ...`` (or any launcher that sets ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK``) starts N copies of the same program. Each takes
its slice of the same global batch, gradients are averaged with ``all_reduce``
before every optimiser step, and only rank 0 writes files. Backend: NCCL on GPUs,
Gloo on CPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    initialized_here: bool = False

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1


def setup(backend: str | None = None) -> DistInfo:
    """Join the process group described by the environment (idempotent).

    Returns a single-process :class:`DistInfo` when not launched by torchrun.
    """
    if dist.is_available() and dist.is_initialized():
        local = int(os.environ.get("LOCAL_RANK", 0))
        return DistInfo(dist.get_rank(), dist.get_world_size(), local, False)
    if not launched_by_torchrun():
        return DistInfo()
    if not dist.is_available():
        raise RuntimeError("this PyTorch build has no torch.distributed; run without torchrun")
    local = int(os.environ.get("LOCAL_RANK", 0))
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(local)
    dist.init_process_group(backend=backend)
    return DistInfo(dist.get_rank(), dist.get_world_size(), local, True)


def teardown(info: DistInfo) -> None:
    if info.initialized_here and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_mean_(
    tensors: list[torch.Tensor], world_size: int, extra: torch.Tensor | None = None
) -> torch.Tensor | None:
    """Average ``tensors`` in place across ranks, as one flat bucket (one collective).

    ``extra`` (a small 1-D tensor, e.g. the loss) rides along in the same bucket and its
    *sum* over ranks is returned, so a non-finite value on any rank is seen by all.
    """
    parts = [t.reshape(-1) for t in tensors]
    if extra is not None:
        parts.append(
            extra.reshape(-1).to(
                device=parts[0].device if parts else extra.device, dtype=parts[0].dtype if parts else extra.dtype
            )
        )
    if not parts:
        return None
    flat = torch.cat(parts)
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    offset = 0
    for t in tensors:
        n = t.numel()
        t.copy_(flat[offset : offset + n].view_as(t)).div_(world_size)
        offset += n
    return flat[offset:] if extra is not None else None


def broadcast_object(obj, info: DistInfo):
    """Rank 0's ``obj`` on every rank."""
    if not info.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_objects(obj, info: DistInfo) -> list:
    """Every rank's ``obj``, in rank order, on every rank."""
    if not info.enabled:
        return [obj]
    out = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_module_(module: torch.nn.Module, info: DistInfo) -> None:
    """Copy rank 0's parameters and buffers to every rank."""
    if not info.enabled:
        return
    with torch.no_grad():
        for t in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(t.data, src=0)


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()
