"""Sample-quality metrics: parity with an independent FID, sanity of KID / PR / density-coverage,
feature networks (hash check, shape errors), reference-statistics cache, evaluate + report."""

from __future__ import annotations

import json
import shutil
import warnings

import numpy as np
import pytest
import scipy.linalg
import torch

from genlab.config import ModelConfig
from genlab.metrics import features as F
from genlab.metrics import quality as Q
from genlab.models.base import GenerativeModel


def _gauss(n, d=16, shift=0.0, seed=0, scale=1.0):
    a = np.random.default_rng(123).normal(size=(d, d)) / np.sqrt(d)  # one fixed distribution
    return np.random.default_rng(seed).normal(size=(n, d)) @ a * scale + shift


def _fid_scipy(x, y):
    """Independent reference: the textbook formula with scipy's general sqrtm on S1 S2."""
    m1, m2 = x.mean(0), y.mean(0)
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    covmean = np.real(covmean)
    return float(((m1 - m2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


@pytest.mark.parametrize("shift,scale", [(0.0, 1.0), (0.5, 1.0), (0.1, 1.7)])
def test_frechet_distance_matches_scipy_sqrtm(shift, scale):
    x, y = _gauss(3000, seed=1), _gauss(2500, seed=2, shift=shift, scale=scale)
    ours = Q.fid_from_features(x, y)
    assert ours == pytest.approx(_fid_scipy(x, y), abs=1e-3)


def test_frechet_distance_matches_torch_fidelity_if_installed():
    tf = pytest.importorskip("torch_fidelity.metric_fid")
    x, y = _gauss(3000, seed=1), _gauss(2500, seed=2, shift=0.3)
    mu1, s1 = Q.feature_statistics(x)
    mu2, s2 = Q.feature_statistics(y)
    ref = tf.fid_statistics_to_metric({"mu": mu1, "sigma": s1}, {"mu": mu2, "sigma": s2}, False)
    assert Q.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(float(ref["frechet_inception_distance"]), abs=1e-3)


def test_fid_of_a_set_with_itself_is_zero_and_grows_with_shift():
    x = _gauss(2500)
    assert Q.fid_from_features(x, x) == pytest.approx(0.0, abs=1e-6)
    assert Q.fid_from_features(x, x + 1.0) == pytest.approx(16.0, rel=1e-6)  # |mu diff|^2 = d * 1


def test_fid_warns_below_2000_samples_recommending_kid():
    x = _gauss(500)
    with pytest.warns(UserWarning, match="KID"):
        Q.fid_from_features(x, _gauss(500, seed=3))


def test_kid_is_unbiased_near_zero_for_one_distribution_and_positive_otherwise():
    a, b = _gauss(1000, seed=1), _gauss(1000, seed=2)
    same = Q.kid(a, b, num_subsets=50, subset_size=200, seed=0)
    diff = Q.kid(a, _gauss(1000, seed=2, shift=0.5), num_subsets=50, subset_size=200, seed=0)
    assert abs(same[0]) < 3 * same[1] / np.sqrt(50) + 1e-3
    assert diff[0] > 10 * abs(same[0]) and diff[0] > 0
    assert Q.kid(a, b, num_subsets=5, subset_size=100, seed=7) == Q.kid(a, b, num_subsets=5, subset_size=100, seed=7)


def test_kid_std_is_the_population_std_over_subsets(monkeypatch):
    """ddof = 0 as in torch-fidelity and torchmetrics: subset values 1, 2, 3, 4 give
    std sqrt(1.25) = 1.1180 (ddof = 1 would give sqrt(5/3) = 1.2910)."""
    values = iter([1.0, 2.0, 3.0, 4.0])
    monkeypatch.setattr("genlab.metrics.distances.mmd2_unbiased", lambda *args: next(values))
    mean, std = Q.kid(_gauss(10), _gauss(10, seed=1), num_subsets=4, subset_size=5)
    assert mean == 2.5 and std == pytest.approx(np.sqrt(1.25), rel=1e-12)


def test_precision_recall_identical_and_disjoint_sets():
    x = _gauss(400)
    assert Q.precision_recall(x, x) == (1.0, 1.0)
    p, r = Q.precision_recall(x, x + 100.0)
    assert p == 0.0 and r == 0.0
    # fakes covering only half of the real support: precision stays high, recall drops
    half = x[x[:, 0] > np.median(x[:, 0])]
    p, r = Q.precision_recall(x, half)
    assert p == 1.0 and r < 0.8


def _brute_force_pr_dc(real, fake, k_pr, k_dc):
    """Improved precision/recall and density/coverage by explicit loops over points."""

    def kth(points, i, k):
        return sorted(float(np.linalg.norm(points[i] - points[j])) for j in range(len(points)) if j != i)[k - 1]

    dist = lambda u, v: float(np.linalg.norm(u - v))  # noqa: E731
    r_real = [kth(real, i, k_pr) for i in range(len(real))]
    r_fake = [kth(fake, j, k_pr) for j in range(len(fake))]
    precision = np.mean([any(dist(f, real[i]) <= r_real[i] for i in range(len(real))) for f in fake])
    recall = np.mean([any(dist(r, fake[j]) <= r_fake[j] for j in range(len(fake))) for r in real])
    r_dc = [kth(real, i, k_dc) for i in range(len(real))]
    # density and coverage: open balls (strict <), as the reference code of Naeem et al. (prdc)
    density = sum(dist(f, real[i]) < r_dc[i] for f in fake for i in range(len(real))) / (k_dc * len(fake))
    coverage = np.mean([any(dist(real[i], f) < r_dc[i] for f in fake) for i in range(len(real))])
    return precision, recall, density, coverage


def test_precision_recall_density_coverage_against_brute_force():
    """Real and fake sets of different spreads and sizes, so that the real set's radii and
    the fake set's radii give different answers."""
    rng = np.random.default_rng(0)
    for trial in range(6):
        real = rng.normal(size=(int(rng.integers(12, 30)), 3)).astype(np.float32)
        fake = (
            rng.normal(size=(int(rng.integers(12, 30)), 3)) * rng.choice([0.3, 2.0]) + rng.normal(size=3) * 0.7
        ).astype(np.float32)
        p, r, d, c = _brute_force_pr_dc(real, fake, 3, 5)
        assert Q.precision_recall(real, fake, k=3) == pytest.approx((p, r)), trial
        assert Q.density_coverage(real, fake, k=5) == pytest.approx((d, c)), trial


def test_memorised_samples_have_density_one_and_a_point_on_a_ball_edge_is_outside():
    """Fakes identical to the reals: each real ball (radius: distance to its k-th neighbour)
    holds its own point and k - 1 strictly closer ones, so density = N k / (k N) = 1 exactly
    (closed balls also count the k-th neighbour: (k + 1) / k = 1.5 for k = 2)."""
    real = np.array([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0], [7.0, 0.0], [7.0, 5.0], [0.0, 9.0]])  # no tied distances
    k = 2
    assert _brute_force_pr_dc(real, real.copy(), 1, k)[2:] == (1.0, 1.0)
    assert Q.density_coverage(real, real.copy(), k=k) == (1.0, 1.0)
    # k = 1, radii 1, 1, 2, 4, 5, 8.06: the fake (2, 0) is at distance exactly 1 from (1, 0), on
    # that ball's edge (not counted), and at 1 < 2 from (3, 0): one ball, density 1 / 1.
    fake = np.array([[2.0, 0.0]])
    assert Q.density_coverage(real, fake, k=1) == (1.0, 1 / 6)


def test_density_coverage_sanity():
    x = _gauss(500, seed=1)
    d, c = Q.density_coverage(x, x, k=5)
    assert c == 1.0 and d == 1.0  # each ball holds its own point and its k - 1 nearest neighbours
    d2, c2 = Q.density_coverage(x, _gauss(500, seed=2), k=5)
    assert 0.7 < d2 < 1.3 and c2 > 0.8
    d3, c3 = Q.density_coverage(x, x + 100.0, k=5)
    assert d3 == 0.0 and c3 == 0.0


def test_classifier_score_bounds():
    confident = torch.eye(10).repeat(10, 1) * 50  # every class, confidently
    assert Q.classifier_score(confident, splits=1)[0] == pytest.approx(10.0, rel=1e-3)
    assert Q.classifier_score(torch.zeros(100, 10), splits=2)[0] == pytest.approx(1.0)


def test_feature_dimension_mismatch_is_a_clear_error():
    with pytest.raises(ValueError, match="feature dimensions differ"):
        Q.fid_from_features(_gauss(10, d=4), _gauss(10, d=5), warn=False)


# ------------------------------------------------------------------ feature networks


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist", "cifar10"])
def test_shipped_feature_nets_load_and_give_128d_features(name):
    net = F.get_feature_net(name)
    c, h, w = F.FEATURE_NETS[name]
    f = net.features(torch.rand(3, c, h, w))
    assert f.shape == (3, 128) and torch.isfinite(f).all()
    assert F.weights_path(name).stat().st_size < 2_000_000
    with pytest.raises(F.FeatureNetError, match=rf"expects images of shape \(N, {c}, {h}, {w}\)"):
        net.features(torch.rand(2, 3 - c + 1 if c == 1 else 1, h, w))


def test_weights_hash_mismatch_is_a_clear_error(tmp_path, monkeypatch):
    shutil.copy(F.MANIFEST, tmp_path / F.MANIFEST.name)
    data = bytearray(F.weights_path("mnist").read_bytes())
    data[-1] ^= 0xFF
    (tmp_path / "mnist.safetensors").write_bytes(bytes(data))
    monkeypatch.setattr(F, "WEIGHTS_DIR", tmp_path)
    monkeypatch.setattr(F, "MANIFEST", tmp_path / F.MANIFEST.name)
    F._CACHE.clear()
    try:
        with pytest.raises(F.FeatureNetError, match="SHA-256 mismatch"):
            F.get_feature_net("mnist")
    finally:
        F._CACHE.clear()


def test_auto_choice_and_unknown_names():
    assert F.auto_feature_net((1, 28, 28), "fashion-mnist") == "fashion-mnist"
    assert F.auto_feature_net((1, 28, 28), "mnist-5k") == "mnist"
    assert F.auto_feature_net((3, 32, 32), "folder:/x") == "cifar10"
    with pytest.raises(F.FeatureNetError, match="1x28x28"):
        F.auto_feature_net((1, 28, 20), "frey-face")
    with pytest.raises(F.FeatureNetError, match="unknown feature network"):
        F.get_feature_net("vgg")


def test_inception_absence_is_a_message_not_a_crash():
    try:
        import torch_fidelity  # noqa: F401
    except ImportError:
        with pytest.raises(F.FeatureNetError, match="torch-fidelity"):
            F.get_feature_net("inception")
    else:
        pytest.skip("torch-fidelity is installed")


# ------------------------------------------------------------------ evaluate + cache + report


class _RandomNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(1, 8, 3, 2)
        self.fc = torch.nn.Linear(8 * 3 * 3, 8)
        self.head = torch.nn.Linear(8, 3)

    def features(self, x):
        return torch.relu(self.fc(torch.relu(self.conv(x)).flatten(1)))

    def forward(self, x):
        return self.head(self.features(x))


class _Noise(GenerativeModel):
    """Samples i.i.d. uniform pixels; exact log_prob of the dequantized uniform density (0)."""

    input_mode = "dequantize"
    likelihood_kind = "exact"

    def log_prob(self, x, *, labels=None, iw_samples=None, generator=None):
        return torch.zeros(len(x))

    def sample(self, n, *, labels=None, generator=None):
        return torch.rand(n, *self.config.image_shape, generator=generator)


def test_evaluate_caches_reference_stats_and_writes_report(tmp_path, monkeypatch):
    monkeypatch.setenv("GENLAB_DATA", str(tmp_path / "cache"))
    from genlab.data import ImageDataset

    g = torch.Generator().manual_seed(0)
    data = ImageDataset(torch.randint(0, 256, (300, 1, 8, 8), generator=g, dtype=torch.uint8), name="toy")
    net = F.FeatureNet("toy-net", _RandomNet(), (1, 8, 8), 8, sha256="abc")
    model = _Noise(ModelConfig(image_shape=(1, 8, 8)))
    with pytest.warns(UserWarning, match="KID"):
        r = Q.evaluate(model, data, n_samples=300, feature_net=net, kid_subsets=5, kid_subset_size=100, progress=False)
    assert r["likelihood"]["bits_per_dim"] == pytest.approx(8.0)
    q = r["quality"]
    assert set(q) >= {"fid", "kid", "kid_std", "precision", "recall", "density", "coverage", "classifier_score"}
    assert abs(q["kid"]) < 0.05  # uniform noise vs uniform noise
    files = list((tmp_path / "cache" / "stats").glob("*.safetensors"))
    assert len(files) == 1 and "toy-net" in files[0].name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r2 = Q.evaluate(model, data, n_samples=300, feature_net=net, kid_subsets=5, kid_subset_size=100, progress=False)
    assert r2["quality"] == q  # deterministic, and the cached statistics give the same numbers
    jp, mp = Q.write_report(r, tmp_path / "run")
    assert json.loads(jp.read_text())["quality"]["fid"] == q["fid"]
    md = mp.read_text()
    assert "| FID |" in md and "bits/dim" in md and "dequantization" in md


def test_evaluate_rejects_images_the_feature_net_cannot_take():
    from genlab.data import ImageDataset

    data = ImageDataset(torch.zeros(10, 1, 28, 20, dtype=torch.uint8), name="frey-face")
    model = _Noise(ModelConfig(image_shape=(1, 28, 20)))
    with pytest.raises(F.FeatureNetError, match="expects"):  # a network the user named: an error
        Q.evaluate(model, data, n_samples=10, progress=False, feature_net="mnist")
    with pytest.warns(UserWarning, match="no feature network fits"):  # chosen automatically: skipped, with the reason
        result = Q.evaluate(model, data, n_samples=10, progress=False)
    assert result["quality"] is None and "no feature network fits" in result["settings"]["quality_skipped"]


def test_evaluate_a_real_vae_on_mnist_5k(tmp_path, monkeypatch):
    """End to end with a registered model, a bundled data set and the shipped MNIST feature net."""
    monkeypatch.setenv("GENLAB_DATA", str(tmp_path))
    from genlab import data, registry

    test = data.load("mnist-5k", "test").subset(range(120))
    torch.manual_seed(0)
    model = registry.build("vae", latent_dim=4, channels=(8, 8), hidden_dim=16)
    with pytest.warns(UserWarning, match="KID"):
        r = Q.evaluate(
            model, test, n_samples=100, iw_samples=3, kid_subsets=3, kid_subset_size=50, knn_max=100, progress=False
        )
    assert r["likelihood"]["iw_samples"] == 3 and "dynamic binarization" in r["likelihood"]["preprocessing"]
    assert r["settings"]["feature_net"] == "mnist" and r["settings"]["n_reference"] == 120
    assert r["quality"]["fid"] > 0 and 0 <= r["quality"]["coverage"] <= 1
    jp, mp = Q.write_report(r, tmp_path / "run")
    assert "| FID |" in mp.read_text()
