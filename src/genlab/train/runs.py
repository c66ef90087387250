"""Run directories: train a registered model from scratch into a new folder
(:func:`train`), read a run's config back (:func:`load_run_config`) and continue
it (:func:`resume`).

A run directory holds ``config.json`` (model, train and data config), ``model.safetensors``
(the latest weights, EMA when on), ``checkpoints/step-XXXXXXX/``, ``metrics.jsonl``,
``samples/`` and ``tensorboard/``; while a process trains in it, also ``.lock`` (:func:`run_lock`).
"""

from __future__ import annotations

import dataclasses
import os
import re
import warnings
from contextlib import contextmanager, nullcontext
from pathlib import Path

from ..config import DataConfig, RunConfig, TrainConfig, from_dict, run_config_from_dict
from ..errors import CheckpointError, ConfigError, RunInUseError
from ..io import atomic_write_json, check_folder_path, make_dirs, read_json, write_error
from . import distributed
from .checkpoint import list_checkpoints
from .state import seed_everything


def write_run_config(run_dir: Path, model, train_config: TrainConfig, run_config: RunConfig | None = None) -> None:
    """Write ``run_dir/config.json``: ``run_config`` with ``train_config`` as its train part,
    or, without one, the model's own config when the model is in the registry (else nothing)."""
    from ..models.base import config_document

    if run_config is not None:
        doc = config_document(run_config.model_name, run_config.model, train=train_config, data=run_config.data)
    else:
        from ..registry import name_of

        try:
            name = name_of(model)
        except Exception:
            return
        doc = config_document(name, model.config, train=train_config)
    atomic_write_json(Path(run_dir) / "config.json", doc)


def safe_name(text: str) -> str:
    """The last path component of ``text`` with anything but letters, digits, ``._-`` replaced by ``_``."""
    text = Path(str(text).rstrip("/\\")).name or "data"
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)


def choose_run_dir(run_config: RunConfig, base: str | Path = "runs") -> Path:
    """``base/<model>-<data>``, or the first free ``-2``, ``-3``... suffix."""
    stem = f"{safe_name(run_config.model_name)}-{safe_name(run_config.data.name)}"
    base = Path(base)
    candidate = base / stem
    k = 2
    while candidate.exists():
        candidate = base / f"{stem}-{k}"
        k += 1
    return candidate


def load_data(data: DataConfig):
    """The data set a data config names (``genlab.data.load``)."""
    from .. import data as gdata

    return gdata.load(data.name, data.split, data.data_dir, image_size=data.image_size, channels=data.channels)


def build_model(run_config: RunConfig):
    """A fresh registered model from a run config (its model config converted to the model's class)."""
    from .. import registry

    config_cls, model_cls = registry.get(run_config.model_name)
    model_cfg = run_config.model
    if type(model_cfg) is not config_cls:
        from ..config import to_dict

        model_cfg = from_dict(config_cls, to_dict(model_cfg), "model")
    return model_cls(model_cfg)


def check_data_kind(model_name: str, data_name: str, shape: tuple[int, ...]) -> None:
    """A ConfigError when a model of images or sequences gets points (data of shape (D,)) or a
    model of points gets anything else; models whose config decides (``data_kind`` a property,
    e.g. gan) take either."""
    from .. import registry

    kind = getattr(registry.get(model_name)[1], "data_kind")  # a string, or a property where the config decides
    if isinstance(kind, str) and (kind == "points") != (len(shape) == 1):
        held = f"{'points' if len(shape) == 1 else 'data'} of shape {shape}"
        raise ConfigError(
            f"{model_name} models {kind}s, but the data set {data_name!r} holds {held}; "
            f"choose a data set of {kind}s (genlab datasets lists them)"
        )


def fit_model_to_data(run_config: RunConfig, dataset, asked_shape: tuple[int, ...] | None = None) -> RunConfig:
    """Fill ``model.image_shape`` from the data and check ``model.num_classes``; ``asked_shape``,
    a shape the user set, must be the data's (a ConfigError saying how to resize it otherwise)."""
    images = dataset.images
    k = run_config.model.num_classes
    if k > 0:
        if getattr(dataset, "labels", None) is None:
            raise ConfigError(
                f"model.num_classes={k} makes the model class-conditional, but the data set {run_config.data.name!r} "
                "has no labels; set model.num_classes=0 or use a labelled data set"
            )
        have = int(getattr(dataset, "num_classes", 0) or (int(dataset.labels.max()) + 1))
        if have != k:
            raise ConfigError(
                f"model.num_classes={k} but the data set {run_config.data.name!r} has {have} "
                f"classes; set model.num_classes={have}"
            )
    shape = tuple(int(s) for s in images.shape[1:])  # (C, H, W) for images, (2,) for 2-D points
    check_data_kind(run_config.model_name, run_config.data.name, shape)
    if asked_shape is not None and tuple(asked_shape) != shape:
        resize = (
            f"--set data.image_size=[{asked_shape[1]}, {asked_shape[2]}] --set data.channels={asked_shape[0]}"
            if len(asked_shape) == 3
            else "data.image_size and data.channels"
        )
        raise ConfigError(
            f"model.image_shape={list(asked_shape)}, but the data set {run_config.data.name!r} holds data of shape "
            f"{shape} and the data decides the model's shape: resize the data ({resize}) or drop model.image_shape"
        )
    model_cfg = dataclasses.replace(run_config.model, image_shape=shape)
    return dataclasses.replace(run_config, model=model_cfg)


def check_new_run_dir(run_dir: Path) -> None:
    """Refuse, before anything is written, a folder that cannot hold a new run: a file,
    a path under a file, or a folder that already holds a run or a saved model."""
    check_folder_path(run_dir)
    if list_checkpoints(run_dir / "checkpoints") or (run_dir / "model.safetensors").exists():
        raise CheckpointError(
            f"{run_dir} already holds a trained model; continue a run with genlab.train.resume({str(run_dir)!r}, "
            "steps) (genlab resume) or choose another directory"
        )


#: The lock file of a run folder (see :func:`run_lock`).
LOCK_FILE = ".lock"


@contextmanager
def run_lock(run_dir: str | Path):
    """Hold the existing folder ``run_dir`` for this process alone: an exclusive, non-blocking
    ``flock`` on ``run_dir/.lock``, which holds this process's id and is removed on release
    (also on an exception or Ctrl-C; the operating system releases the lock of a killed process).

    Raises :class:`RunInUseError` naming the holder's pid when another process holds it.
    Where there is no ``fcntl`` (Windows) the folder is not locked, with a warning.
    """
    try:
        import fcntl
    except ImportError:
        warnings.warn(
            f"run folders cannot be locked on this platform: train or resume {run_dir} from one process at a time",
            stacklevel=3,
        )
        yield
        return
    path = Path(run_dir) / LOCK_FILE
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise write_error(path, e, "create the lock file") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise RunInUseError(
                f"run folder {run_dir} is in use by another genlab process (pid {pid}); "
                "wait for it or choose another --out"
            ) from None
        try:  # the file we locked may have been removed by its previous holder meanwhile: then lock the new one
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.unlink(path)
        os.close(fd)


def train(
    run_config: RunConfig | str,
    out_dir: str | None = None,
    dataset=None,
    *,
    data: str | None = None,
    preset: str | None = None,
    overrides=(),
) -> Path:
    """Train a registered model from scratch; returns the run directory.

    ``run_config``: a :class:`RunConfig`, or a model name: then the RunConfig is
    ``genlab.registry.build_run_config(name, data, preset, overrides)``, exactly what
    ``genlab train NAME --data DATA --set OVERRIDE ...`` trains. A RunConfig built by hand
    starts from ``TrainConfig()``'s defaults, not the model's (e.g. the GANs' lr 2e-4 and
    betas (0.5, 0.999)): build it with ``build_run_config`` to start from the model's.

    >>> train("gan", data="ring8", overrides=["train.steps=100"])

    The run directory is ``out_dir`` or ``runs/<model>-<data>`` (``-2``, ``-3``... when
    taken). The data set is ``dataset`` or ``genlab.data.load(run_config.data...)``.
    Under torchrun every process calls this; rank 0 writes the files. Nothing is written
    when a setting is refused (0 steps, a folder that holds a model, a bad model config).
    The folder is locked while training (:func:`run_lock`): a second process is refused.
    """
    asked_shape = None
    if isinstance(run_config, str):
        from ..registry import build_run_config

        run_config = build_run_config(run_config, data=data, preset=preset, overrides=overrides)
        if any(str(o).partition("=")[0].strip() == "model.image_shape" for o in overrides):
            asked_shape = tuple(run_config.model.image_shape)
    elif data is not None or preset is not None or overrides:
        raise ConfigError(
            "data=, preset= and overrides= go with a model name; apply them to a RunConfig with "
            "genlab.config.apply_overrides, or pass the model name"
        )
    run_config.train.validate()
    if run_config.train.steps < 1:
        raise ConfigError(
            f"train.steps={run_config.train.steps}: a new run needs at least 1 step (nothing was written)"
        )
    info = distributed.setup()
    try:
        if info.is_main and out_dir is not None:
            check_new_run_dir(Path(out_dir))
        if dataset is None:
            dataset = load_data(run_config.data)
        run_config = fit_model_to_data(run_config, dataset, asked_shape)
        run_dir = None
        if info.is_main:
            run_dir = str(Path(out_dir) if out_dir is not None else choose_run_dir(run_config))
        run_dir = Path(distributed.broadcast_object(run_dir, info))
        seed_everything(run_config.train.seed)  # identical initial weights on every rank
        model = build_model(run_config)
        from .trainer import Trainer  # here: trainer.py imports this module

        trainer = Trainer(model, dataset, run_config.train, run_dir, run_config)
        if info.is_main:  # only now: a model or train setting refused above leaves no folder behind
            make_dirs(run_dir)
        with run_lock(run_dir) if info.is_main else nullcontext():
            if info.is_main:
                check_new_run_dir(run_dir)  # again: another process may have trained here since the check above
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


def resume(run_dir: str | Path, steps: int, dataset=None, max_seconds: float | None = None) -> Path:
    """Continue the run in ``run_dir`` to a total of ``steps`` iterations.

    Restores the newest valid checkpoint (a damaged one is skipped with a warning),
    reloads the data set (or uses ``dataset``), sets ``train.steps`` in
    ``config.json`` to ``steps`` and trains. ``max_seconds`` replaces the run's time
    budget ``train.max_seconds`` (None keeps it; the time already spent counts).
    Returns the run directory. A run already at ``steps`` (or past them, or out of
    time) is left exactly as it is, with a warning when past or out of time.

    A folder without checkpoints (e.g. written by ``model.save``) is refused with a
    CheckpointError before anything is read or written, a folder another process trains
    in with a :class:`~genlab.errors.RunInUseError` (:func:`run_lock`).
    """
    run_dir = Path(run_dir)
    if not list_checkpoints(run_dir / "checkpoints"):
        what = "no run folder" if not run_dir.is_dir() else "no checkpoints/ to resume from"
        raise CheckpointError(
            f"cannot resume {run_dir}: {what} (nothing was changed); start a new run with genlab train ... --out OTHER"
        )
    info = distributed.setup()
    try:
        with run_lock(run_dir) if info.is_main else nullcontext():  # held from the first read to the last write
            run_config = load_run_config(run_dir)
            if max_seconds is not None:
                run_config = dataclasses.replace(
                    run_config, train=dataclasses.replace(run_config.train, max_seconds=float(max_seconds))
                )
            if dataset is None:
                dataset = load_data(run_config.data)
            run_config = fit_model_to_data(run_config, dataset)
            seed_everything(run_config.train.seed)
            model = build_model(run_config)
            from .trainer import Trainer  # here: trainer.py imports this module

            trainer = Trainer(model, dataset, run_config.train, run_dir, run_config)
            if trainer.restore() is None:  # the checkpoints went away since the check above
                raise CheckpointError(
                    f"cannot resume {run_dir}: its checkpoints/ holds no checkpoint (nothing was changed)"
                )
            return trainer.fit(steps)
    finally:
        distributed.teardown(info)
