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
    assert torch.allclose(
        ood.score(model, test, "likelihood-ratio", background=model), torch.zeros(100, dtype=torch.float64)
    )
    bg = PixelHistogram(
        ModelConfig(image_shape=(1, 8, 8)), ood.perturb(train.images, 0.3, torch.Generator().manual_seed(0))
    )
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
    bg = ood.train_background(
        "vae", data, mutation_rate=0.2, steps=2, batch_size=32, out_dir=tmp_path / "bg", progress=False
    )
    assert bg.num_dims == 64
    # the background scored against itself: the same tensor and the same importance samples, so exactly 0
    s = ood.score(bg, data, "likelihood-ratio", background=bg, iw_samples=2)
    assert torch.equal(s, torch.zeros(64, dtype=torch.float64))
    with pytest.raises(ValueError, match="same tensor"):  # a histogram takes 8-bit inputs, the VAE binarized ones
        ood.score(
            PixelHistogram(ModelConfig(image_shape=(1, 8, 8)), data.images), data, "likelihood-ratio", background=bg
        )


# ------------------------------------------------------------------ the maths against brute force / closed forms


def _brute_force_fpr95(a, b):
    """Sweep every threshold t (each distinct score, and +inf); flag score >= t; keep the highest t
    whose TPR is at least 95% (counted exactly in integers) and return its FPR."""
    best = None
    for t in sorted(set(a.tolist()) | set(b.tolist()) | {math.inf}):
        if 100 * int((b >= t).sum()) >= 95 * len(b):
            best = t
    return float((a >= best).mean())


@pytest.mark.slow
def test_fpr95_equals_a_brute_force_threshold_sweep_on_tied_scores():
    rng = np.random.default_rng(0)
    for trial in range(300):
        n_in, n_out = rng.integers(1, 40), rng.choice([1, 2, 19, 20, 21, 39, 40, 41, int(rng.integers(1, 60))])
        levels = int(rng.integers(2, 6))  # few distinct values: many ties between and within the sets
        a = rng.integers(0, levels, n_in).astype(float)
        b = rng.integers(0, levels, n_out).astype(float) + rng.integers(0, 2)
        assert ood.detection_metrics(a, b)["fpr95"] == _brute_force_fpr95(a, b), (trial, a, b)
    for trial in range(300):  # staircases: most levels hold the same (inliers, outliers) counts, so the ROC
        levels, step = (
            int(rng.integers(2, 30)),
            (int(rng.integers(0, 3)), int(rng.integers(1, 3))),
        )  # has collinear points
        a = np.repeat(
            np.arange(levels, dtype=float),
            [step[0] if rng.random() < 0.8 else int(rng.integers(0, 4)) for _ in range(levels)],
        )
        b = np.repeat(
            np.arange(levels, dtype=float),
            [step[1] if rng.random() < 0.8 else int(rng.integers(0, 4)) for _ in range(levels)],
        )
        if len(a) and len(b):
            assert ood.detection_metrics(a, b)["fpr95"] == _brute_force_fpr95(a, b), (trial, a, b)
    # the point where TPR reaches 95% lies inside a straight stretch of the ROC (which roc_curve drops)
    assert ood.detection_metrics([3.0, 2.0, 1.0], [10.0] * 17 + [3.0, 2.0, 1.0])["fpr95"] == pytest.approx(2 / 3)
    # orientation: outliers scoring higher are found with no false positives, lower ones with all
    assert ood.detection_metrics([0, 1, 2], [5, 6, 7])["fpr95"] == 0.0
    assert ood.detection_metrics([5, 6, 7], [0, 1, 2])["fpr95"] == 1.0
    # ties at the threshold count as flagged: 20 outliers, 19 must be flagged, the 19th largest ties with an inlier
    assert ood.detection_metrics([3.0, 0.0], [3.0] * 19 + [0.0])["fpr95"] == 0.5


def test_typicality_is_the_distance_of_the_batch_mean_not_the_mean_distance(setup):
    model, _, test = setup
    nll = ood.score(model, test, "likelihood")
    h = float(nll[:10].mean())  # H inside the batch: some inputs above it, some below
    assert (nll[:10] > h).any() and (nll[:10] < h).any()
    s = ood.score(model, test, "typicality", train_entropy=h, typicality_batch=10)
    assert s[0].item() == pytest.approx(0.0, abs=1e-12)  # |mean NLL - H| = 0, while mean |NLL - H| > 0
    assert torch.allclose(s[10:20], (nll[10:20].mean() - h).abs().expand(10))


def test_likelihood_ratio_is_model_nll_minus_background_nll(setup):
    model, train, test = setup
    bg = PixelHistogram(
        ModelConfig(image_shape=(1, 8, 8)), ood.perturb(train.images, 0.3, torch.Generator().manual_seed(0))
    )
    x = test.images.float() / 255
    expected = (bg.log_prob(x) - model.log_prob(x)).double() / (64 * math.log(2))
    s = ood.score(model, test, "likelihood-ratio", background=bg)
    assert torch.allclose(s, expected)
    assert (s != 0).any()


class BernoulliPixels(GenerativeModel):
    """Independent Bernoulli pixels (exact), scoring binarized inputs. Its ``log_prob`` looks
    like an importance-sampled one: it draws ``draws`` random numbers per call from the
    generator (and ignores them), and it records every tensor it is given."""

    input_mode = "binary"
    likelihood_kind = "bound"
    importance_sampled = True

    def __init__(self, config, p: torch.Tensor, draws: int):
        super().__init__(config)
        self.p, self.draws, self.seen, self.iw = p.reshape(-1).double(), draws, [], []

    def log_prob(self, x, *, labels=None, iw_samples=None, generator=None):
        torch.rand(self.draws, generator=generator)
        self.seen.append(x.clone())
        self.iw.append(iw_samples)
        flat = x.reshape(len(x), -1).double()
        return (flat * self.p.log() + (1 - flat) * (1 - self.p).log()).sum(1)

    def closed_form_bits(self, x):
        return -self.log_prob(x) / (self.num_dims * math.log(2))


def test_likelihood_ratio_and_complexity_score_the_tensor_the_model_scores(setup):
    _, train, test = setup
    cfg = ModelConfig(image_shape=(1, 8, 8))
    mean = (train.images.double() / 255).mean(0).clamp(0.05, 0.95)
    model, bg = BernoulliPixels(cfg, mean, draws=3), BernoulliPixels(cfg, torch.full((64,), 0.3), draws=1000)
    out = ood.scores(
        model,
        test,
        ["likelihood", "likelihood-ratio", "complexity"],
        background=bg,
        batch_size=16,
        iw_samples=2,
        seed=5,
    )
    xm, xb = torch.cat(model.seen), torch.cat(bg.seen)
    assert torch.equal(xm, xb) and set(xm.unique().tolist()) == {0.0, 1.0}  # one binarization, scored by both
    assert len(model.seen) == len(bg.seen) == 7  # 100 inputs in batches of 16
    nll_m, nll_b = model.closed_form_bits(xm), bg.closed_form_bits(xm)
    assert torch.allclose(out["likelihood"], nll_m)
    assert torch.allclose(out["likelihood-ratio"], nll_m - nll_b)
    # complexity: the binarized image, coded at one bit per pixel, is what gets compressed
    assert torch.allclose(out["complexity"], nll_m - ood.compressed_bits(xm, binary=True) / 64)
    assert not torch.allclose(out["complexity"], nll_m - ood.compressed_bits(test) / 64)
    # the binarization is the model's own prepare with the seed's generator, and repeats
    assert torch.equal(xm, model.prepare(test.images.float() / 255, generator=torch.Generator().manual_seed(5)))
    assert torch.equal(ood.score(model, test, "likelihood", seed=5), out["likelihood"])


def test_compressed_bits_of_binary_images():
    from PIL import Image

    x = (torch.rand(3, 1, 8, 16, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    buf = io.BytesIO()
    Image.fromarray(x[0, 0].numpy().astype(bool)).save(buf, format="PNG", optimize=True, compress_level=9)
    assert ood.compressed_bits(x, binary=True)[0].item() == 8 * len(buf.getvalue())
    assert (ood.compressed_bits(x, binary=True) < ood.compressed_bits(x)).all()  # 1 bit per pixel, not 8
    z = ood.compressed_bits(x, "zlib", binary=True)
    assert z[0].item() == 8 * len(
        __import__("zlib").compress(np.packbits(x[0, 0].numpy().astype(bool), axis=-1).tobytes(), 9)
    )
    with pytest.raises(ValueError, match="only 0 and 1"):
        ood.compressed_bits(x * 0.5, binary=True)
    with pytest.raises(ValueError, match="compressor"):
        ood.compressed_bits(x, "lzma")


def test_fpr_at_tpr_at_other_levels_against_brute_force():
    rng = np.random.default_rng(1)
    for _ in range(50):
        a, b = rng.integers(0, 6, 25).astype(float), rng.integers(1, 7, 30).astype(float)
        for percent in (50, 80, 100):
            best = None
            for t in sorted(set(a.tolist()) | set(b.tolist()) | {math.inf}):
                if 100 * int((b >= t).sum()) >= percent * len(b):
                    best = t
            assert ood.fpr_at_tpr(a, b, percent) == float((a >= best).mean())
        assert ood.fpr_at_tpr(a, b) == ood.detection_metrics(a, b)["fpr95"] == _brute_force_fpr95(a, b)


def test_roc_points_run_from_the_origin_with_outliers_positive():
    fpr, tpr = ood.roc_points([0.0, 1.0], [2.0, 3.0])  # perfectly separated: TPR reaches 1 before any inlier is flagged
    assert fpr[0] == 0 and tpr[0] == 0 and fpr[-1] == 1 and tpr[-1] == 1
    assert tpr[fpr == 0].max() == 1.0
    fpr, tpr = ood.roc_points([2.0, 3.0], [0.0, 1.0])  # reversed: every inlier is flagged before any outlier
    assert tpr[fpr < 1].max() == 0.0


def test_markdown_table_rows():
    table = ood.markdown_table({"noise": {"likelihood": {"auroc": 0.98765, "aupr": 0.5, "fpr95": 0.125}}}, title="T")
    assert table == (
        "### T\n\n| outlier set | method | AUROC | AUPR | FPR@95%TPR |\n|---|---|---|---|---|\n"
        "| noise | likelihood | 0.988 | 0.500 | 0.125 |\n"
    )
    assert ood.markdown_table({}).startswith("| outlier set |")


class CountingBound(PixelHistogram):
    """The histogram, declared an importance-sampled bound; records the iw_samples it is asked for."""

    likelihood_kind = "bound"
    importance_sampled = True

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.asked = []

    def log_prob(self, x, *, labels=None, iw_samples=None, generator=None):
        self.asked.append(iw_samples)
        return super().log_prob(x)


def test_evaluate_ood_report_settings_caps_and_files(setup, tmp_path):
    model, train, test = setup
    bound = CountingBound(ModelConfig(image_shape=(1, 8, 8)), train.images)
    outs = {"folder:a/b": ood.outlier_set("noise", test, 40)}
    r = ood.evaluate_ood(
        bound, test, outs, methods=["likelihood", "complexity"], max_examples=30, seed=3, out_dir=tmp_path
    )
    assert set(bound.asked) == {ood.DEFAULT_OOD_IW_SAMPLES} == {10}  # the default importance samples of OOD scoring
    assert r["n_in"] == 30 and r["n_out"] == {"folder:a/b": 30}
    assert r["settings"] == {
        "methods": ["likelihood", "complexity"],
        "positive_class": "outliers (higher score = more anomalous)",
        "units": "bits per dimension",
        "iw_samples": 10,
        "typicality_batch": None,
        "train_entropy_bits_per_dim": None,
        "compressor": "png",
        "seed": 3,
    }
    s_in = ood.scores(bound, test.images[:30], ["likelihood", "complexity"], seed=3)
    assert r["mean_scores"]["in-distribution"] == {m: pytest.approx(float(v.mean())) for m, v in s_in.items()}
    s_out = ood.scores(bound, outs["folder:a/b"].images[:30], ["likelihood"], seed=3)["likelihood"]
    assert r["mean_scores"]["folder:a/b"]["likelihood"] == pytest.approx(float(s_out.mean()))
    assert r["results"]["folder:a/b"]["likelihood"] == ood.detection_metrics(s_in["likelihood"].numpy(), s_out.numpy())
    assert r["plots"] == [str(tmp_path / "roc-folder_a_b.png")] and Image.open(r["plots"][0]).format == "PNG"
    assert (tmp_path / "ood.md").read_text() == r["markdown"]
    assert json.loads((tmp_path / "ood.json").read_text())["settings"]["seed"] == 3
    bound.asked.clear()
    ood.score(bound, test, "likelihood", iw_samples=4)
    assert set(bound.asked) == {4}
    r = ood.evaluate_ood(
        model, test, {"noise": outs["folder:a/b"]}, methods=["typicality"], train_entropy=2.5, typicality_batch=7
    )
    assert (
        r["settings"]["iw_samples"] is None
        and r["settings"]["typicality_batch"] == 7
        and r["settings"]["compressor"] is None
    )
    assert r["settings"]["train_entropy_bits_per_dim"] == 2.5 and "plots" not in r


def test_evaluate_ood_passes_its_settings_to_every_score(setup, capsys):
    """Seed, importance samples, batch size, typicality batch and compressor reach the scores
    (a Bernoulli model: its scores depend on the seed of the binarization)."""
    _, train, test = setup
    cfg = ModelConfig(image_shape=(1, 8, 8))
    model = BernoulliPixels(cfg, (train.images.double() / 255).mean(0).clamp(0.05, 0.95), draws=1)
    many = ImageDataset(torch.cat([test.images] * 3), name="x3")  # 300 inputs
    outs = {"noise": ood.outlier_set("noise", test, 300)}
    methods = ["likelihood", "typicality", "complexity"]

    def check(r, **kw):
        for name, data in (("in-distribution", many), ("noise", outs["noise"])):
            want = ood.scores(model, data, methods, **kw)
            for m in methods:
                assert r["mean_scores"][name][m] == pytest.approx(float(want[m].mean()), rel=1e-12), (name, m)

    model.seen.clear(), model.iw.clear()
    r = ood.evaluate_ood(model, many, outs, methods, train_data=train)
    assert [len(x) for x in model.seen[-2:]] == [256, 44] and set(model.iw) == {10}  # default batch 256, k = 10
    h = ood.training_entropy(model, train, seed=0, iw_samples=10)
    check(r, train_entropy=h, typicality_batch=10, seed=0)
    assert capsys.readouterr().err == ""  # no progress bar unless asked
    model.seen.clear(), model.iw.clear()
    r = ood.evaluate_ood(
        model,
        many,
        outs,
        methods,
        train_data=train,
        seed=4,
        iw_samples=3,
        batch_size=100,
        typicality_batch=7,
        compressor="zlib",
    )
    assert {len(x) for x in model.seen} == {100} and set(model.iw) == {3}
    h = ood.training_entropy(model, train, seed=4, iw_samples=3)
    assert r["settings"]["train_entropy_bits_per_dim"] == pytest.approx(h, rel=1e-12)
    check(r, train_entropy=h, typicality_batch=7, seed=4, iw_samples=3, compressor="zlib")
