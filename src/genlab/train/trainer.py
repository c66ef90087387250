"""The one Trainer: runs a model's optimisation steps, checkpoints, logs and samples.

A model lists the steps of one iteration with ``model.train_steps()`` (see
:class:`genlab.models.base.TrainStep`). For every step the Trainer draws or reuses
a batch, freezes every parameter outside the step, computes ``step.loss(batch)``,
checks it is finite, back-propagates, (averages gradients across processes,)
clips, and takes an Adam step with that step's own optimiser and learning-rate
schedule. Models never call ``backward()`` or ``optimizer.step()`` themselves.

Everything that influences the result is in the checkpoint (weights, EMA,
optimiser moments, schedules, every RNG state, step and data position), so a run
stopped at step s and resumed to t ends bit-identical (on CPU) to a run straight
to t. Logging and sampling use their own generators and restore the global RNG.
A model may define ``begin_iteration(step)``; the Trainer calls it at the start
of every iteration with the 0-based iteration number.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import re
import time
import warnings
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..config import DataConfig, RunConfig, TrainConfig, from_dict, run_config_from_dict
from ..errors import CheckpointError, ConfigError, TrainingError
from . import distributed
from .checkpoint import (
    atomic_write_bytes,
    atomic_write_json,
    list_checkpoints,
    load_checkpoint,
    prune_checkpoints,
    read_json,
    save_checkpoint,
    save_tensors,
)

SAMPLE_COUNT = 64


# --------------------------------------------------------------------------- helpers


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


def _cpu_has_bf16() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def seed_everything(seed: int) -> None:
    """Seed the global RNGs the models use (torch CPU and GPU, numpy, python random)."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def _capture_rng(device: torch.device) -> dict:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    elif device.type == "mps" and hasattr(torch, "mps"):
        state["mps"] = torch.mps.get_rng_state()
    return state


def _restore_rng(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["torch"].to(torch.uint8).cpu())
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"].to(torch.uint8).cpu(), device)
    if "mps" in state and device.type == "mps":
        torch.mps.set_rng_state(state["mps"].to(torch.uint8).cpu())


class EMA:
    """Exponential moving average of every floating parameter and buffer, kept in
    float32 (integer buffers are copied): ``ema <- decay * ema + (1 - decay) * value``."""

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.shadow = {k: (v.detach().float().clone() if v.is_floating_point() else v.detach().clone()) for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
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
        if set(weights) != set(self.shadow):
            raise CheckpointError("the EMA weights in the checkpoint do not match this model's parameters")
        for k, v in weights.items():
            self.shadow[k].copy_(v)


# --------------------------------------------------------------------------- the Trainer


class Trainer:
    """Train ``model`` on ``dataset`` following ``config``; files go to ``run_dir``.

    ``dataset`` is anything with ``.images`` (uint8 tensor (N, C, H, W), 0..255) and
    ``.labels`` (int64 (N,) or None). Each batch given to a step is
    ``{"x": model.prepare(images / 255), "y": labels or None}`` on the model's device.
    Floating-point ``.images`` (N, ...) (e.g. the 2-D toy sets) are passed as they are.

    ``run_config``, when given, is written to ``run_dir/config.json`` (so the run can
    be resumed and ``genlab.load(run_dir)`` works); without it the Trainer writes a
    model-only config when the model is in the registry.
    """

    def __init__(self, model: nn.Module, dataset, config: TrainConfig, run_dir: str | Path, run_config: RunConfig | None = None):
        config.validate()
        self.model = model
        self.dataset = dataset
        self.config = config
        self.run_dir = Path(run_dir)
        self.run_config = run_config
        self.dist = distributed.setup()
        self.device = resolve_device(config.device, self.dist.local_rank)

        images = getattr(dataset, "images", None)
        if not isinstance(images, torch.Tensor) or not (
            (images.dtype == torch.uint8 and images.dim() == 4) or (images.is_floating_point() and images.dim() >= 2)
        ):
            raise ConfigError("the data set must have .images: a uint8 tensor (N, C, H, W), or a float tensor (N, ...) of data used as it is")
        self._raw_float = images.is_floating_point()
        labels = getattr(dataset, "labels", None)
        n = images.shape[0]
        if config.batch_size % self.dist.world_size:
            raise ConfigError(
                f"train.batch_size={config.batch_size} (the global batch) must be divisible by the number of processes "
                f"({self.dist.world_size}); e.g. train.batch_size={config.batch_size - config.batch_size % self.dist.world_size or self.dist.world_size}"
            )
        if n < config.batch_size:
            raise ConfigError(f"the data set has {n} images, fewer than train.batch_size={config.batch_size}; lower the batch size")
        self._local_batch = config.batch_size // self.dist.world_size
        # Small data sets live on the GPU so a batch is one gather, not a copy.
        on_device = self.device.type != "cpu" and images.numel() <= 2**30
        self._images = images.to(self.device) if on_device else images
        self._labels = None if labels is None else (labels.to(self.device) if on_device else labels)

        # Global RNGs: the same seed on every rank for the model's initial weights (set by
        # the caller), a different stream per rank for the training noise.
        seed_everything(config.seed + self.dist.rank)
        self._data_gen = torch.Generator().manual_seed(config.seed)
        self._epoch_gen_state = self._data_gen.get_state()
        self._perm: torch.Tensor | None = None
        self.epoch = 0
        self._batch_index = 0
        self.step = 0
        self._elapsed = 0.0

        model.to(self.device)
        distributed.broadcast_module_(model, self.dist)
        model.train()
        self.steps = list(model.train_steps())
        if not self.steps:
            raise ConfigError(f"{type(model).__name__}.train_steps() returned no steps")
        config.check_steps([s.name for s in self.steps], type(model).__name__)
        all_params = list(model.parameters())
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.schedulers: dict[str, torch.optim.lr_scheduler.LambdaLR] = {}
        self._params: dict[str, list[nn.Parameter]] = {}
        self._others: dict[str, list[nn.Parameter]] = {}
        for s in self.steps:
            params = s.parameters()
            if not params:
                raise ConfigError(f"train step {s.name!r} updates no parameters")
            ids = {id(p) for p in params}
            if s.name in self._params:  # a repeated step (e.g. several D steps) shares its optimiser
                if ids != {id(p) for p in self._params[s.name]}:
                    raise ConfigError(f"train steps named {s.name!r} must update the same parameters")
                continue
            self._params[s.name] = params
            self._others[s.name] = [p for p in all_params if id(p) not in ids]
            opt = torch.optim.Adam(params, lr=config.lr_of(s.name), betas=config.betas_of(s.name), weight_decay=config.weight_decay)
            self.optimizers[s.name] = opt
            self.schedulers[s.name] = torch.optim.lr_scheduler.LambdaLR(opt, lambda k, c=config: lr_factor(k, c))
        self.ema = EMA(model, config.ema_decay) if config.ema_decay > 0 else None

        # Mixed precision: bfloat16 autocast on CPUs (fast where the CPU has bfloat16
        # instructions, e.g. AVX512-BF16 or AMX) and on GPUs that support it, else float16
        # with a gradient scaler. Weights, optimiser state and checkpoints stay float32.
        self._autocast_dtype = None
        self.scalers: dict[str, torch.amp.GradScaler] = {}
        if config.amp:
            if self.device.type == "cpu":
                self._autocast_dtype = torch.bfloat16
                if not _cpu_has_bf16():
                    warnings.warn("train.amp on a CPU without bfloat16 instructions: autocast is emulated and likely slower than float32", stacklevel=2)
            elif self.device.type != "cuda":
                warnings.warn(f"train.amp is ignored on {self.device.type}: mixed precision is used on CPU and CUDA only", stacklevel=2)
            else:
                self._autocast_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
                if self._autocast_dtype == torch.float16:
                    self.scalers = {s.name: torch.amp.GradScaler("cuda") for s in self.steps}
        if config.compile:
            if self.device.type == "cpu":
                warnings.warn("train.compile is ignored on cpu: torch.compile is used on GPUs only", stacklevel=2)
            else:
                for child in model.children():  # in place: state_dict keys are unchanged
                    child.compile()

        self._log_sums: dict[str, torch.Tensor | float] = {}
        self._log_counts: dict[str, int] = {}
        self._log_count = 0
        self._log_t0 = time.perf_counter()
        self._log_step0 = 0
        self._tb = None
        self._tb_tried = False
        self._can_sample = True
        self._last_checkpoint_step = -1

    # ---------------------------------------------------------------- data
    def _next_indices(self) -> torch.Tensor:
        n, b = self._images.shape[0], self.config.batch_size
        if self._perm is None or (self._batch_index + 1) * b > n:
            if self._perm is not None:
                self.epoch += 1
            self._epoch_gen_state = self._data_gen.get_state()
            self._perm = torch.randperm(n, generator=self._data_gen)
            self._batch_index = 0
        start = self._batch_index * b + self.dist.rank * self._local_batch
        self._batch_index += 1
        return self._perm[start : start + self._local_batch]

    def _next_batch(self) -> dict:
        idx = self._next_indices()
        if self._images.device != idx.device:
            idx = idx.to(self._images.device)
        x = self._images[idx]
        if x.device != self.device:
            x = x.to(self.device, non_blocking=True)
        # uint8 images -> [0, 1] -> the model's input space; float data (e.g. 2-D points) as it is
        x = x if self._raw_float else self.model.prepare(x.float().div_(255.0))
        y = None
        if self._labels is not None:
            y = self._labels[idx]
            if y.device != self.device:
                y = y.to(self.device, non_blocking=True)
        return {"x": x, "y": y}

    # ---------------------------------------------------------------- one iteration
    def _autocast(self):
        if self._autocast_dtype is None:
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self._autocast_dtype)

    def _run_step(self, step, batch) -> dict:
        name = step.name
        params = self._params[name]
        opt = self.optimizers[name]
        scaler = self.scalers.get(name)
        frozen = [p for p in self._others[name] if p.requires_grad]
        for p in frozen:
            p.requires_grad_(False)
        try:
            opt.zero_grad(set_to_none=True)
            with self._autocast():
                out = step.loss(batch)
            if not isinstance(out, dict) or "loss" not in out:
                raise TrainingError(f"train step {name!r}: loss(batch) must return a dict with a 'loss' key, got {type(out).__name__}")
            loss = out["loss"]
            if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
                raise TrainingError(f"train step {name!r}: 'loss' must be a scalar tensor, got {getattr(loss, 'shape', type(loss).__name__)}")
            if not self.dist.enabled and not torch.isfinite(loss.detach()).item():
                self._non_finite(name, float(loss.detach()))
            (scaler.scale(loss) if scaler is not None else loss).backward()
            if self.dist.enabled:
                grads = [p.grad for p in params if p.grad is not None]
                total = distributed.all_reduce_mean_(grads, self.dist.world_size, extra=loss.detach().float().reshape(1))
                if total is None or not torch.isfinite(total).all().item():
                    self._non_finite(name, float("nan") if total is None else float(total.sum()) / self.dist.world_size)
            if scaler is not None:
                scaler.unscale_(opt)
            if self.config.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(params, self.config.grad_clip)
            if scaler is not None:
                scaler.step(opt)
                scaler.update()
            else:
                opt.step()
        finally:
            for p in frozen:
                p.requires_grad_(True)
        return out

    def _non_finite(self, name: str, value: float):
        last = self._last_checkpoint_step
        where = f"the last checkpoint (step {last}) is intact" if last >= 0 else "no checkpoint was written"
        raise TrainingError(
            f"non-finite loss ({value}) at iteration {self.step + 1}, train step {name!r}; training stopped, {where}. "
            "Try a lower train.lr, train.grad_clip > 0 or check the data."
        )

    def _iteration(self) -> None:
        # The contract's per-iteration hook (a no-op unless the model's behaviour depends on
        # the iteration, e.g. progan's growth schedule); step is 0-based and checkpointed,
        # so a resumed run calls it with the same values as an uninterrupted one.
        self.model.begin_iteration(self.step)
        batch = None
        for i, step in enumerate(self.steps):
            if batch is None or step.new_batch:
                batch = self._next_batch()
            out = self._run_step(step, batch)
            for k, v in out.items():
                key = f"{step.name}/{k}"
                v = v.detach().float() if isinstance(v, torch.Tensor) else float(v)
                prev = self._log_sums.get(key)
                self._log_sums[key] = v if prev is None else prev + v
                self._log_counts[key] = self._log_counts.get(key, 0) + 1
        for scheduler in self.schedulers.values():  # schedules count iterations, not optimiser steps
            scheduler.step()
        self._log_count += 1
        self.step += 1
        if self.ema is not None:
            self.ema.update(self.model)

    # ---------------------------------------------------------------- the loop
    def fit(self, steps: int | None = None) -> Path:
        """Train until a total of ``steps`` iterations (default ``config.steps``).

        Checkpoints every ``checkpoint_every`` steps and at the end; returns the run dir.
        Raises :class:`TrainingError` (writing no checkpoint) on a non-finite loss.
        """
        if steps is not None and steps != self.config.steps:
            if steps < 0:
                raise ConfigError(f"steps must be >= 0, got {steps}")
            self.config = dataclasses.replace(self.config, steps=steps)
            if self.run_config is not None:
                self.run_config = dataclasses.replace(self.run_config, train=self.config)
        target = self.config.steps
        c = self.config
        if self.dist.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self._write_config()
        if self.step >= target:
            if self.step > target:
                warnings.warn(f"the run is already at step {self.step}, past the requested {target}; nothing to do", stacklevel=2)
            return self.run_dir
        bar = None
        if c.progress and self.dist.is_main:
            from tqdm.auto import tqdm

            bar = tqdm(total=target, initial=self.step, desc=self.run_dir.name, dynamic_ncols=True, leave=True)
        t_start = time.perf_counter()
        elapsed0 = self._elapsed
        self._log_t0, self._log_step0 = t_start, self.step
        self._log_sums, self._log_counts, self._log_count = {}, {}, 0
        try:
            while self.step < target:
                self._iteration()
                self._elapsed = elapsed0 + time.perf_counter() - t_start
                if bar is not None:
                    bar.update(1)
                s = self.step
                if c.log_every > 0 and s % c.log_every == 0:
                    self._log(bar)
                if c.sample_every > 0 and s % c.sample_every == 0:
                    self.save_samples()
                if c.checkpoint_every > 0 and s % c.checkpoint_every == 0:
                    self.save_checkpoint()
            if self._last_checkpoint_step != self.step:
                self.save_checkpoint()
        finally:
            if bar is not None:
                bar.close()
            if self._tb is not None:
                self._tb.flush()
        return self.run_dir

    # ---------------------------------------------------------------- logging
    def _log(self, bar=None) -> None:
        if not self.dist.is_main or self._log_count == 0:
            self._log_sums, self._log_counts, self._log_count = {}, {}, 0
            return
        now = time.perf_counter()
        iters = self.step - self._log_step0
        record = {"step": self.step}
        for k, v in self._log_sums.items():
            record[k] = float(v) / self._log_counts[k]
        lrs = {name: sch.get_last_lr()[0] for name, sch in self.schedulers.items()}
        record["lr"] = lrs[self.steps[0].name]
        if len(lrs) > 1:
            for name, lr in lrs.items():
                record[f"{name}/lr"] = lr
        record["images_per_s"] = iters * self.config.batch_size / max(now - self._log_t0, 1e-9)
        record["time"] = self._elapsed
        self._log_sums, self._log_counts, self._log_count = {}, {}, 0
        self._log_t0, self._log_step0 = now, self.step
        with open(self.run_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        tb = self._tensorboard()
        if tb is not None:
            for k, v in record.items():
                if k != "step":
                    tb.add_scalar(k, v, self.step)
        if bar is not None:
            bar.set_postfix({k: f"{v:.4g}" for k, v in record.items() if k.endswith("/loss")}, refresh=False)

    def _tensorboard(self):
        if not self._tb_tried:
            self._tb_tried = True
            try:
                from torch.utils.tensorboard import SummaryWriter
            except Exception:  # tensorboard not installed: skip silently
                return None
            self._tb = SummaryWriter(log_dir=str(self.run_dir / "tensorboard"))
        return self._tb

    # ---------------------------------------------------------------- samples
    @torch.no_grad()
    def save_samples(self, path: str | Path | None = None) -> Path | None:
        """A grid of 64 samples (EMA weights when on) with a fixed-seed generator, saved as
        ``samples/step-XXXXXXX.png``. Leaves the training RNG streams untouched."""
        if not self.dist.is_main or not self._can_sample or "sample" not in self.model.capabilities:
            return None
        from ..viz.images import save_png

        rng = _capture_rng(self.device)
        was_training = self.model.training
        backup = None
        try:
            if self.ema is not None:
                backup = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
                self.model.load_state_dict(self.ema.weights_like(self.model))
            self.model.eval()
            gen = torch.Generator(device=self.device).manual_seed(self.config.seed)
            k = self.model.config.num_classes
            labels = (torch.arange(SAMPLE_COUNT, device=self.device) % k) if k > 0 else None
            try:
                x = self.model.sample(SAMPLE_COUNT, labels=labels, generator=gen)
            except NotImplementedError:
                self._can_sample = False
                return None
            path = Path(path) if path is not None else self.run_dir / "samples" / f"step-{self.step:07d}.png"
            x = x.detach().float().cpu()
            if x.dim() == 4 and x.shape[1] in (1, 3):
                save_png(x.clamp(0, 1), path)
                return path
            return None
        finally:
            if backup is not None:
                self.model.load_state_dict(backup)
            self.model.train(was_training)
            _restore_rng(rng, self.device)

    # ---------------------------------------------------------------- checkpoints
    @property
    def checkpoint_dir(self) -> Path:
        return self.run_dir / "checkpoints"

    def _config_doc(self) -> dict | None:
        from ..models.base import config_document

        if self.run_config is not None:
            rc = self.run_config
            return config_document(rc.model_name, rc.model, train=self.config, data=rc.data)
        try:
            from ..registry import name_of

            name = name_of(self.model)
        except Exception:
            return None
        return config_document(name, self.model.config, train=self.config)

    def _write_config(self) -> None:
        doc = self._config_doc()
        if doc is not None:
            atomic_write_json(self.run_dir / "config.json", doc)

    def _state(self) -> dict:
        return {
            "step": self.step,
            "elapsed": self._elapsed,
            "data": {"epoch": self.epoch, "batch_index": self._batch_index, "started": self._perm is not None, "generator": self._epoch_gen_state},
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "schedulers": {k: s.state_dict() for k, s in self.schedulers.items()},
            "scalers": {k: s.state_dict() for k, s in self.scalers.items()},
            "world_size": self.dist.world_size,
            "batch_size": self.config.batch_size,
        }

    def save_checkpoint(self) -> Path | None:
        """Write the full training state to ``checkpoints/step-XXXXXXX/`` (rank 0), keep
        the newest ``keep_checkpoints``, refresh ``model.safetensors`` and ``config.json``."""
        rngs = distributed.gather_objects(_capture_rng(self.device), self.dist)
        path = None
        if self.dist.is_main:
            state = self._state()
            state["rng"] = rngs
            weights = {"model": self.model.state_dict()}
            if self.ema is not None:
                weights["ema"] = self.ema.shadow
            path = save_checkpoint(self.checkpoint_dir, self.step, weights, state)
            prune_checkpoints(self.checkpoint_dir, self.config.keep_checkpoints)
            final = self.ema.weights_like(self.model) if self.ema is not None else self.model.state_dict()
            save_tensors(final, self.run_dir / "model.safetensors")
            self._write_config()
        self._last_checkpoint_step = self.step
        distributed.barrier(self.dist)
        return path

    def restore(self, path: str | Path | None = None) -> int | None:
        """Load a checkpoint: ``path``, or the newest valid one in ``run_dir/checkpoints``
        (a corrupt or partial one is skipped with a warning). Returns its step, or None
        when the run has no checkpoint yet."""
        chosen = None
        if self.dist.is_main:
            candidates = [Path(path)] if path is not None else [p for _, p in reversed(list_checkpoints(self.checkpoint_dir))]
            for p in candidates:
                try:
                    load_checkpoint(p)
                except CheckpointError as e:
                    if path is not None:
                        raise
                    warnings.warn(f"skipping a damaged checkpoint: {e}; falling back to the previous one", stacklevel=2)
                    continue
                chosen = str(p)
                break
            if chosen is None and candidates:
                chosen = "!none"
        chosen = distributed.broadcast_object(chosen, self.dist)
        if chosen == "!none":
            raise CheckpointError(f"no readable checkpoint in {self.checkpoint_dir}: all are damaged")
        if chosen is None:
            return None
        weights, state, step = load_checkpoint(chosen)
        self._apply(weights, state, Path(chosen))
        return step

    def _apply(self, weights: dict, state: dict, where: Path) -> None:
        expected = self.model.state_dict()
        got = self.model.upgrade_state_dict(weights.get("model", {}))
        bad = sorted(set(expected) ^ set(got)) + sorted(k for k in set(expected) & set(got) if expected[k].shape != got[k].shape)
        if bad:
            raise CheckpointError(f"the checkpoint {where} does not fit this model (mismatched weights: {bad[:5]})")
        if (self.ema is not None) != ("ema" in weights):
            warnings.warn(f"train.ema_decay changed since {where} was written; the EMA {'starts from the current weights' if self.ema is not None else 'is dropped'}", stacklevel=3)
        if set(state["optimizers"]) != set(self.optimizers):
            raise CheckpointError(f"the checkpoint {where} has optimisers for steps {sorted(state['optimizers'])}, this model has {sorted(self.optimizers)}")
        if state.get("batch_size") != self.config.batch_size:
            warnings.warn(f"train.batch_size changed since {where} was written; the data order will differ from an uninterrupted run", stacklevel=3)
        with torch.no_grad():
            self.model.load_state_dict(got)
        if self.ema is not None:
            if "ema" in weights:
                self.ema.load(self.model.upgrade_state_dict(weights["ema"]))
            else:
                self.ema = EMA(self.model, self.config.ema_decay)
        for k, opt in self.optimizers.items():
            opt.load_state_dict(state["optimizers"][k])
        for k, sch in self.schedulers.items():
            sch.load_state_dict(state["schedulers"][k])
        for k, sc in self.scalers.items():
            if k in state.get("scalers", {}):
                sc.load_state_dict(state["scalers"][k])
        self.step = int(state["step"])
        self._elapsed = float(state.get("elapsed", 0.0))
        data = state["data"]
        self.epoch, self._batch_index = int(data["epoch"]), int(data["batch_index"])
        self._epoch_gen_state = data["generator"].to(torch.uint8)
        self._data_gen.set_state(self._epoch_gen_state)
        self._perm = torch.randperm(self._images.shape[0], generator=self._data_gen) if data["started"] else None
        rngs = state["rng"]
        if len(rngs) == self.dist.world_size:
            _restore_rng(rngs[self.dist.rank], self.device)
        else:
            warnings.warn(f"{where} was written by {len(rngs)} processes, this run has {self.dist.world_size}: the random streams are re-seeded", stacklevel=3)
            seed_everything(self.config.seed + 1000 * self.step + self.dist.rank)
        self._last_checkpoint_step = self.step
        if self.dist.is_main:
            _trim_metrics(self.run_dir / "metrics.jsonl", self.step)


def _trim_metrics(path: Path, step: int) -> None:
    """Drop the metric lines written after ``step`` (by a run that died before its
    next checkpoint), so the resumed run does not log those steps twice."""
    if not path.is_file():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line).get("step", 0) <= step:
                keep.append(line)
        except json.JSONDecodeError:
            continue  # a line cut by a crash
    atomic_write_bytes(path, ("\n".join(keep) + "\n").encode() if keep else b"")


# --------------------------------------------------------------------------- train / resume


def _safe_name(text: str) -> str:
    text = Path(str(text).rstrip("/\\")).name or "data"
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)


def _choose_run_dir(run_config: RunConfig, base: str | Path = "runs") -> Path:
    stem = f"{_safe_name(run_config.model_name)}-{_safe_name(run_config.data.name)}"
    base = Path(base)
    candidate = base / stem
    k = 2
    while candidate.exists():
        candidate = base / f"{stem}-{k}"
        k += 1
    return candidate


def _load_data(data: DataConfig):
    from .. import data as gdata

    return gdata.load(data.name, data.split, data.data_dir)


def _build_model(run_config: RunConfig):
    from .. import registry

    config_cls, model_cls = registry.get(run_config.model_name)
    model_cfg = run_config.model
    if type(model_cfg) is not config_cls:
        from ..config import to_dict

        model_cfg = from_dict(config_cls, to_dict(model_cfg), "model")
    return model_cls(model_cfg)


def _fit_model_to_data(run_config: RunConfig, dataset) -> RunConfig:
    """Fill ``model.image_shape`` from the data and check ``model.num_classes``."""
    images = dataset.images
    k = run_config.model.num_classes
    if k > 0:
        if getattr(dataset, "labels", None) is None:
            raise ConfigError(
                f"model.num_classes={k} makes the model class-conditional, but the data set {run_config.data.name!r} has no labels; "
                "set model.num_classes=0 or use a labelled data set"
            )
        have = int(getattr(dataset, "num_classes", 0) or (int(dataset.labels.max()) + 1))
        if have != k:
            raise ConfigError(f"model.num_classes={k} but the data set {run_config.data.name!r} has {have} classes; set model.num_classes={have}")
    shape = tuple(int(s) for s in images.shape[1:])  # (C, H, W) for images, (2,) for 2-D points
    model_cfg = dataclasses.replace(run_config.model, image_shape=shape)
    return dataclasses.replace(run_config, model=model_cfg)


def train(run_config: RunConfig | str, out_dir: str | None = None, dataset=None, *, data: str | None = None,
          preset: str | None = None, overrides=()) -> Path:
    """Train a registered model from scratch; returns the run directory.

    ``run_config``: a :class:`RunConfig`, or a model name: then the RunConfig is
    ``genlab.registry.build_run_config(name, data, preset, overrides)``, exactly what
    ``genlab train NAME --data DATA --set OVERRIDE ...`` trains. A RunConfig built by hand
    starts from ``TrainConfig()``'s defaults, not the model's (e.g. the GANs' lr 2e-4 and
    betas (0.5, 0.999)): build it with ``build_run_config`` to start from the model's.

    >>> train("gan", data="ring8", overrides=["train.steps=100"])

    The run directory is ``out_dir`` or ``runs/<model>-<data>`` (``-2``, ``-3``... when
    taken). The data set is ``dataset`` or ``genlab.data.load(run_config.data...)``.
    Under torchrun every process calls this; rank 0 writes the files.
    """
    if isinstance(run_config, str):
        from ..registry import build_run_config

        run_config = build_run_config(run_config, data=data, preset=preset, overrides=overrides)
    elif data is not None or preset is not None or overrides:
        raise ConfigError("data=, preset= and overrides= go with a model name; apply them to a RunConfig with "
                          "genlab.config.apply_overrides, or pass the model name")
    info = distributed.setup()
    try:
        if dataset is None:
            dataset = _load_data(run_config.data)
        run_config = _fit_model_to_data(run_config, dataset)
        run_dir = None
        if info.is_main:
            if out_dir is not None:
                run_dir = Path(out_dir)
                if list_checkpoints(run_dir / "checkpoints"):
                    raise CheckpointError(f"{run_dir} already holds a training run; continue it with genlab.train.resume({str(run_dir)!r}, steps) or choose another directory")
            else:
                run_dir = _choose_run_dir(run_config)
            run_dir.mkdir(parents=True, exist_ok=True)
            run_dir = str(run_dir)
        run_dir = Path(distributed.broadcast_object(run_dir, info))
        seed_everything(run_config.train.seed)  # identical initial weights on every rank
        model = _build_model(run_config)
        trainer = Trainer(model, dataset, run_config.train, run_dir, run_config)
        return trainer.fit()
    finally:
        distributed.teardown(info)


def load_run_config(run_dir: str | Path) -> RunConfig:
    """The :class:`RunConfig` stored in ``run_dir/config.json``."""
    from .. import registry

    path = Path(run_dir) / "config.json"
    doc = read_json(path)
    if "model_name" not in doc or "model" not in doc or "train" not in doc:
        raise CheckpointError(f"{path} is not a genlab training run config (needs model_name, model and train)")
    try:
        config_cls, _ = registry.get(doc["model_name"])
        return run_config_from_dict(doc, config_cls)
    except ConfigError as e:
        raise CheckpointError(f"cannot read the run config {path}: {e}") from None


def resume(run_dir: str | Path, steps: int, dataset=None) -> Path:
    """Continue the run in ``run_dir`` to a total of ``steps`` iterations.

    Restores the newest valid checkpoint (a damaged one is skipped with a warning),
    reloads the data set (or uses ``dataset``), sets ``train.steps`` in
    ``config.json`` to ``steps`` and trains. Returns the run directory.
    """
    run_dir = Path(run_dir)
    info = distributed.setup()
    try:
        run_config = load_run_config(run_dir)
        if dataset is None:
            dataset = _load_data(run_config.data)
        run_config = _fit_model_to_data(run_config, dataset)
        seed_everything(run_config.train.seed)
        model = _build_model(run_config)
        trainer = Trainer(model, dataset, run_config.train, run_dir, run_config)
        if trainer.restore() is None:
            warnings.warn(f"{run_dir} has no checkpoint yet; training starts from step 0", stacklevel=2)
        return trainer.fit(steps)
    finally:
        distributed.teardown(info)
