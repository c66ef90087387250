"""Training checkpoints: one folder per saved step, verified on load.

File-level safety (atomic writes, safetensors, JSON, digests) lives in :mod:`genlab.io`.

A checkpoint is a folder ``checkpoints/step-0000500/`` holding

  model.safetensors   the raw model state_dict
  ema.safetensors     the EMA weights (float32), when EMA is on
  state.safetensors   every other tensor of the training state (optimiser moments,
                      RNG states, ...), keyed by its path in the state tree
  state.json          the state tree itself (scalars, structure, tensor references),
                      the step, and a manifest: size and SHA-256 of every file above

The folder is written under a temporary name and renamed when complete, and
``state.json`` is written last, so a folder named ``step-*`` is either whole or
detectably damaged (manifest mismatch). Nothing is pickled.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

from ..errors import CheckpointError
from ..io import bytes_digest, file_digest, fsync_dir, load_tensors, read_json, tensors_to_bytes, write_synced

CHECKPOINT_FORMAT = "genlab-checkpoint-1"
_STEP_DIR = re.compile(r"^step-(\d+)$")


def checkpoint_name(step: int) -> str:
    return f"step-{step:07d}"


def encode_state(obj, tensors: dict[str, torch.Tensor], prefix: str = "state"):
    """Nested state (dicts, lists, tuples, numbers, tensors, numpy arrays) -> a JSON-ready
    tree; tensors go into ``tensors`` under a unique key and are referenced by it."""
    if isinstance(obj, torch.Tensor):
        key = prefix
        n = 1
        while key in tensors:
            n += 1
            key = f"{prefix}#{n}"
        tensors[key] = obj
        return {"__tensor__": key}
    if isinstance(obj, np.ndarray):
        return {"__ndarray__": obj.tolist(), "dtype": str(obj.dtype)}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        if all(isinstance(k, str) and not k.startswith("__") for k in obj):
            return {k: encode_state(v, tensors, f"{prefix}/{k}") for k, v in obj.items()}
        return {
            "__items__": [
                [encode_state(k, tensors, f"{prefix}/key"), encode_state(v, tensors, f"{prefix}/{k}")]
                for k, v in obj.items()
            ]
        }
    if isinstance(obj, tuple):
        return {"__tuple__": [encode_state(v, tensors, f"{prefix}/{i}") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [encode_state(v, tensors, f"{prefix}/{i}") for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise CheckpointError(
        f"cannot store a {type(obj).__name__} at {prefix} in a checkpoint "
        "(only tensors, arrays, numbers, strings, lists and dicts)"
    )


def decode_state(tree, tensors: dict[str, torch.Tensor]):
    """Inverse of :func:`encode_state`."""
    if isinstance(tree, dict):
        if "__tensor__" in tree:
            key = tree["__tensor__"]
            if key not in tensors:
                raise CheckpointError(f"checkpoint state refers to a missing tensor {key!r}")
            return tensors[key]
        if "__ndarray__" in tree:
            return np.asarray(tree["__ndarray__"], dtype=tree["dtype"])
        if "__items__" in tree:
            return {decode_state(k, tensors): decode_state(v, tensors) for k, v in tree["__items__"]}
        if "__tuple__" in tree:
            return tuple(decode_state(v, tensors) for v in tree["__tuple__"])
        return {k: decode_state(v, tensors) for k, v in tree.items()}
    if isinstance(tree, list):
        return [decode_state(v, tensors) for v in tree]
    return tree


def _remove_tree(path: Path) -> None:
    """Delete a folder by first renaming it out of the way (so a crash mid-delete never
    leaves a half-deleted ``step-*`` folder behind)."""
    trash = path.with_name(f".trash-{path.name}-{os.getpid()}")
    try:
        os.replace(path, trash)
    except OSError:
        trash = path
    shutil.rmtree(trash, ignore_errors=True)


def save_checkpoint(
    root: str | Path,
    step: int,
    weights: dict[str, dict[str, torch.Tensor]],
    state: dict,
) -> Path:
    """Write ``root/step-XXXXXXX/`` atomically.

    ``weights`` maps a file stem ("model", "ema") to a flat state_dict; ``state`` is any
    nested structure accepted by :func:`encode_state`. Returns the folder.
    """
    if "state" in weights:
        raise ValueError('"state" is reserved for the training state; name the weights file otherwise')
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / checkpoint_name(step)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=root))
    try:
        state_tensors: dict[str, torch.Tensor] = {}
        tree = encode_state(state, state_tensors)
        manifest = {}
        for stem, tensors in {**weights, "state": state_tensors}.items():
            data = tensors_to_bytes(tensors)
            write_synced(tmp / f"{stem}.safetensors", data)
            manifest[f"{stem}.safetensors"] = {"bytes": len(data), "sha256": bytes_digest(data)}
        doc = {"format": CHECKPOINT_FORMAT, "step": step, "files": manifest, "state": tree}
        write_synced(tmp / "state.json", (json.dumps(doc) + "\n").encode())
        fsync_dir(tmp)
        if final.exists():
            _remove_tree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    fsync_dir(root)
    return final


def load_checkpoint(path: str | Path) -> tuple[dict[str, dict[str, torch.Tensor]], dict, int]:
    """Read and verify a checkpoint folder -> (weights by file stem, state, step).

    Raises :class:`CheckpointError` when anything is missing, truncated or altered.
    """
    path = Path(path)
    doc = read_json(path / "state.json")
    if doc.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a {CHECKPOINT_FORMAT} checkpoint (format {doc.get('format')!r})")
    files = doc.get("files")
    if not isinstance(files, dict) or "state.safetensors" not in files:
        raise CheckpointError(f"{path / 'state.json'} has no file manifest")
    for name, info in files.items():
        f = path / name
        if not f.is_file():
            raise CheckpointError(f"{path} is incomplete: {name} is missing")
        size = f.stat().st_size
        if size != info.get("bytes"):
            raise CheckpointError(f"{f} is truncated or altered: {size} bytes, expected {info.get('bytes')}")
        if file_digest(f) != info.get("sha256"):
            raise CheckpointError(f"{f} is corrupt: its SHA-256 does not match the manifest")
    weights = {name[: -len(".safetensors")]: load_tensors(path / name) for name in files if name != "state.safetensors"}
    state = decode_state(doc["state"], load_tensors(path / "state.safetensors"))
    return weights, state, int(doc["step"])


def list_checkpoints(root: str | Path) -> list[tuple[int, Path]]:
    """``(step, folder)`` of every ``step-*`` folder under ``root``, oldest first (not verified)."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = []
    for p in root.iterdir():
        m = _STEP_DIR.match(p.name)
        if m and p.is_dir():
            found.append((int(m.group(1)), p))
    return sorted(found)


def prune_checkpoints(root: str | Path, keep: int) -> None:
    """Keep the newest ``keep`` checkpoints (all when ``keep`` < 1) and remove leftovers
    of interrupted writes."""
    root = Path(root)
    if not root.is_dir():
        return
    for p in root.iterdir():
        if p.name.startswith((".tmp-step-", ".trash-")) and p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
    if keep < 1:
        return
    for _, p in list_checkpoints(root)[:-keep]:
        _remove_tree(p)
