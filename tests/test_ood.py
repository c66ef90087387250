"""Outlier detection: metrics against a hand-computed example, the four scores, outlier sets, reports."""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from genlab import ood
from genlab.config import ModelConfig
from genlab.data import ImageDataset
from genlab.models.base import GenerativeModel


class PixelHistogram(GenerativeModel):
    """Independent categorical distribution over 256 levels per pixel, fitted by counting (exact, discrete)."""

    input_mode = "unit"
    likelihood_kind = "exact"

    def __init__(self, config, images_u8: torch.Tensor, alpha: float = 0.5):
        super().__init__(config)
        flat = images_u8.reshape(len(images_u8), -1).long()
        counts = torch.zeros(flat.shape[1], 256, dtype=torch.float64)
        counts.scatter_add_(1, flat.T, torch.ones_like(flat.T, dtype=torch.float64))
        self.logp = torch.log((counts + alpha) / (counts + alpha).sum(1, keepdim=True))

    def log_prob(self, x, *, labels=None, iw_samples=None, generator=None):
        k = torch.round(x.reshape(len(x), -1) * 255).long()
        return self.logp.gather(1, k.T).T.sum(1)


def _blobs(n, seed=0):
    """8x8 grey images: a dark background with a bright random square."""
    g = torch.Generator().manual_seed(seed)
    imgs = torch.randint(0, 20, (n, 1, 8, 8), generator=g, dtype=torch.uint8)
    for i in range(n):
        r, c = torch.randint(0, 5, (2,), generator=g).tolist()
        imgs[i, 0, r : r + 3, c : c + 3] = torch.randint(200, 256, (3, 3), generator=g, dtype=torch.uint8)
    return ImageDataset(imgs, name="blobs")


@pytest.fixture(scope="module")
def setup():
    train, test = _blobs(400, seed=0), _blobs(100, seed=1)
    model = PixelHistogram(ModelConfig(image_shape=(1, 8, 8)), train.images)
    return model, train, test


def test_detection_metrics_hand_computed():
    inl, out = [1, 2, 3, 4], [2.5, 5, 6]
    r = ood.detection_metrics(inl, out)
    assert r["auroc"] == pytest.approx(10 / 12)  # outlier > inlier in 10 of 12 pairs
    # ranked: 6o 5o 4i 3i 2.5o 2i 1i -> precision at each outlier: 1, 1, 3/5
    assert r["aupr"] == pytest.approx((1 + 1 + 0.6) / 3)
    # flagging 95% (all 3) of the outliers needs threshold 2.5, which flags 3 and 4: FPR 2/4
    assert r["fpr95"] == pytest.approx(0.5)
    perfect = ood.detection_metrics([0, 1], [2, 3])
    assert perfect == {"auroc": 1.0, "aupr": 1.0, "fpr95": 0.0}
    assert ood.detection_metrics([0.5, 0.5], [0.5, 0.5])["auroc"] == 0.5  # ties count half


def test_likelihood_score_is_bits_per_dim_and_flags_noise(setup):
    model, _, test = setup
    s = ood.score(model, test, "likelihood")
    expected = -model.log_prob(test.images.float() / 255) / (64 * math.log(2))
    assert torch.allclose(s, expected.double())
    noise = ood.outlier_set("noise", test, 100)
    assert ood.score(model, noise, "likelihood").mean() > s.mean() + 1


def test_typicality_assigns_each_batch_its_score(setup):
    model, train, test = setup
    h = ood.training_entropy(model, train)
    nll = ood.score(model, test, "likelihood")
    s = ood.score(model, test, "typicality", train_entropy=h, typicality_batch=7)
    assert torch.allclose(s[:7], (nll[:7].mean() - h).abs().expand(7))
    assert torch.allclose(s[98:], (nll[98:].mean() - h).abs().expand(2))  # the last, shorter batch
    assert torch.allclose(ood.score(model, test, "typicality", train_data=train, typicality_batch=7), s)
    with pytest.raises(ValueError, match="train_entropy"):
        ood.score(model, test, "typicality")


def test_complexity_subtracts_png_code_length(setup):
    model, _, test = setup
    buf = io.BytesIO()
    Image.fromarray(test.images[0, 0].numpy()).save(buf, format="PNG", optimize=True, compress_level=9)
    bits = ood.compressed_bits(test.images[:1])
    assert bits.item() == 8 * len(buf.getvalue())
    s = ood.score(model, test, "complexity")
    assert torch.allclose(s, ood.score(model, test, "likelihood") - ood.compressed_bits(test) / 64)
    assert ood.compressed_bits(test.images[:3], "zlib").shape == (3,)


def test_likelihood_ratio_against_background(setup):
    model, train, test = setup
    assert torch.allclose(ood.score(model, test, "likelihood-ratio", background=model), torch.zeros(100, dtype=torch.float64))
    bg = PixelHistogram(ModelConfig(image_shape=(1, 8, 8)), ood.perturb(train.images, 0.3, torch.Generator().manual_seed(0)))
    s = ood.score(model, test, "likelihood-ratio", background=bg)
    assert s.shape == (100,) and torch.isfinite(s).all()
    with pytest.raises(ValueError, match="background"):
        ood.score(model, test, "likelihood-ratio")


def test_perturb_rates():
    x = torch.full((50, 1, 8, 8), 7, dtype=torch.uint8)
    assert torch.equal(ood.perturb(x, 0.0), x)
    frac = (ood.perturb(x, 0.3, torch.Generator().manual_seed(0)) != x).float().mean().item()
    assert 0.25 < frac < 0.33
    with pytest.raises(ValueError):
        ood.perturb(x, 1.5)


def test_outlier_sets(setup, tmp_path):
    _, _, test = setup
    for spec in ("noise", "constant", "inverted", "flipped", "hflipped"):
        o = ood.outlier_set(spec, test, 10)
        assert o.images.shape == (10, 1, 8, 8) and o.images.dtype == torch.uint8
    assert torch.equal(ood.outlier_set("inverted", test, 5).images, 255 - test.images[:5])
    assert torch.equal(ood.outlier_set("flipped", test, 5).images, test.images[:5].flip(2))
    c = ood.outlier_set("constant", test, 5).images
    assert (c == c[:, :, :1, :1]).all()
    # a folder of RGB images of another size is converted to the reference's grey 8x8
    for i in range(4):
        Image.fromarray(np.full((12, 10, 3), 40 * i, np.uint8)).save(tmp_path / f"{i}.png")
    f = ood.outlier_set(f"folder:{tmp_path}", test, 3)
    assert f.images.shape == (3, 1, 8, 8)


def test_evaluate_ood_table_and_plot(setup, tmp_path):
    model, train, test = setup
    outs = {"noise": ood.outlier_set("noise", test, 60), "inverted": ood.outlier_set("inverted", test, 60)}
    r = ood.evaluate_ood(model, test, outs, methods=ood.METHODS, background=model, train_data=train, out_dir=tmp_path)
    assert set(r["results"]) == {"noise", "inverted"}
    for per in r["results"].values():
        assert set(per) == set(ood.METHODS)
        for m in per.values():
            assert set(m) == {"auroc", "aupr", "fpr95"} and 0 <= m["auroc"] <= 1
    assert r["results"]["noise"]["likelihood"]["auroc"] > 0.99
    assert "| noise | likelihood |" in r["markdown"]
    assert json.loads((tmp_path / "ood.json").read_text())["n_in"] == 100
    png = Image.open(tmp_path / "roc-noise.png")
    assert png.size[0] == 480
    with pytest.raises(ValueError, match="shape"):
        ood.evaluate_ood(model, test, {"bad": torch.zeros(3, 1, 9, 9, dtype=torch.uint8)}, methods=["likelihood"])


def test_train_background_with_the_trainer(tmp_path):
    pytest.importorskip("genlab.train.trainer")
    data = _blobs(64)
    bg = ood.train_background("vae", data, mutation_rate=0.2, steps=2, batch_size=32, out_dir=tmp_path / "bg", progress=False)
    assert bg.num_dims == 64
    s = ood.score(PixelHistogram(ModelConfig(image_shape=(1, 8, 8)), data.images), data, "likelihood-ratio", background=bg, iw_samples=2)
    assert s.shape == (64,) and torch.isfinite(s).all()
