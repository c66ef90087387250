"""Tests of genlab.data: named sets on the real copies in shared/data, downloads
(never touching the network), folder and array loaders, transforms."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import SHARED_DATA
from genlab import data
from genlab.data import DataError, ImageDataset, transforms
from genlab.data import download as dl

REAL_FETCH = dl._fetch

SHARED = SHARED_DATA or Path("/nonexistent")


def shared(sub: str) -> Path:
    if not (SHARED / sub).exists():
        pytest.skip(f"{SHARED / sub} not available")
    return SHARED


@pytest.fixture(autouse=True)
def no_network(monkeypatch, tmp_path):
    """Any download attempt fails loudly; the cache is a fresh temporary folder."""

    def fail(url, dest, timeout=60.0):
        raise AssertionError(f"test tried to download {url}")

    monkeypatch.setattr(dl, "_fetch", fail)
    monkeypatch.setenv("GENLAB_DATA", str(tmp_path / "cache"))


# ------------------------------------------------------------------ named sets


@pytest.mark.parametrize("name,n_train,n_test", [("mnist", 60000, 10000), ("fashion-mnist", 60000, 10000)])
def test_idx_sets(name, n_train, n_test):
    root = shared(name)
    for split, n in (("train", n_train), ("test", n_test)):
        ds = data.load(name, split, root, download=False)
        assert ds.images.shape == (n, 1, 28, 28) and ds.images.dtype == torch.uint8
        assert ds.labels.shape == (n,) and ds.labels.dtype == torch.int64
        assert ds.num_classes == 10 and set(ds.labels.unique().tolist()) == set(range(10))
        assert ds.images.max() == 255 and ds.name == name
        x, y = ds[0]
        assert x.dtype == torch.float32 and x.shape == (1, 28, 28) and 0 <= x.min() <= x.max() <= 1
        assert isinstance(y, int) and 0 <= y < 10


def test_frey_face():
    root = shared("frey-face")
    train, test = (data.load("frey-face", s, root, download=False) for s in ("train", "test"))
    assert len(train) + len(test) == 1965 and len(test) == 200
    assert train.shape == (1, 28, 20) and train.labels is None and train.num_classes == 0
    assert train[0][1] == -1
    assert torch.equal(data.load("frey-face", "test", root).images, test.images)  # fixed split


@pytest.mark.slow
def test_cifar10_from_jpeg_folder():
    root = shared("cifar10-test-jpeg")
    ds = data.load("cifar10", "test", root, download=False)
    assert ds.images.shape == (10000, 3, 32, 32) and ds.num_classes == 10
    assert torch.bincount(ds.labels).tolist() == [1000] * 10
    assert ds.class_names[0] == "airplane" and ds.class_names[9] == "truck"
    with pytest.raises(DataError, match="cifar-10-binary.tar.gz.*cifar10-test-jpeg"):
        data.load("cifar10", "train", root, download=False)


def test_cifar10_binary_archive(tmp_path, monkeypatch):
    import io
    import tarfile

    rng = np.random.RandomState(0)
    tar_path = tmp_path / "cifar10" / "cifar-10-binary.tar.gz"
    tar_path.parent.mkdir()
    with tarfile.open(tar_path, "w:gz") as tar:
        for batch in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
            rec = rng.randint(0, 256, (3, 3073)).astype(np.uint8)
            rec[:, 0] %= 10
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{batch}")
            info.size = rec.nbytes
            tar.addfile(info, io.BytesIO(rec.tobytes()))
    spec = dl.REMOTE_FILES["cifar10"]["archive"]
    monkeypatch.setitem(
        dl.REMOTE_FILES["cifar10"],
        "archive",
        dl.RemoteFile(spec.name, spec.url, dl.md5_file(tar_path), md5_of_content=False),
    )
    train = data.load("cifar10", "train", tmp_path, download=False)
    assert train.images.shape == (15, 3, 32, 32) and train.labels.max() < 10
    assert len(data.load("cifar10", "test", tmp_path, download=False)) == 3


def test_digits_and_mnist_5k():
    d_train, d_test = data.load("digits"), data.load("digits", "test")
    assert len(d_train) == 1500 and len(d_test) == 297 and d_train.shape == (1, 8, 8)
    assert d_train.images.max() == 255 and d_train.num_classes == 10
    assert torch.equal(data.load("digits").images, d_train.images)  # deterministic split
    m_train, m_test = data.load("mnist-5k"), data.load("MNIST-5k", "test")
    assert (len(m_train), len(m_test)) == (4500, 500) and m_train.shape == (1, 28, 28)
    assert m_test.labels.unique().numel() == 10  # shuffled, not sorted by class
    assert data.DEFAULT_DATASET == "mnist-5k" and set(data.DATASETS) >= {"mnist", "digits", "celeba"}


def test_resize_and_channels():
    ds = data.load("digits", "test", image_size=(16, 16), channels=3)
    assert ds.images.shape == (297, 3, 16, 16)
    assert torch.equal(ds.images[:, 0], ds.images[:, 2])
    grey = data.load("digits", "test", channels=1)
    assert grey.shape == (1, 8, 8)


def test_unknown_name_and_split():
    with pytest.raises(DataError) as e:
        data.load("mnits")
    for choice in list(data.DATASETS) + ["folder:", "npz:", "npy:"]:
        assert choice in str(e.value)
    with pytest.raises(DataError, match="split"):
        data.load("digits", "validation")
    with pytest.raises(DataError, match="image_size"):
        data.load("digits", image_size=(0, 3))


def test_missing_files_error(tmp_path):
    with pytest.raises(DataError) as e:
        data.load("mnist", data_dir=tmp_path, download=False)
    msg = str(e.value)
    assert "train-images-idx3-ubyte.gz" in msg and str(tmp_path / "mnist") in msg
    with pytest.raises(DataError, match="img_align_celeba"):
        data.load("celeba", data_dir=tmp_path)
    assert isinstance(e.value, ValueError)


# ------------------------------------------------------------------ checksums and downloads


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 8, array.ndim]) + np.array(array.shape, dtype=">i4").tobytes()
    return header + array.astype(np.uint8).tobytes()


def test_md5_real_files_and_corrupted_copy(tmp_path):
    root = shared("mnist")
    spec = dl.REMOTE_FILES["mnist"]["t10k-labels-idx1-ubyte"]
    raw = dl.read_verified(root / "mnist" / spec.name, spec)  # passes on the real file
    assert len(raw) == 10008
    bad = bytearray(raw)
    bad[100] ^= 1
    (tmp_path / "mnist").mkdir()
    (tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz").write_bytes(
        (root / "mnist" / "t10k-images-idx3-ubyte.gz").read_bytes()
    )
    (tmp_path / "mnist" / "t10k-labels-idx1-ubyte").write_bytes(bytes(bad))  # not gzipped: also accepted
    with pytest.raises(DataError, match="checksum mismatch.*t10k-labels-idx1-ubyte.*27ae3e4e"):
        data.load("mnist", "test", tmp_path, download=False)
    assert (tmp_path / "mnist" / "t10k-labels-idx1-ubyte").exists()  # user files are never deleted
    (tmp_path / "mnist" / "t10k-labels-idx1-ubyte").write_bytes(raw)
    assert len(data.load("mnist", "test", tmp_path, download=False)) == 10000


@pytest.fixture
def tiny_mnist(tmp_path, monkeypatch):
    """Small gzipped IDX files served by a fake _fetch, with a matching md5 table."""
    rng = np.random.RandomState(1)
    contents = {
        "train-images-idx3-ubyte": idx_bytes(rng.randint(0, 256, (6, 28, 28))),
        "train-labels-idx1-ubyte": idx_bytes(np.arange(6) % 10),
    }
    served = tmp_path / "served"
    served.mkdir()
    for stem, raw in contents.items():
        (served / f"{stem}.gz").write_bytes(gzip.compress(raw))
        spec = dl.REMOTE_FILES["mnist"][stem]
        monkeypatch.setitem(
            dl.REMOTE_FILES["mnist"],
            stem,
            dl.RemoteFile(spec.name, f"http://fake/{stem}.gz", hashlib.md5(raw).hexdigest()),
        )
    fetched = []

    def fake_fetch(url, dest, timeout=60.0):
        fetched.append(url)
        Path(dest).write_bytes((served / url.rsplit("/", 1)[1]).read_bytes())

    monkeypatch.setattr(dl, "_fetch", fake_fetch)
    return served, fetched


def test_download_into_cache(tiny_mnist, tmp_path):
    served, fetched = tiny_mnist
    ds = data.load("mnist", "train")
    assert ds.images.shape == (6, 1, 28, 28) and ds.labels.tolist() == [0, 1, 2, 3, 4, 5]
    cache = tmp_path / "cache" / "mnist"
    assert sorted(p.name for p in cache.iterdir()) == ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"]
    assert len(fetched) == 2
    data.load("mnist", "train")  # second time: from the cache
    assert len(fetched) == 2
    # a corrupt cached file is deleted and downloaded again
    (cache / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"garbage"))
    with pytest.warns(UserWarning, match="corrupt cached"):
        data.load("mnist", "train")
    assert len(fetched) == 3


def test_download_bad_checksum_leaves_nothing(tiny_mnist, tmp_path, monkeypatch):
    served, _ = tiny_mnist
    (served / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.zeros(6))))
    with pytest.raises(DataError, match="checksum mismatch"):
        data.load("mnist", "train")
    cache = tmp_path / "cache" / "mnist"
    assert [p.name for p in cache.iterdir()] == ["train-images-idx3-ubyte.gz"]  # no label file, no temp file


def test_download_failure_and_no_download(tiny_mnist, monkeypatch):
    def unreachable(url, dest, timeout=60.0):
        raise OSError("network unreachable")

    monkeypatch.setattr(dl, "_fetch", unreachable)
    with pytest.raises(DataError, match="could not download .*network unreachable.*place it at"):
        data.load("mnist", "train")
    with pytest.raises(DataError, match="not found.*download=True"):
        data.load("mnist", "train", download=False)


def test_fetch_from_local_http_server(tmp_path, monkeypatch):
    for var in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    (tmp_path / "file.bin").write_bytes(b"x" * 3000)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        REAL_FETCH(f"http://127.0.0.1:{server.server_port}/file.bin", tmp_path / "got.bin")
    finally:
        server.shutdown()
        server.server_close()
    assert (tmp_path / "got.bin").read_bytes() == b"x" * 3000


# ------------------------------------------------------------------ folders


def save(path: Path, array: np.ndarray):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array.astype(np.uint8)).save(path)


def test_folder_with_classes_mixed_sizes_and_corrupt_file(tmp_path):
    rng = np.random.RandomState(0)
    for i in range(12):
        save(tmp_path / "imgs" / "cat" / f"{i}.png", rng.randint(0, 256, (20, 30, 3)))
        save(tmp_path / "imgs" / "dog" / "sub" / f"{i}.jpg", rng.randint(0, 256, (40, 40)))
    (tmp_path / "imgs" / "dog" / "broken.png").write_bytes(b"not an image")
    (tmp_path / "imgs" / "notes.txt").write_text("ignored")
    with pytest.raises(
        DataError, match=r"2 sizes \(height x width: 20x30 \(12 images\), 40x40 \(12 images\)\).*image_size"
    ):
        data.load(f"folder:{tmp_path / 'imgs'}", "all")  # mixed sizes: the caller chooses one
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        ds = data.load(f"folder:{tmp_path / 'imgs'}", "all", image_size=(64, 64))
    assert [str(x.message) for x in w if "unreadable" in str(x.message)] == [
        f"skipped 1 unreadable image file(s) in {str(tmp_path / 'imgs')!r}"
    ]
    assert len(w) == 1
    assert ds.images.shape == (24, 3, 64, 64)  # any colour -> RGB
    assert ds.class_names == ("cat", "dog") and ds.labels.tolist() == [0] * 12 + [1] * 12
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        small = data.load(f"folder:{tmp_path / 'imgs'}", "all", image_size=(8, 12), channels=1)
        assert small.shape == (1, 8, 12)
        train = data.load(f"folder:{tmp_path / 'imgs'}", image_size=(8, 12))
        test = data.load(f"folder:{tmp_path / 'imgs'}", "test", image_size=(8, 12))
    assert (len(train), len(test)) == (22, 2)


def test_folder_unlabeled_grey_native_size(tmp_path):
    for i in range(3):
        save(tmp_path / f"{i}.bmp", np.full((10, 7), 40 * i))
    save(tmp_path / "more" / "x.gif", np.full((10, 7), 200))
    ds = data.load(f"folder:{tmp_path}", "all")
    assert ds.labels is None and ds.shape == (1, 10, 7) and len(ds) == 4
    assert ds.images[:, 0, 0, 0].tolist() == [0, 40, 80, 200]
    with pytest.raises(DataError, match="empty"):
        data.load(f"folder:{tmp_path}", "test")  # 10% of 4 images rounds to 0


def test_folder_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty"):
        data.load(f"folder:{tmp_path / 'empty'}", "all")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "a.png").write_bytes(b"junk")
    with pytest.raises(DataError, match="no readable image.*bad"):
        data.load(f"folder:{tmp_path / 'bad'}", "all")
    with pytest.raises(DataError, match="does not exist"):
        data.load(f"folder:{tmp_path / 'nope'}")


# ------------------------------------------------------------------ arrays


@pytest.mark.parametrize("layout", ["nhw", "nhwc1", "nhwc3", "nchw1", "nchw3"])
@pytest.mark.parametrize("dtype", ["uint8", "float32"])
def test_npy_npz_layouts(tmp_path, layout, dtype):
    rng = np.random.RandomState(0)
    base = rng.randint(0, 256, (5, 3, 6, 4)).astype(np.uint8)  # (N, C, H, W)
    c = 1 if layout in ("nhw", "nhwc1", "nchw1") else 3
    expected = base[:, :c]
    stored = {
        "nhw": expected[:, 0],
        "nhwc1": expected.transpose(0, 2, 3, 1),
        "nhwc3": expected.transpose(0, 2, 3, 1),
        "nchw1": expected,
        "nchw3": expected,
    }[layout]
    if dtype == "float32":
        stored = stored.astype(np.float32) / 255
    np.save(tmp_path / "a.npy", stored)
    ds = data.load(f"npy:{tmp_path / 'a.npy'}")
    assert torch.equal(ds.images, torch.from_numpy(expected)) and ds.labels is None
    np.savez(tmp_path / "b.npz", images=stored, labels=np.arange(5))
    ds = data.load(f"npz:{tmp_path / 'b.npz'}", "test")
    assert torch.equal(ds.images, torch.from_numpy(expected)) and ds.labels.tolist() == [0, 1, 2, 3, 4]


def test_npz_splits_and_errors(tmp_path):
    x = np.zeros((4, 8, 8), np.uint8)
    np.savez(tmp_path / "s.npz", x_train=x, y_train=np.arange(4), x_test=x[:1], y_test=np.array([3]))
    assert len(data.load(f"npz:{tmp_path / 's.npz'}", "train")) == 4
    assert data.load(f"npz:{tmp_path / 's.npz'}", "test").labels.tolist() == [3]
    assert len(data.load(f"npz:{tmp_path / 's.npz'}", "all")) == 5
    np.save(tmp_path / "f.npy", np.full((2, 4, 4), 1.5, np.float32))
    with pytest.raises(DataError, match=r"float images must lie in \[0, 1\]"):
        data.load(f"npy:{tmp_path / 'f.npy'}")
    np.save(tmp_path / "o.npy", np.array([None, 1], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="holds Python objects"):
        data.load(f"npy:{tmp_path / 'o.npy'}")
    np.savez(tmp_path / "two.npz", a=x, b=x)
    with pytest.raises(DataError, match="'x' or 'images'"):
        data.load(f"npz:{tmp_path / 'two.npz'}")
    np.save(tmp_path / "shape.npy", np.zeros((2, 5, 5, 5), np.uint8))
    with pytest.raises(DataError, match="C in"):
        data.load(f"npy:{tmp_path / 'shape.npy'}")


def test_np_load_never_allows_pickle(tmp_path, monkeypatch):
    calls = []
    real = np.load

    def spy(*args, **kwargs):
        calls.append(kwargs.get("allow_pickle"))
        return real(*args, **kwargs)

    monkeypatch.setattr(np, "load", spy)
    np.save(tmp_path / "a.npy", np.zeros((2, 4, 4), np.uint8))
    np.savez(tmp_path / "b.npz", x=np.zeros((2, 4, 4), np.uint8))
    data.load(f"npy:{tmp_path / 'a.npy'}")
    data.load(f"npz:{tmp_path / 'b.npz'}")
    assert calls == [False, False]


# ------------------------------------------------------------------ dataset and transforms


def test_dataset_subset_and_validation():
    ds = ImageDataset(torch.arange(6 * 4, dtype=torch.uint8).reshape(6, 1, 2, 2), torch.tensor([0, 1, 2, 0, 1, 2]))
    sub = ds.subset([4, 1])
    assert sub.labels.tolist() == [1, 1] and sub.num_classes == 3 and sub.shape == (1, 2, 2)
    assert len(ds.subset(range(3))) == 3 and len(ds.subset(ds.labels == 0)) == 2
    with pytest.raises(ValueError):
        ImageDataset(torch.zeros(2, 2, 4, 4, dtype=torch.uint8))
    with pytest.raises(ValueError):
        ImageDataset(torch.zeros(2, 1, 4, 4))


def test_binarize_statistics_and_determinism():
    p = torch.tensor([0.0, 0.1, 0.5, 0.9, 1.0]).repeat(20000, 1)
    b = transforms.binarize(p, generator=torch.Generator().manual_seed(0))
    assert set(b.unique().tolist()) <= {0.0, 1.0}
    assert torch.allclose(b.mean(0), p[0], atol=0.01)
    b2 = transforms.binarize(p, generator=torch.Generator().manual_seed(0))
    assert torch.equal(b, b2)
    assert not torch.equal(b, transforms.binarize(p, generator=torch.Generator().manual_seed(1)))


def test_dequantize_range_and_cells():
    k = torch.arange(256, dtype=torch.uint8).repeat(400)
    x = transforms.to_float(k)
    g = torch.Generator().manual_seed(0)
    y = transforms.dequantize(x, generator=g)
    assert y.dtype == torch.float32 and y.min() >= 0 and y.max() < 1
    assert torch.equal(torch.floor(256 * y).to(torch.uint8), k)
    assert torch.equal(torch.floor(256 * y), torch.round(x * 255))
    assert torch.equal(y, transforms.dequantize(x, generator=torch.Generator().manual_seed(0)))


def test_dequantize_largest_noise_stays_in_cell(monkeypatch):
    below_one = float(torch.nextafter(torch.tensor(1.0), torch.tensor(0.0)))
    monkeypatch.setattr(torch, "rand", lambda shape, **kw: torch.full(shape, below_one, dtype=kw.get("dtype")))
    k = torch.arange(256, dtype=torch.uint8)
    y = transforms.dequantize(transforms.to_float(k))
    assert y.max() < 1 and torch.equal(torch.floor(256 * y).to(torch.uint8), k)


def test_value_conversions():
    k = torch.arange(256, dtype=torch.uint8)
    x = transforms.to_float(k)
    assert x.dtype == torch.float32 and x[0] == 0 and x[-1] == 1
    assert torch.equal(transforms.to_uint8(x), k)
    s = transforms.to_signed(x)
    assert s.min() == -1 and s.max() == 1
    assert torch.allclose(transforms.from_signed(s), x)
    with pytest.raises(TypeError):
        transforms.to_float(x)


def test_celeba_folder_zip_and_partition(tmp_path):
    import zipfile

    rng = np.random.RandomState(0)
    names = [f"{i:06d}.jpg" for i in range(1, 11)]
    for n in names:
        save(tmp_path / "a" / "celeba" / "img_align_celeba" / n, rng.randint(0, 256, (218, 178, 3)))
    (tmp_path / "a" / "celeba" / "list_eval_partition.txt").write_text(
        "".join(f"{n} {0 if i < 6 else 1 if i < 8 else 2}\n" for i, n in enumerate(names))
    )
    train = data.load("celeba", "train", tmp_path / "a")
    assert train.images.shape == (6, 3, 64, 64) and train.labels is None
    assert len(data.load("celeba", "test", tmp_path / "a", image_size=(32, 32))) == 2
    (tmp_path / "b" / "celeba").mkdir(parents=True)
    with zipfile.ZipFile(tmp_path / "b" / "celeba" / "img_align_celeba.zip", "w") as z:
        for n in names:
            z.write(tmp_path / "a" / "celeba" / "img_align_celeba" / n, f"img_align_celeba/{n}")
    test = data.load("celeba", "test", tmp_path / "b", channels=1)  # no partition file: seeded 90/10
    assert test.images.shape == (1, 1, 64, 64)
