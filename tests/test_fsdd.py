"""The fsdd data set (split, labels, clip cutting, listing md5, errors), WaveNet's random
training crops, and the wavenet `fsdd` preset (builds and trains a few steps)."""

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

import genlab
from genlab import data
from genlab.data import audio, fsdd
from genlab.data.dataset import ImageDataset
from genlab.data.errors import DataError
from genlab.models.wavenet import WaveNet, WaveNetConfig
from genlab.registry import build_run_config
from genlab.train import train

REAL = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"

CLIP = 64


def _tone(n, amp, seed):
    return amp * np.sin(np.arange(n) * 0.3 + seed)


@pytest.fixture
def tiny_fsdd(tmp_path):
    """digits 0-2, speakers ann/bob, index 0-6 (0-4 test, 5-6 train), lengths 40..100 samples."""
    rec = tmp_path / "fsdd" / "recordings"
    waves = {}
    for d in range(3):
        for speaker in ("ann", "bob"):
            for i in range(7):
                n = 40 + 10 * i
                w = _tone(n, 0.05, d + i)
                waves[f"{d}_{speaker}_{i}.wav"] = w
                audio.save_wav(w, rec / f"{d}_{speaker}_{i}.wav", rate=8000, mu_law=False)
    (rec / "notes.txt").write_text("not a recording")
    return tmp_path, waves


def test_parse_name():
    assert fsdd.parse_name("7_theo_12.wav") == (7, "theo", 12)
    assert fsdd.parse_name("notes.txt") is None and fsdd.parse_name("12_theo_1.wav") is None


def test_split_labels_and_clip_cutting(tiny_fsdd):
    root, waves = tiny_fsdd
    train = fsdd.load_fsdd("train", root, clip_length=CLIP, verify=False)
    test = fsdd.load_fsdd("test", root, clip_length=CLIP, verify=False)
    every = fsdd.load_fsdd("all", root, clip_length=CLIP, verify=False)
    assert (len(train), len(test), len(every)) == (12, 30, 42)
    assert train.shape == (1, 1, CLIP) and train.num_classes == 10 and train.name == "fsdd"
    names = sorted(waves)  # the loader's order: sorted by file name
    want_train = [n for n in names if fsdd.parse_name(n)[2] >= 5]
    assert train.labels.tolist() == [fsdd.parse_name(n)[0] for n in want_train]
    assert test.labels.tolist() == [fsdd.parse_name(n)[0] for n in names if fsdd.parse_name(n)[2] < 5]
    for k, name in enumerate(want_train):  # every train recording is 90 or 100 samples: cut to its loudest window
        pcm = audio.read_wav(Path(root) / "fsdd" / "recordings" / name)[0]
        assert torch.equal(train.images[k, 0, 0], torch.from_numpy(audio.mu_law_encode(fsdd.fit_clip(pcm, CLIP))))
    short = names.index("0_ann_0.wav")  # 40 samples: kept from the start, padded with silence (code 128)
    pcm = audio.read_wav(Path(root) / "fsdd" / "recordings" / "0_ann_0.wav")[0]
    codes = every.images[short, 0, 0]
    assert torch.equal(codes[:40], torch.from_numpy(audio.mu_law_encode(pcm))) and (codes[40:] == 128).all()


def test_clip_length_through_load_and_md5_check(tiny_fsdd):
    root, _ = tiny_fsdd
    with pytest.raises(DataError, match="not the published FSDD .*42 of 3000"):
        data.load("fsdd", "train", data_dir=root)
    with pytest.raises(DataError, match=r"image_size must be \(1, length\)"):
        data.load("fsdd", "train", data_dir=root, image_size=(8, 8))
    with pytest.raises(DataError, match="unknown split"):
        fsdd.load_fsdd("valid", root, verify=False)


def test_missing_folder_says_where_to_put_it(tmp_path, monkeypatch):
    monkeypatch.setenv("GENLAB_DATA", str(tmp_path / "cache"))
    with pytest.raises(DataError, match=r"fsdd/recordings.*does not download"):
        data.load("fsdd", "train", data_dir=tmp_path)


@pytest.mark.parametrize("seed", range(5))
def test_fit_clip_is_the_loudest_window_by_brute_force(seed):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=int(rng.integers(20, 60))).astype(np.float32) * rng.uniform(0.1, 1, size=1).astype(np.float32)
    length = int(rng.integers(2, 40))
    out = fsdd.fit_clip(a, length)
    assert out.shape == (length,)
    if len(a) <= length:
        assert np.array_equal(out[: len(a)], a) and not out[len(a) :].any()
    else:
        energies = [float(np.sum(a[s : s + length].astype(np.float64) ** 2)) for s in range(len(a) - length + 1)]
        best = int(np.argmax(energies))
        assert np.array_equal(out, a[best : best + length])


def test_listing_md5_matches_md5sum(tiny_fsdd):
    if shutil.which("md5sum") is None:
        pytest.skip("no md5sum on this machine")
    folder = tiny_fsdd[0] / "fsdd" / "recordings"
    listing = subprocess.run(
        "ls | sort | xargs md5sum",
        shell=True,
        cwd=folder,
        capture_output=True,
        check=True,
        env={**os.environ, "LC_ALL": "C"},
    ).stdout
    assert fsdd.listing_md5(folder) == hashlib.md5(listing).hexdigest()


@pytest.mark.slow
@pytest.mark.skipif(not (REAL / "fsdd" / "recordings").is_dir(), reason="the real FSDD is not in ../shared/data")
def test_real_fsdd_official_split():
    assert fsdd.listing_md5(REAL / "fsdd" / "recordings") == fsdd.LISTING_MD5
    train, test = data.load("fsdd", "train", REAL), data.load("fsdd", "test", REAL)
    assert (len(train), len(test)) == (2700, 300) and train.shape == (1, 1, fsdd.CLIP_LENGTH)
    assert train.labels.bincount().tolist() == [270] * 10 and test.labels.bincount().tolist() == [30] * 10
    assert train.images.float().std() > 10  # real speech, not silence


def test_random_crop_is_a_window_and_seeded():
    model = WaveNet(
        WaveNetConfig(image_shape=(1, 1, 50), residual_channels=4, skip_channels=4, dilations=(1, 2), train_crop=16)
    )
    x = torch.arange(3 * 50).reshape(3, 1, 1, 50).float()
    torch.manual_seed(1)
    a = model.random_crop(x)
    torch.manual_seed(1)
    assert torch.equal(a, model.random_crop(x)) and a.shape == (3, 1, 1, 16)
    for i in range(3):
        start = int(a[i, 0, 0, 0]) - 50 * i
        assert 0 <= start <= 34 and torch.equal(a[i, 0, 0], x[i, 0, 0, start : start + 16])
    xs = torch.randint(0, 256, (2, 1, 1, 50)).float() / 255
    assert torch.allclose(model.sample_log_probs(xs).sum(1), model.log_prob(xs))
    whole = WaveNet(WaveNetConfig(image_shape=(1, 1, 50), residual_channels=4, skip_channels=4, dilations=(1, 2)))
    assert whole.random_crop(x) is x


def test_fsdd_preset_trains_a_few_steps(tmp_path):
    rc = build_run_config("wavenet", data="fsdd", overrides=["train.steps=2", "train.progress=false"])
    assert rc.model.num_classes == 10 and rc.model.train_crop == 1024 and rc.train.batch_size == 16
    assert rc.model.dilations == (1, 2, 4, 8, 16, 32, 64, 128, 256, 512) and rc.train.sample_every == 0
    g = torch.Generator().manual_seed(0)
    clips = ImageDataset(
        torch.randint(0, 256, (16, 1, 1, 1100), generator=g, dtype=torch.uint8),
        torch.arange(16) % 10,
        num_classes=10,
        name="fsdd",
    )
    run = train(rc, str(tmp_path / "run"), dataset=clips)
    model = genlab.load(run)
    assert model.config.image_shape == (1, 1, 1100) and model.receptive_field == 1024
    lp = model.log_prob(clips.images[:2].float() / 255, labels=torch.tensor([0, 1]))
    assert lp.shape == (2,) and torch.isfinite(lp).all()
