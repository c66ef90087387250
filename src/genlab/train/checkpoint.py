"""Safe files: atomic writes (temp file + fsync + rename) and pickle-free tensors.

Nothing half-written ever replaces a good file: every writer here writes to a
temporary file in the same folder, flushes it to disk, then renames it over
the target (an atomic operation on POSIX and Windows).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save as _safetensors_bytes

from ..errors import CheckpointError


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # not supported on this platform (Windows)
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that ``path`` is either the old or the new file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def atomic_write_json(path: str | Path, doc: dict) -> None:
    atomic_write_bytes(path, (json.dumps(doc, indent=2) + "\n").encode())


def save_tensors(tensors: dict[str, torch.Tensor], path: str | Path, metadata: dict[str, str] | None = None) -> None:
    """Save a flat dict of tensors as safetensors, atomically.

    Tensors that share storage (tied weights) are cloned so safetensors accepts them.
    """
    flat = {k: v.detach().contiguous().cpu().clone() for k, v in tensors.items()}
    atomic_write_bytes(path, _safetensors_bytes(flat, metadata=metadata))


def load_tensors(path: str | Path, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Load a safetensors file, turning any failure into a clear CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"missing weights file {path}")
    try:
        return load_file(str(path), device=str(device))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{path} is not a readable safetensors file (corrupt or truncated?): {e}") from None


def read_json(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"missing {path.name} in {path.parent}")
    try:
        doc = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path} is not valid JSON: {e}") from None
    if not isinstance(doc, dict):
        raise CheckpointError(f"{path} must hold a JSON object")
    return doc


# --------------------------------------------------------------------------- training checkpoints
#
# A checkpoint is a folder ``checkpoints/step-0000500/`` holding
#
#   model.safetensors   the raw model state_dict
#   ema.safetensors     the EMA weights (float32), when EMA is on
#   state.safetensors   every other tensor of the training state (optimiser moments,
#                       RNG states, ...), keyed by its path in the state tree
#   state.json          the state tree itself (scalars, structure, tensor references),
#                       the step, and a manifest: size and SHA-256 of every file above
#
# The folder is written under a temporary name and renamed when complete, and
# ``state.json`` is written last, so a folder named ``step-*`` is either whole or
# detectably damaged (manifest mismatch). Nothing is pickled.

import hashlib
import re
import shutil

import numpy as np

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
        return {"__items__": [[encode_state(k, tensors, f"{prefix}/key"), encode_state(v, tensors, f"{prefix}/{k}")] for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {"__tuple__": [encode_state(v, tensors, f"{prefix}/{i}") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [encode_state(v, tensors, f"{prefix}/{i}") for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise CheckpointError(f"cannot store a {type(obj).__name__} at {prefix} in a checkpoint (only tensors, arrays, numbers, strings, lists and dicts)")


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


def file_digest(path: str | Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in 1 MiB chunks (any hashlib algorithm name)."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _remove_tree(path: Path) -> None:
    """Delete a folder by first renaming it out of the way (so a crash mid-delete never
    leaves a half-deleted ``step-*`` folder behind)."""
    trash = path.with_name(f".trash-{path.name}-{os.getpid()}")
    try:
        os.replace(path, trash)
    except OSError:
        trash = path
    shutil.rmtree(trash, ignore_errors=True)


def _write_synced(path: Path, data: bytes) -> None:
    """Plain write + fsync: inside a checkpoint's temporary folder, which is itself
    renamed into place, files need no rename of their own."""
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


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
        files = {}
        state_tensors: dict[str, torch.Tensor] = {}
        tree = encode_state(state, state_tensors)
        manifest = {}
        for stem, tensors in {**weights, "state": state_tensors}.items():
            flat = {k: v.detach().contiguous().cpu().clone() for k, v in tensors.items()}
            data = _safetensors_bytes(flat)
            _write_synced(tmp / f"{stem}.safetensors", data)
            manifest[f"{stem}.safetensors"] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        doc = {"format": CHECKPOINT_FORMAT, "step": step, "files": manifest, "state": tree}
        _write_synced(tmp / "state.json", (json.dumps(doc) + "\n").encode())
        _fsync_dir(tmp)
        if final.exists():
            _remove_tree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _fsync_dir(root)
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
