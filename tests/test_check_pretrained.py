"""scripts/check_pretrained.py: its metrics against hand-computed and brute-force cases,
what it judges (the pixels `genlab sample` and `genlab manifold` show), which checks it
plans from a model's capabilities, and its judge's training loop on a tiny synthetic set.
Nothing here reads the shared data or trains on MNIST."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cp():
    spec = importlib.util.spec_from_file_location("check_pretrained", ROOT / "scripts" / "check_pretrained.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def one_hot(labels, k=10):
    return torch.nn.functional.one_hot(torch.as_tensor(labels), k).double()


# --------------------------------------------------------------------------- confident_shares


def test_perfect_judge_is_fully_confident_with_the_label_shares(cp):
    labels = torch.tensor([0, 1, 1, 2, 2, 2, 3, 3, 3, 3])
    s = cp.confident_shares(one_hot(labels), 0.9)
    assert s["n"] == 10 and s["confident_count"] == 10 and s["confident"] == 1.0
    assert s["shares"][:4] == [0.1, 0.2, 0.3, 0.4] and s["shares"][4:] == [0.0] * 6
    assert s["smallest_share"] == 0.0 and s["smallest_class"] == 4


def test_uniform_judge_is_never_confident(cp):
    s = cp.confident_shares(torch.full((50, 10), 0.1), 0.9)
    assert s["confident"] == 0.0 and s["confident_count"] == 0
    assert s["shares"] == [0.0] * 10 and s["smallest_share"] == 0.0


def test_confident_shares_hand_computed_with_the_threshold_inclusive(cp):
    probs = torch.tensor(
        [
            [0.90, 0.10, 0.00],  # exactly the threshold: confident, class 0
            [0.05, 0.95, 0.00],  # confident, class 1
            [0.50, 0.50, 0.00],  # not confident
            [0.00, 0.20, 0.80],  # not confident
        ],
        dtype=torch.float64,
    )
    s = cp.confident_shares(probs, 0.9)
    assert s["confident"] == 0.5 and s["confident_count"] == 2
    assert s["shares"] == [0.5, 0.5, 0.0] and s["smallest_class"] == 2


def test_confident_shares_matches_a_loop(cp):
    g = torch.Generator().manual_seed(1)
    probs = torch.softmax(3 * torch.randn(300, 10, generator=g), 1)
    s = cp.confident_shares(probs, 0.7)
    kept = [int(p.argmax()) for p in probs if float(p.max()) >= 0.7]
    assert s["confident_count"] == len(kept) > 0
    assert s["shares"] == pytest.approx([kept.count(d) / len(kept) for d in range(10)])
    assert s["smallest_share"] == pytest.approx(min(kept.count(d) for d in range(10)) / len(kept))


def test_confident_shares_rejects_an_empty_batch(cp):
    with pytest.raises(ValueError):
        cp.confident_shares(torch.zeros(0, 10))


# --------------------------------------------------------------------------- label_agreement


def test_label_agreement(cp):
    labels = torch.arange(20) % 10
    assert cp.label_agreement(one_hot(labels), labels) == 1.0
    assert cp.label_agreement(one_hot((labels + 1) % 10), labels) == 0.0
    probs = torch.tensor([[0.6, 0.4], [0.3, 0.7], [0.9, 0.1], [0.2, 0.8]])
    assert cp.label_agreement(probs, [0, 0, 0, 0]) == 0.5
    with pytest.raises(ValueError):
        cp.label_agreement(probs, [0, 1])


# --------------------------------------------------------------------------- nearest distances


def test_nearest_distance_of_a_set_to_itself_is_zero(cp):
    x = torch.rand(40, 1, 28, 20, generator=torch.Generator().manual_seed(0))
    assert cp.nearest_mean_distance(x, x) == 0.0
    assert torch.equal(cp.nearest_distances(x, x), torch.zeros(40, dtype=torch.float64))


def test_nearest_distance_to_a_shifted_copy_is_the_shift_norm(cp):
    x = torch.rand(30, 1, 28, 20, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    shift = 0.01  # far smaller than the spread between images, so each image's nearest is its own copy
    assert cp.nearest_mean_distance(x, x + shift) == pytest.approx(shift * math.sqrt(28 * 20), rel=1e-9)


def test_nearest_distances_match_brute_force(cp):
    g = torch.Generator().manual_seed(2)
    q, r = torch.rand(17, 5, generator=g), torch.rand(9, 5, generator=g)
    brute = [min(math.dist(a.tolist(), b.tolist()) for b in r) for a in q]
    assert cp.nearest_distances(q, r).tolist() == pytest.approx(brute, rel=1e-12)
    assert cp.nearest_mean_distance(q, r) == pytest.approx(sum(brute) / len(brute), rel=1e-12)


# --------------------------------------------------------------------------- what the user sees


def test_as_shown_rounds_to_the_png_levels(cp):
    from genlab.viz.images import to_pil

    x = torch.tensor([-0.2, 0.0, 0.25, 0.21, 1.0, 1.3])
    assert cp.as_shown(x).tolist() == pytest.approx([0.0, 0.0, 64 / 255, 54 / 255, 1.0, 1.0])
    img = torch.rand(1, 7, 9, generator=torch.Generator().manual_seed(0)) * 1.4 - 0.2
    png = torch.from_numpy(np.array(to_pil(img))).float() / 255
    assert torch.equal(cp.as_shown(img)[0], png)


@pytest.mark.parametrize("padding", [0, 2])
def test_grid_cells_invert_make_grid(cp, padding):
    from genlab.viz.images import make_grid

    imgs = torch.rand(12, 1, 5, 3, generator=torch.Generator().manual_seed(0))
    grid = make_grid(imgs, nrow=4, padding=padding)
    assert torch.equal(cp.grid_cells(grid, 3, 4, 5, 3, padding), imgs)


def test_shown_samples_are_the_pixels_of_genlab_sample(cp):
    from genlab import registry
    from genlab.viz.samples import render_samples

    model = registry.build("dcgan", channels=8).eval()
    x, labels = cp.shown_samples(model, 9, seed=3)
    r = render_samples(model, 9, generator=torch.Generator().manual_seed(3))
    png = torch.from_numpy(np.array(r.image)).float()[None] / 255  # the grid as the PNG holds it
    assert labels is None and x.shape == (9, 1, 28, 28)
    assert torch.equal(cp.grid_cells(png, 3, 3, 28, 28, padding=2), x)


def test_manifold_images_are_the_cells_of_genlab_manifold(cp):
    from genlab import registry
    from genlab.viz.latent import manifold_grid

    model = registry.build("vae", latent_dim=2, image_shape=(1, 28, 20), likelihood="logistic").eval()
    faces = cp.manifold_images(model, 3)
    assert faces.shape == (9, 1, 28, 20)
    grid = manifold_grid(model, n=3)
    assert torch.equal(faces[4], cp.as_shown(grid[:, 28:56, 20:40]))  # the centre cell: z = (0, 0)
    z0 = model.decode(torch.zeros(1, 2))
    assert torch.equal(faces[4], cp.as_shown(z0[0]))


# --------------------------------------------------------------------------- planning from capabilities


@pytest.mark.parametrize(
    "name, fields, data, want",
    [
        ("dcgan", {}, "mnist", ["samples"]),
        ("pixelcnn", {}, "mnist", ["samples"]),
        ("ddpm", {}, "mnist", ["samples"]),
        ("ali", {}, "mnist", ["reconstruction", "samples"]),
        ("gated-pixelcnn", {"num_classes": 10}, "mnist", ["conditional"]),
        ("cyclegan", {}, "unpaired:mnist,mnist+invert", ["translation"]),
        ("cyclegan", {}, "unpaired:mnist,fashion-mnist", []),
        ("cyclegan", {"image_shape": (6, 28, 28)}, "unpaired:mnist,mnist+mnistm", ["sim_to_real"]),
        ("glow", {}, "mnist", ["samples"]),
        ("pixelvae", {}, "mnist", ["samples"]),
        ("vae", {"latent_dim": 2, "image_shape": (1, 28, 20)}, "frey-face", ["manifold"]),
        ("vae", {}, "fashion-mnist", []),
        ("gan", {"image_shape": (2,), "arch": "mlp"}, "ring8", ["ring"]),
        ("wavenet", {}, "sines", []),
    ],
)
def test_plan_follows_capabilities_and_data(cp, name, fields, data, want):
    from genlab import registry

    assert cp.plan(registry.build(name, **fields), data) == want


@pytest.mark.slow
def test_sim_to_real_check_reports_the_cards_gain_and_judges_f_of_real_style_digits(cp, shared_data):
    if not (shared_data / "cifar10-test-jpeg").is_dir():
        pytest.skip("no cifar10-test-jpeg in the shared data")
    from genlab import registry

    model = registry.build("cyclegan", image_shape=(6, 28, 28), g_channels=4, g_blocks=1).eval()
    seeds = [{"gain": g} for g in (0.30, 0.20, 0.25)]
    card = {"measured": {"sim_to_real": {"summary": {"gain": {"mean": 0.25, "std": 0.05}}, "per_seed": seeds}}}
    with torch.inference_mode():
        row = cp.check_sim_to_real(model, cp.Judge().eval(), card, str(shared_data), 20)
    assert row["pass"] is True and "+25.0 points (sd 5.0, 3 seeds)" in row["numbers"]
    assert 0 <= row["measured"]["judge_reads_f_b"] <= 1 and row["measured"]["test_digits"] == 20
    card["measured"]["sim_to_real"]["summary"]["gain"]["mean"] = 0.19
    with torch.inference_mode():
        assert cp.check_sim_to_real(model, cp.Judge().eval(), card, str(shared_data), 20)["pass"] is False


def test_sample_targets(cp):
    probs = one_hot(torch.arange(100) % 10)
    assert cp.sample_row(probs, 0.85)["pass"] is True
    lopsided = one_hot(torch.tensor([1] * 98 + [2, 3]))
    row = cp.sample_row(lopsided, 0.85)
    assert row["pass"] is False and row["measured"]["smallest_share"] == 0.0  # confident, but digits missing
    assert cp.sample_row(torch.full((10, 10), 0.1), 0.70)["pass"] is False


# --------------------------------------------------------------------------- the judge


def test_recipe_hash_is_stable_and_follows_the_recipe(cp):
    h = cp.recipe_hash(cp.JUDGE_RECIPE)
    assert h == cp.recipe_hash(dict(reversed(list(cp.JUDGE_RECIPE.items())))) and len(h) == 64
    assert cp.recipe_hash({**cp.JUDGE_RECIPE, "epochs": 99}) != h
    assert cp.judge_path().name == f"judge-{h[:16]}.safetensors"


def test_judge_shape_and_size(cp):
    net = cp.Judge()
    assert net(torch.rand(3, 1, 28, 28)).shape == (3, 10)
    assert 80_000 < sum(p.numel() for p in net.parameters()) < 120_000


def test_outliers_keep_shape_and_ink(cp):
    x = torch.rand(9, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    o = cp.outliers(x, torch.Generator().manual_seed(1))
    assert o.shape == x.shape
    assert torch.allclose(o[3:].flatten(1).sum(1), x[3:].flatten(1).sum(1))  # shuffled pixels / patches: the same ink
    assert not torch.equal(o[3:], x[3:])


def synthetic_digits(n: int, seed: int = 0):
    """Ten classes: a bright 8x8 square at one of ten places, with noise (uint8 images)."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 10
    x = torch.rand(n, 1, 28, 28, generator=g) * 60
    for i, y in enumerate(labels.tolist()):
        r, c = divmod(y, 5)
        x[i, 0, 2 + 12 * r : 10 + 12 * r, 1 + 5 * c : 9 + 5 * c] += 180
    return x.clamp(0, 255).to(torch.uint8), labels


def test_train_judge_learns_a_tiny_synthetic_set_deterministically(cp):
    images, labels = synthetic_digits(200)
    kw = dict(channels=(8, 16), hidden=32, batch_size=20, lr=2e-2, epochs=5, outlier_share=0.25, seed=0)
    net, log = cp.train_judge(images, labels, **kw)
    assert log["steps"] == 50 and log["last_loss"] < 0.5 * log["first_loss"]
    test_images, test_labels = synthetic_digits(100, seed=1)
    probs = cp.judge_probs(net, test_images.float() / 255)
    assert cp.label_agreement(probs, test_labels) >= 0.9
    a, log_a = cp.train_judge(images, labels, **kw, max_steps=5)
    b, _ = cp.train_judge(images, labels, **kw, max_steps=5)
    assert log_a["steps"] == 5
    assert all(torch.equal(u, v) for u, v in zip(a.state_dict().values(), b.state_dict().values()))


def test_write_judged_adds_one_key_and_keeps_the_card(cp, tmp_path, monkeypatch):
    import json

    from genlab import pretrained

    card = {"name": "m", "headline": "FID 1.0", "measured": {"x": 1}}
    (tmp_path / "card.json").write_text(json.dumps(card))
    monkeypatch.setattr(pretrained, "path", lambda name: tmp_path)
    row = {
        "check": "samples",
        "n": 10,
        "numbers": "90.0% confident",
        "target": ">= 85%",
        "pass": True,
        "measured": {"confident": 0.9},
    }
    info = {
        "recipe_sha256": "ab" * 32,
        "parameters": 93962,
        "accuracy_grey": 0.99,
        "accuracy_binarized": 0.985,
        "real_confident": 0.97,
        "noise_confident": 0.0,
        "threshold": 0.9,
    }
    cp.write_judged("m", [row, {**row, "check": "other", "pass": None}], info)
    got = json.loads((tmp_path / "card.json").read_text())
    assert {k: got[k] for k in card} == card
    judged = got["judged"]
    assert judged["pass"] is True and judged["judge"] == info and len(judged["checks"]) == 2
    assert judged["checks"][0]["measured"] == {"confident": 0.9} and judged["script"] == "scripts/check_pretrained.py"
