"""Safe files: atomic writes (temp file + fsync + rename), pickle-free tensors
(safetensors), JSON documents and file digests.

A safetensors file written by :func:`save_tensors` carries the SHA-256 of its tensors in
its own metadata (written in the same atomic write as the weights), and
:func:`load_tensors` checks it, so that a damaged byte is an error, not a NaN weight.

Nothing half-written ever replaces a good file: every writer here writes to a
temporary file in the same folder, flushes it to disk, then renames it over
the target (an atomic operation on POSIX and Windows). Used by checkpoints,
``model.save``, the image and plot writers, reports and downloads.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as _safetensors_bytes

from .errors import CheckpointError, WriteError


def fsync_dir(directory: Path) -> None:
    """Flush a folder's entries (a rename inside it) to disk; a no-op where unsupported."""
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


def write_synced(path: Path, data: bytes) -> None:
    """Plain write + fsync, for files inside a temporary folder that is itself renamed
    into place (they need no rename of their own)."""
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def write_error(path: str | Path, e: OSError, doing: str = "write") -> WriteError:
    """A one-line :class:`WriteError` for an OSError met while writing ``path`` (keeps its errno)."""
    reason = e.strerror or str(e)
    err = WriteError(f"cannot {doing} {path}: {reason[:1].lower() + reason[1:]}")
    err.errno = e.errno
    return err


def check_folder_path(path: str | Path) -> Path:
    """Raise a one-line :class:`WriteError` when ``path`` cannot become a folder because
    it is an existing file or lies under one; writes nothing."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise WriteError(f"cannot use {path} as a folder: it is an existing file")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise WriteError(f"cannot create the folder {path}: {parent} is a file, not a folder")
            break
    return path


def make_dirs(path: str | Path) -> Path:
    """Create the folder ``path`` and its parents (fine when it exists); a one-line
    :class:`WriteError` when a file stands in the way or the location is not writable."""
    path = check_folder_path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise write_error(path, e, "create the folder") from None
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that ``path`` is either the old or the new file.

    Any failure (read-only location, full disk, a folder at ``path``) is a one-line
    :class:`WriteError`, and ``path`` keeps its old content.
    """
    path = Path(path)
    make_dirs(path.parent)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError) and not isinstance(e, WriteError):
            raise write_error(path, e) from None
        raise
    fsync_dir(path.parent)


def atomic_write_json(path: str | Path, doc: dict) -> None:
    """Write ``doc`` as indented JSON (plus a final newline), atomically."""
    atomic_write_bytes(path, (json.dumps(doc, indent=2) + "\n").encode())


def tensors_to_bytes(tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> bytes:
    """A flat dict of tensors -> safetensors bytes (detached, contiguous CPU copies, so
    tensors that share storage, e.g. tied weights, are accepted)."""
    flat = {k: v.detach().contiguous().cpu().clone() for k, v in tensors.items()}
    return _safetensors_bytes(flat, metadata=metadata)


#: The metadata key under which :func:`save_tensors` stores :func:`tensors_digest` in the file.
DIGEST_KEY = "genlab.sha256"


def tensors_digest(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 of a flat dict of tensors: name, dtype, shape and raw bytes of each, by name.
    It depends on the tensors alone, not on how a file lays them out."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        h.update(f"{name}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()


def save_tensors(tensors: dict[str, torch.Tensor], path: str | Path, metadata: dict[str, str] | None = None) -> None:
    """Save a flat dict of tensors as safetensors, atomically, with their :func:`tensors_digest`
    in the file's metadata (checked by :func:`load_tensors`).

    Tensors that share storage (tied weights) are cloned so safetensors accepts them.
    """
    atomic_write_bytes(path, tensors_to_bytes(tensors, {**(metadata or {}), DIGEST_KEY: tensors_digest(tensors)}))


def load_tensors(path: str | Path, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Load a safetensors file, turning any failure into a clear CheckpointError; a file that
    carries a digest (:func:`save_tensors`) must match it (files without one load as they are)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"missing weights file {path}")
    try:
        with safe_open(str(path), framework="pt", device=str(device)) as f:
            written = (f.metadata() or {}).get(DIGEST_KEY)
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{path} is not a readable safetensors file (corrupt or truncated?): {e}") from None
    if written is not None and tensors_digest(tensors) != written:
        raise CheckpointError(f"{path} is corrupt: its SHA-256 does not match the one written at save")
    return tensors


def read_json(path: str | Path) -> dict:
    """Read a JSON object from ``path``; a missing, malformed or non-object file is a CheckpointError."""
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


def file_digest(path: str | Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in 1 MiB chunks (any hashlib algorithm name)."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def bytes_digest(data: bytes) -> str:
    """SHA-256 hex digest of bytes in memory."""
    return hashlib.sha256(data).hexdigest()
