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
The Trainer calls the contract's hook ``model.begin_iteration(step)`` at the start
of every iteration with the 0-based iteration number.

Beside this file in ``genlab.train``: ``runs`` (run directories, :func:`train`,
:func:`resume`), ``state`` (EMA, RNG capture, the checkpointed training state),
``logs`` (metrics.jsonl and TensorBoard), ``settings`` (device,
learning-rate schedule), ``checkpoint`` (the checkpoint folders), ``runtime`` (where and how
the run executes: device, processes, mixed precision, compile, host tuning; the Trainer is
given one) and ``cpu`` (glibc's malloc, the thread count).
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from pathlib import Path

import torch
from torch import nn

from ..config import RunConfig, TrainConfig
from ..errors import CheckpointError, ConfigError, TrainingError, WriteError
from ..io import make_dirs, save_tensors
from . import distributed
from .checkpoint import list_checkpoints, load_checkpoint, prune_checkpoints, save_checkpoint
from .logs import MetricLog, progress_bar
from .runs import write_run_config
from .runtime import Runtime
from .settings import lr_factor, resolve_device
from .state import EMA, adam, apply_training_state, capture_rng, restore_rng, seed_everything, training_state

__all__ = ["Trainer", "EMA", "lr_factor", "resolve_device", "seed_everything"]


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

    #: seconds from an arbitrary origin, for train.max_seconds and the logged time (tests swap in a fake clock)
    clock = staticmethod(time.perf_counter)
    #: CPU seconds of this process (every thread), for ``train.budget_clock = "cpu"``
    cpu_clock = staticmethod(time.process_time)

    def __init__(
        self,
        model: nn.Module,
        dataset,
        config: TrainConfig,
        run_dir: str | Path,
        run_config: RunConfig | None = None,
        runtime: Runtime | None = None,
    ):
        """``runtime``: where and how the run executes (device, processes, mixed precision, host
        tuning); by default :class:`~genlab.train.runtime.Runtime` of ``config``."""
        config.validate()
        self.model = model
        self.dataset = dataset
        self.config = config
        self.run_dir = Path(run_dir)
        self.run_config = run_config
        self.runtime = runtime or Runtime(config)
        self.dist, self.device = self.runtime.dist, self.runtime.device
        self._set_data(dataset)

        # Global RNGs: the same seed on every rank for the model's initial weights (set by
        # the caller), a different stream per rank for the training noise.
        seed_everything(config.seed + self.dist.rank)
        self._data_gen = torch.Generator().manual_seed(config.seed)
        self._epoch_gen_state = self._data_gen.get_state()
        self._perm: torch.Tensor | None = None
        self.epoch = 0
        self._batch_index = 0
        self.step = 0
        self._elapsed = 0.0  # training time in seconds over every fit() of this run (checkpointed)
        self.out_of_time = False

        self.runtime.place(model)
        model.train()
        self.steps = list(model.train_steps())
        if not self.steps:
            raise ConfigError(f"{type(model).__name__}.train_steps() returned no steps")
        config.check_steps([s.name for s in self.steps], type(model).__name__)
        self._set_optimizers()
        self.ema = EMA(model, config.ema_decay) if config.ema_decay > 0 else None
        self.scalers = self.runtime.scalers(self.optimizers)
        self.log = MetricLog(self.run_dir, config.batch_size)
        self._can_sample = True
        self._last_checkpoint_step = -1

    @property
    def threads(self) -> int:
        """CPU threads of the training loop (:attr:`Runtime.threads`)."""
        return self.runtime.threads

    def _set_data(self, dataset) -> None:
        """Check ``dataset`` against the batch size and keep its images and labels (on the GPU when
        they fit, so a batch is one gather, not a copy)."""
        config = self.config
        images = getattr(dataset, "images", None)
        if not isinstance(images, torch.Tensor) or not (
            (images.dtype == torch.uint8 and images.dim() == 4) or (images.is_floating_point() and images.dim() >= 2)
        ):
            raise ConfigError(
                "the data set must have .images: a uint8 tensor (N, C, H, W), or a "
                "float tensor (N, ...) of data used as it is"
            )
        self._raw_float = images.is_floating_point()
        labels = getattr(dataset, "labels", None)
        n = images.shape[0]
        if config.batch_size % self.dist.world_size:
            divisible = config.batch_size - config.batch_size % self.dist.world_size or self.dist.world_size
            raise ConfigError(
                f"train.batch_size={config.batch_size} (the global batch) must be divisible by the number of processes "
                f"({self.dist.world_size}); e.g. train.batch_size={divisible}"
            )
        if n < config.batch_size:
            raise ConfigError(
                f"the data set has {n} images, fewer than train.batch_size={config.batch_size}; lower the batch size"
            )
        self._local_batch = config.batch_size // self.dist.world_size
        on_device = self.device.type != "cpu" and images.numel() <= 2**30
        self._images = images.to(self.device) if on_device else images
        self._labels = None if labels is None else (labels.to(self.device) if on_device else labels)

    def _set_optimizers(self) -> None:
        """One Adam optimiser and learning-rate schedule per distinct train step name; a repeated
        step (e.g. several D steps) shares its optimiser and must update the same parameters."""
        config = self.config
        all_params = list(self.model.parameters())
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.schedulers: dict[str, torch.optim.lr_scheduler.LambdaLR] = {}
        self._params: dict[str, list[nn.Parameter]] = {}
        self._others: dict[str, list[nn.Parameter]] = {}
        for s in self.steps:
            params = s.parameters()
            if not params:
                raise ConfigError(f"train step {s.name!r} updates no parameters")
            ids = {id(p) for p in params}
            if s.name in self._params:
                if ids != {id(p) for p in self._params[s.name]}:
                    raise ConfigError(f"train steps named {s.name!r} must update the same parameters")
                continue
            self._params[s.name] = params
            self._others[s.name] = [p for p in all_params if id(p) not in ids]
            opt = adam(
                params,
                config.fused_adam,
                lr=config.lr_of(s.name),
                betas=config.betas_of(s.name),
                weight_decay=config.weight_decay,
            )
            self.optimizers[s.name] = opt
            self.schedulers[s.name] = torch.optim.lr_scheduler.LambdaLR(opt, lambda k, c=config: lr_factor(k, c))

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
            with self.runtime.autocast():
                out = step.loss(batch)
            if not isinstance(out, dict) or "loss" not in out:
                raise TrainingError(
                    f"train step {name!r}: loss(batch) must return a dict with a 'loss' key, got {type(out).__name__}"
                )
            loss = out["loss"]
            if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
                raise TrainingError(
                    f"train step {name!r}: 'loss' must be a scalar tensor, got "
                    f"{getattr(loss, 'shape', type(loss).__name__)}"
                )
            if not self.dist.enabled and not torch.isfinite(loss.detach()).item():
                self._non_finite(name, float(loss.detach()))
            (scaler.scale(loss) if scaler is not None else loss).backward()
            if self.dist.enabled:
                grads = [p.grad for p in params if p.grad is not None]
                total = distributed.all_reduce_mean_(
                    grads, self.dist.world_size, extra=loss.detach().float().reshape(1)
                )
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
            self.log.add(step.name, self._run_step(step, batch))
        for scheduler in self.schedulers.values():  # schedules count iterations, not optimiser steps
            scheduler.step()
        self.log.count += 1
        self.step += 1
        if self.ema is not None:
            self.ema.update(self.model)

    # ---------------------------------------------------------------- the loop
    def fit(self, steps: int | None = None) -> Path:
        """Train until a total of ``steps`` iterations (default ``config.steps``), or until
        the run's training time reaches ``config.max_seconds`` (when > 0): then it stops at
        the next iteration boundary (``out_of_time`` becomes True). The time is the
        time inside ``fit``, summed over every resume (it is checkpointed): wall-clock
        time, or with ``train.budget_clock = "cpu"`` the CPU time of this process over
        all its threads (so a budget means the same work on a busy machine as on an idle one).

        Checkpoints every ``checkpoint_every`` steps and at the end; returns the run dir.
        With nothing to do (the step or the time budget already reached) it writes nothing.
        Raises :class:`TrainingError` (writing no checkpoint) on a non-finite loss.
        """
        if self._nothing_to_do(steps):
            return self.run_dir
        c = self.config
        if self.dist.is_main:  # only now: with nothing to do the run folder stays as it is
            make_dirs(self.run_dir)
            self._write_config()
        bar = progress_bar(c.steps, self.step, self.run_dir.name) if c.progress and self.dist.is_main else None
        clock = self.cpu_clock if c.budget_clock == "cpu" else self.clock
        t_start, elapsed0 = clock(), self._elapsed
        self.log.start(self.step)
        self.out_of_time = False
        try:
            with self.runtime.tuned():
                while self.step < c.steps:
                    if c.max_seconds > 0 and self._time_is_up(elapsed0 + clock() - t_start):
                        self.out_of_time = True
                        break
                    self._iteration()
                    self._elapsed = elapsed0 + clock() - t_start
                    self._after_iteration(bar)
                if self._last_checkpoint_step != self.step:
                    self.save_checkpoint()
        finally:
            if bar is not None:
                bar.close()
            self.log.flush()
        return self.run_dir

    def _nothing_to_do(self, steps: int | None) -> bool:
        """Set the target ``steps`` (None: keep ``config.steps``) and say (with a warning) when the
        run has already reached it or spent its time budget."""
        if steps is not None and steps != self.config.steps:
            if steps < 0:
                raise ConfigError(f"steps must be >= 0, got {steps}")
            self.config = dataclasses.replace(self.config, steps=steps)
            if self.run_config is not None:
                self.run_config = dataclasses.replace(self.run_config, train=self.config)
        c = self.config
        if self.step >= c.steps:
            if self.step > c.steps:
                warnings.warn(
                    f"the run is already at step {self.step}, past the requested {c.steps}; nothing to do", stacklevel=3
                )
            return True
        if 0 < c.max_seconds <= self._elapsed:
            warnings.warn(
                f"the run has already spent its budget train.max_seconds={c.max_seconds:g} ({self._elapsed:.1f} s) at "
                f"step {self.step}; nothing to do (genlab resume RUN --steps N --max-seconds S, or resume(..., "
                "max_seconds=S), sets a larger budget)",
                stacklevel=3,
            )
            self.out_of_time = True
            return True
        return False

    def _after_iteration(self, bar) -> None:
        """The periodic work after an iteration: the log line, the progress bar, sample grids, checkpoints."""
        c, s = self.config, self.step
        if c.log_every > 0 and s % c.log_every == 0:
            self._log(bar)
        if bar is not None:
            bar.update(1)  # after the log line, so that it shows this step's losses
        if c.sample_every > 0 and s % c.sample_every == 0:
            self.save_samples()
        if c.checkpoint_every > 0 and s % c.checkpoint_every == 0:
            self.save_checkpoint()

    def _time_is_up(self, elapsed: float) -> bool:
        """Whether ``elapsed`` (seconds, this run's training time so far) has reached
        ``train.max_seconds``; under torchrun rank 0 decides for every process."""
        return bool(distributed.broadcast_object(elapsed >= self.config.max_seconds, self.dist))

    # ---------------------------------------------------------------- logging
    def _log(self, bar=None) -> None:
        if not self.dist.is_main or self.log.count == 0:
            self.log.clear()
            return
        lrs = {name: sch.get_last_lr()[0] for name, sch in self.schedulers.items()}
        self.log.write(self.step, lrs, self._elapsed, bar)

    # ---------------------------------------------------------------- samples
    @torch.no_grad()
    def save_samples(self, path: str | Path | None = None) -> Path | None:
        """Samples (EMA weights when on) from a fixed-seed generator, pictured by
        :func:`genlab.viz.samples.render_samples` (an image grid, waveforms, or a scatter
        over the training points) and saved as ``samples/step-XXXXXXX.png``. Leaves the
        training RNG streams untouched."""
        if not self.dist.is_main or not self._can_sample or "sample" not in self.model.capabilities:
            return None
        from ..viz.samples import render_samples

        rng = capture_rng(self.device)
        was_training = self.model.training
        backup = None
        try:
            if self.ema is not None:
                backup = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
                self.model.load_state_dict(self.ema.weights_like(self.model))
            self.model.eval()
            gen = torch.Generator(device=self.device).manual_seed(self.config.seed)
            real = self._images[:1000].cpu() if self._raw_float else None
            try:
                shown = render_samples(self.model, generator=gen, real=real, size=384)
            except NotImplementedError:
                self._can_sample = False
                return None
            return shown.save(
                Path(path) if path is not None else self.run_dir / "samples" / f"step-{self.step:07d}.png"
            )
        finally:
            if backup is not None:
                self.model.load_state_dict(backup)
            self.model.train(was_training)
            restore_rng(rng, self.device)

    # ---------------------------------------------------------------- checkpoints
    @property
    def checkpoint_dir(self) -> Path:
        """``run_dir/checkpoints``: one folder per checkpoint, ``step-XXXXXXX``."""
        return self.run_dir / "checkpoints"

    def _write_config(self) -> None:
        write_run_config(self.run_dir, self.model, self.config, self.run_config)

    def save_checkpoint(self) -> Path | None:
        """Write the full training state to ``checkpoints/step-XXXXXXX/`` (rank 0), keep
        the newest ``keep_checkpoints``, refresh ``model.safetensors`` and ``config.json``."""
        rngs = distributed.gather_objects(capture_rng(self.device), self.dist)
        path = None
        if self.dist.is_main:
            state = training_state(self)
            state["rng"] = rngs
            weights = {"model": self.model.state_dict()}
            if self.ema is not None:
                weights["ema"] = self.ema.shadow
            try:
                path = save_checkpoint(self.checkpoint_dir, self.step, weights, state)
                prune_checkpoints(self.checkpoint_dir, self.config.keep_checkpoints)
                final = self.ema.weights_like(self.model) if self.ema is not None else self.model.state_dict()
                save_tensors(final, self.run_dir / "model.safetensors")
                self._write_config()
            except OSError as e:
                raise self._write_failed(e) from None
        self._last_checkpoint_step = self.step
        distributed.barrier(self.dist)
        return path

    def _write_failed(self, e: OSError) -> WriteError:
        """One line for a checkpoint that could not be written (full disk, read-only run folder)."""
        last = list_checkpoints(self.checkpoint_dir)
        kept = (
            f"the newest intact checkpoint is step {last[-1][0]} (genlab resume continues from it once there is room)"
            if last
            else "no checkpoint was written"
        )
        err = WriteError(
            f"training stopped at step {self.step}: could not save a checkpoint in "
            f"{self.run_dir} ({e.strerror or e}); {kept}"
        )
        err.errno = e.errno
        return err

    def restore(self, path: str | Path | None = None) -> int | None:
        """Load a checkpoint: ``path``, or the newest valid one in ``run_dir/checkpoints``
        (a corrupt or partial one is skipped with a warning). Returns its step, or None
        when the run has no checkpoint yet."""
        chosen = None
        if self.dist.is_main:
            candidates = (
                [Path(path)] if path is not None else [p for _, p in reversed(list_checkpoints(self.checkpoint_dir))]
            )
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
        apply_training_state(self, weights, state, Path(chosen))
        return step
