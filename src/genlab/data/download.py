"""Finding data set files locally, and downloading them with checksums.

Lookup order for a file of data set ``name``:

1. ``data_dir/<name>/<file>`` (when ``data_dir`` is given),
2. the cache ``$GENLAB_DATA/<name>/<file>`` (default ``~/.cache/genlab/<name>/``),
3. a download from the official host into the cache (only if ``download=True``).

A file may be present gzipped (``<file>.gz``) or not. Checksums (md5) are
verified on every load; for gzipped files of MNIST and Fashion-MNIST the md5 is
that of the *decompressed* content (the published one), so recompressed copies
are accepted. Downloads are written to a temporary file in the cache folder
and renamed into place only after the checksum passes; a file whose checksum
fails is deleted.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TypeVar

from .errors import DataError

T = TypeVar("T")

MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
FASHION_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"


@dataclass(frozen=True)
class RemoteFile:
    """One published file of a data set.

    Attributes:
        name: file name as published (e.g. ``train-images-idx3-ubyte.gz``).
        url: where to download it.
        md5: md5 of the file, or of its decompressed content when ``name``
            ends in ``.gz`` and ``md5_of_content`` is True; None = not checked.
        md5_of_content: see ``md5``.
    """

    name: str
    url: str
    md5: str | None
    md5_of_content: bool = True

    @property
    def plain_name(self) -> str:
        return self.name[:-3] if self.name.endswith(".gz") and self.md5_of_content else self.name


def _idx(base: str, md5s: dict[str, str]) -> dict[str, RemoteFile]:
    return {stem: RemoteFile(stem + ".gz", base + stem + ".gz", md5) for stem, md5 in md5s.items()}


#: The published files of each downloadable data set, by short key.
REMOTE_FILES: dict[str, dict[str, RemoteFile]] = {
    "mnist": _idx(
        MNIST_URL,
        {
            "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
            "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
            "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
            "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
        },
    ),
    "fashion-mnist": _idx(
        FASHION_URL,
        {
            "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
            "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
            "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
            "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
        },
    ),
    "cifar10": {
        "archive": RemoteFile(
            "cifar-10-binary.tar.gz",
            "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
            "c32a1d4ab5d03f1284b67883e8d87530",
            md5_of_content=False,
        ),
    },
    # No published md5 is known to us for the original .mat file; its content
    # is validated structurally (variable ``ff``, shape (560, 1965)) instead.
    "frey-face": {
        "ff": RemoteFile("frey_rawface.mat", "https://cs.nyu.edu/~roweis/data/frey_rawface.mat", None, False),
    },
}


def cache_dir(name: str) -> Path:
    """``$GENLAB_DATA/<name>`` or ``~/.cache/genlab/<name>``."""
    root = os.environ.get("GENLAB_DATA") or Path.home() / ".cache" / "genlab"
    return Path(root) / name


def search_dirs(name: str, data_dir: str | os.PathLike | None) -> list[Path]:
    """The folders searched for data set ``name``, in order."""
    dirs = [Path(data_dir) / name] if data_dir is not None else []
    return dirs + [cache_dir(name)]


def _fetch(url: str, dest: Path, timeout: float = 60.0) -> None:
    """Download ``url`` to the file ``dest`` (no checks; see :func:`download`)."""
    with urllib.request.urlopen(url, timeout=timeout) as response, open(dest, "wb") as f:
        shutil.copyfileobj(response, f, 1 << 20)


def md5_of(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def md5_file(path: Path) -> str:
    from ..io import file_digest

    return file_digest(path, "md5")


def read_verified(path: Path, spec: RemoteFile) -> bytes:
    """The (decompressed) bytes of ``path``, after checking ``spec.md5``.

    Raises:
        DataError: unreadable file or checksum mismatch.
    """
    try:
        raw = path.read_bytes()
        data = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" and spec.md5_of_content else raw
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise DataError(f"cannot read {str(path)!r}: {e}; delete it and get a fresh copy of {spec.name}") from e
    if spec.md5 is not None:
        got = md5_of(data)
        if got != spec.md5:
            what = "decompressed content" if spec.md5_of_content and spec.name.endswith(".gz") else "file"
            raise DataError(
                f"checksum mismatch for {str(path)!r}: md5 of {what} is {got}, expected {spec.md5}. "
                f"The file is corrupt or not the original; delete it and get a fresh copy of "
                f"{spec.name} from {spec.url}"
            )
    return data


def verify_file(path: Path, spec: RemoteFile) -> None:
    """Check ``spec.md5`` against a file's own bytes (for large archives)."""
    if spec.md5 is not None and (got := md5_file(path)) != spec.md5:
        raise DataError(
            f"checksum mismatch for {str(path)!r}: md5 is {got}, expected {spec.md5}. "
            f"The file is corrupt or incomplete; delete it and get a fresh copy from {spec.url}"
        )


def find_local(name: str, spec: RemoteFile, data_dir: str | os.PathLike | None) -> Path | None:
    """First existing copy of ``spec`` (as published, or decompressed) in :func:`search_dirs`."""
    for d in search_dirs(name, data_dir):
        for fname in dict.fromkeys([spec.name, spec.plain_name]):
            if (d / fname).is_file():
                return d / fname
    return None


def download(name: str, spec: RemoteFile, validate: Callable[[Path], object]) -> Path:
    """Download ``spec`` into the cache of data set ``name`` and validate it.

    ``validate(path)`` raises DataError on a bad file (checksum or content).
    The file appears under its final name only once it passed; otherwise the
    partial or corrupt download is deleted.
    """
    dest_dir = cache_dir(name)
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / spec.name
    tmp = dest_dir / f".{spec.name}.part-{os.getpid()}"
    try:
        try:
            _fetch(spec.url, tmp)
        except Exception as e:  # noqa: BLE001 - urllib raises many kinds
            raise DataError(
                f"could not download {spec.url} ({e}). Download it yourself and place it at {str(dest)!r}"
            ) from e
        validate(tmp)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def obtain(
    name: str,
    spec: RemoteFile,
    data_dir: str | os.PathLike | None,
    allow_download: bool,
    read: Callable[[Path], T],
    hint: str = "",
) -> T:
    """Find (see module doc) or download ``spec`` and return ``read(path)``.

    ``read`` parses the file and raises DataError when its checksum or content
    is wrong. A corrupt copy in ``data_dir`` is an error (it is never
    deleted); a corrupt copy in the cache is deleted, with a warning, and
    downloaded again when downloads are allowed.
    """
    path = find_local(name, spec, data_dir)
    if path is not None:
        try:
            return read(path)
        except DataError as e:
            if path.parent != cache_dir(name) or not allow_download:
                raise
            warnings.warn(f"deleting corrupt cached file: {e}", stacklevel=2)
            path.unlink()
    if not allow_download:
        places = " or ".join(repr(str(d) + os.sep) for d in search_dirs(name, data_dir))
        raise DataError(
            f"data set {name!r}: file {spec.name} not found. Put it in {places}"
            f" (or pass download=True to fetch it from {spec.url}).{hint}"
        )
    return read(download(name, spec, read))
