"""MNIST-M-style digits (genlab.data.mnistm, ``<set>+mnistm``) and the pieces of benchmarks/sim_to_real.py."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import genlab
from genlab import data
from genlab.data import DataError
from genlab.data.mnistm import TRAIN_FILES, blend, mnistm, patch_choice, patch_pool, patches
from genlab.data.sources import CIFAR10_CLASSES
from genlab.data.unpaired import load_unpaired, transform, untransform

ROOT = Path(__file__).resolve().parents[1]

#: fake patch files: (file number, grey level); every level unique, train files below TRAIN_FILES
TRAIN_LEVELS = {0: 10, 1: 40, 2: 70, 799: 100}
TEST_LEVELS = {800: 160, 999: 220}


@pytest.fixture
def patch_dir(tmp_path) -> Path:
    """A data_dir whose cifar10-test-jpeg/ holds, per class, flat grey 32x32 JPEGs; the level
    encodes (file, class): TRAIN_LEVELS / TEST_LEVELS[file] + class index."""
    for c, name in enumerate(CIFAR10_CLASSES):
        d = tmp_path / "cifar10-test-jpeg" / name
        d.mkdir(parents=True)
        for k, level in {**TRAIN_LEVELS, **TEST_LEVELS}.items():
            Image.fromarray(np.full((32, 32, 3), level + c, np.uint8)).save(d / f"{k:04d}.jpg", quality=100)
    return tmp_path


def digits(n: int = 50, size: int = 28, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, 1, size, size), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


def test_blend_is_the_absolute_difference_per_channel():
    d, p = digits(7), torch.randint(0, 256, (7, 3, 28, 28), dtype=torch.uint8)
    out = blend(d, p)
    assert out.dtype == torch.uint8 and out.shape == (7, 3, 28, 28)
    ref = np.abs(p.numpy().astype(np.int64) - d.numpy().astype(np.int64))  # independent, in int64
    np.testing.assert_array_equal(out.numpy(), ref)
    # background shows the patch, a full stroke its inversion
    assert torch.equal(blend(torch.zeros_like(d), p), p) and torch.equal(blend(torch.full_like(d, 255), p), 255 - p)
    with pytest.raises(DataError):
        blend(d.float(), p)


def test_pool_keeps_train_and_test_files_apart(patch_dir):
    train, test = patch_pool("train", patch_dir), patch_pool("test", patch_dir)
    assert train.shape == (10 * len(TRAIN_LEVELS), 3, 32, 32) and test.shape == (10 * len(TEST_LEVELS), 3, 32, 32)
    levels = lambda table: {v + c for v in table.values() for c in range(10)}  # noqa: E731
    for pool, own, other in ((train, TRAIN_LEVELS, TEST_LEVELS), (test, TEST_LEVELS, TRAIN_LEVELS)):
        seen = {int(v) for v in pool.float().mean((1, 2, 3)).round()}
        assert all(min(abs(s - lv) for lv in levels(own)) <= 1 for s in seen)  # JPEG rounding of flat grey: +-1
        assert all(min(abs(s - lv) for lv in levels(other)) > 5 for s in seen)
    assert TRAIN_FILES == 800


def test_mnistm_recovers_the_digit_from_the_known_patch(patch_dir):
    d = digits(40)
    for split in ("train", "test"):
        out = mnistm(d, split, patch_dir, seed=3)
        assert out.dtype == torch.uint8 and out.shape == (40, 3, 28, 28)
        pool = patch_pool(split, patch_dir)
        image, dy, dx = patch_choice(np.arange(40), split, 3, len(pool), (5, 5))
        for i in range(40):
            p = pool[image[i], :, dy[i] : dy[i] + 28, dx[i] : dx[i] + 28].to(torch.int64)  # the known patch
            o, di = out[i].to(torch.int64), d[i].to(torch.int64)
            assert torch.equal(o, (p - di).abs())  # the blend formula, pixel by pixel
            assert bool(((p - o == di) | (p + o == di)).all())  # the digit is p -+ out: recoverable from the patch


def test_mnistm_is_deterministic_per_seed_and_per_digit_index(patch_dir):
    d = digits(60)
    a, b = mnistm(d, "train", patch_dir, seed=1), mnistm(d, "train", patch_dir, seed=1)
    assert torch.equal(a, b)
    assert not torch.equal(a, mnistm(d, "train", patch_dir, seed=2))
    idx = np.array([59, 3, 17, 3])  # any subset, any order: the same patch for the same digit
    assert torch.equal(mnistm(d[idx], "train", patch_dir, seed=1, index=idx), a[idx])
    # the choice is spread over the pool and the crop offsets
    image, dy, dx = patch_choice(np.arange(4000), "train", 0, 40, (5, 5))
    assert set(image) == set(range(40)) and set(dy) == set(range(5)) and set(dx) == set(range(5))
    assert not np.array_equal(image, patch_choice(np.arange(4000), "test", 0, 40, (5, 5))[0])


def test_patches_for_digits_larger_than_the_pool_images(patch_dir):
    pool = patch_pool("test", patch_dir)
    p = patches(pool, np.arange(5), "test", 0, (40, 36))
    assert p.shape == (5, 3, 40, 36) and p.dtype == torch.uint8


def test_missing_patch_folder_is_a_one_line_error(tmp_path):
    with pytest.raises(DataError, match="cifar10-test-jpeg") as e:
        mnistm(digits(2), "train", tmp_path)
    assert "\n" not in str(e.value)
    (tmp_path / "cifar10-test-jpeg" / "cat").mkdir(parents=True)
    with pytest.raises(DataError, match="no patch image for the test split"):
        patch_pool("test", tmp_path)
    with pytest.raises(DataError, match="grey digits"):
        mnistm(torch.zeros(2, 3, 28, 28, dtype=torch.uint8), "train", tmp_path)


def test_load_mnistm_domain_and_unpaired_spec(patch_dir):
    base = data.load("mnist-5k", "test")
    ds = data.load("mnist-5k+mnistm", "test", patch_dir)
    assert ds.images.shape == (len(base), 3, 28, 28) and torch.equal(ds.labels, base.labels)
    assert torch.equal(ds.images, mnistm(base.images, "test", patch_dir))
    grey = data.load("mnist-5k+mnistm", "test", patch_dir, channels=1)
    assert grey.images.shape == (len(base), 1, 28, 28)
    pair = load_unpaired("mnist-5k", "mnist-5k+mnistm", "test", patch_dir, seed=4)
    assert pair.images.shape[1] == 6  # the grey domain is shown as RGB beside the colour one
    train = data.load("mnist-5k", "test")
    want = mnistm(train.images[pair.source_b], "test", patch_dir, seed=4, index=pair.source_b.numpy())
    assert torch.equal(pair.b.images, want)
    assert not set(pair.source_a.tolist()) & set(pair.source_b.tolist())
    with pytest.raises(DataError, match="not invertible"):
        untransform(pair.b.images, "mnistm")
    with pytest.raises(DataError, match="needs the split"):
        transform(base.images, "mnistm")
    with pytest.raises(DataError, match="cifar10-test-jpeg"):
        data.load("unpaired:mnist-5k,mnist-5k+mnistm", "test", patch_dir / "cifar10-test-jpeg" / "cat")


@pytest.mark.slow
def test_real_mnistm_from_the_shared_cifar_jpegs(shared_data):
    if not (shared_data / "cifar10-test-jpeg").is_dir():
        pytest.skip("no cifar10-test-jpeg in the shared data")
    ds = data.load("mnist+mnistm", "test", shared_data)
    assert ds.images.shape == (10000, 3, 28, 28) and ds.num_classes == 10
    assert patch_pool("train", shared_data).shape[0] == 8000 and patch_pool("test", shared_data).shape[0] == 2000
    assert 40 < float(ds.images.float().mean()) < 200 and float(ds.images.float().std()) > 30


# --------------------------------------------------------------------------- the benchmark's pieces


@pytest.fixture
def s2r():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import sim_to_real

        yield sim_to_real
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))


@pytest.mark.slow
def test_benchmark_pieces(s2r):
    x = torch.rand(6, 3, 12, 12)
    grey = s2r.to_input(x, 1)
    assert grey.shape == (6, 1, 12, 12)
    assert torch.allclose(grey[:, 0], 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2])
    assert torch.equal(s2r.to_input((x * 255).round().to(torch.uint8), 3), (x * 255).round() / 255)
    g = torch.Generator().manual_seed(0)
    moved = s2r.shift(torch.ones(50, 1, 8, 8), g, pixels=2)
    assert moved.shape == (50, 1, 8, 8) and 0 < float(moved.mean()) < 1 and float(moved.max()) == 1
    assert torch.equal(s2r.shift(x, g, pixels=0), x)
    # a classifier learns a separable toy problem in a few CPU-seconds, and accuracy counts right
    xs = torch.zeros(200, 1, 12, 12)
    ys = torch.arange(200) % 2
    xs[ys == 1, :, 4:8, 4:8] = 1
    net, steps = s2r.train_classifier(xs, ys, 3.0, __import__("time").process_time, seed=0, batch=32)
    assert steps > 5 and s2r.accuracy(net, xs, ys, batch=64) > 0.9
    assert s2r.accuracy(net, xs, 1 - ys) < 0.1


@pytest.mark.slow
def test_benchmark_runs_end_to_end(s2r, shared_data, tmp_path, capsys):
    if not (shared_data / "cifar10-test-jpeg").is_dir():
        pytest.skip("no cifar10-test-jpeg in the shared data")
    fig = tmp_path / "fig.png"
    rc = s2r.main(
        [
            "--data-dir",
            str(shared_data),
            "--minutes",
            "0.15",
            "--eval",
            "200",
            "--out",
            str(tmp_path / "cyclegan-mnist-mnistm"),
            "--set",
            "g_channels=4",
            "--set",
            "g_blocks=1",
            "--classifier-minutes",
            "0.01",
            "--figure",
            str(fig),
            "--seeds",
            "2",
            "--channels",
            "3",
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0 and fig.is_file() and "upper bound" in out
    last = out.strip().splitlines()[-1]
    assert last.startswith("gain: ") and " points (sd " in last and last[6] in "+-"
    doc = json.loads((tmp_path / "cyclegan-mnist-mnistm" / "summary.json").read_text())
    gains = [r["gain"] for r in doc["seeds"]]
    assert [r["seed"] for r in doc["seeds"]] == [0, 1] and doc["channels"] == 3
    assert doc["summary"]["gain"]["mean"] == pytest.approx(sum(gains) / 2)
    assert doc["summary"]["gain"]["std"] == pytest.approx(abs(gains[0] - gains[1]) / 2**0.5)
    assert f"{100 * doc['summary']['gain']['mean']:+.1f}" in last
    # each seed's CycleGAN is a genlab run: it loads and translates RGB digits
    model = genlab.load(tmp_path / "cyclegan-mnist-mnistm" / "seed-1" / "run")
    assert model.config.image_shape[0] == 6 and model.translate(torch.rand(2, 3, 28, 28), "a2b").shape == (2, 3, 28, 28)
    # scripts/train_pretrained.py ships seed 0's CycleGAN with every seed's numbers on its card
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import train_pretrained as tp
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    card = tp.build_sim_to_real(str(shared_data), tmp_path, tmp_path / "pkg", retrain=False)
    assert card["measured"]["sim_to_real"]["summary"] == doc["summary"] and card["training"]["seed"] == 0
    assert card["headline"].startswith(f"sim-to-real gain {100 * doc['summary']['gain']['mean']:+.1f} points")
    shipped = genlab.load(tmp_path / "pkg" / "cyclegan-mnist-mnistm")
    assert (
        next(shipped.parameters()).dtype == torch.float32
        and (tmp_path / "pkg" / "cyclegan-mnist-mnistm" / "card.json").is_file()
    )
