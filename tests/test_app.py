"""The explorer's engine (:class:`genlab.app.Explorer`): tiny models saved in tmp_path,
each view called with typed arguments as the page calls it. Every image is checked
against the direct library call it stands for, pixel for pixel. The Gradio page itself
is tested in test_app_browser.py."""

from __future__ import annotations

import json
import socket
import threading
import time

import numpy as np
import pytest
import torch

import genlab
from genlab import data, ood, registry
from genlab.app import Explorer, RequestError, capabilities, uploads
from genlab.cli import main
from genlab.models.base import capabilities_of
from genlab.models.vae import VAE, VAEConfig
from genlab.viz import latent as latent_viz
from genlab.viz.images import make_grid, to_pil
from genlab.viz.plots import figure_image, waveform_figure
from tiny import TINY

TRAIN = [
    "--data",
    "digits",
    "--steps",
    "6",
    "--set",
    "train.batch_size=16",
    "--set",
    "train.sample_every=1000",
    "--set",
    "train.log_every=2",
    "--set",
    "train.progress=false",
    "--set",
    "model.latent_dim=2",
    "--set",
    "model.channels=[4,8]",
    "--set",
    "model.hidden_dim=16",
]


def build(name, **fields):
    config_cls, model_cls = registry.get(name)
    torch.manual_seed(0)
    return model_cls(config_cls(**fields)).eval()


# ----------------------------------------------------------------------------- fixtures and helpers


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory):
    """A real (tiny) training run on the 8x8 digits: config.json with its data section, metrics.jsonl."""
    out = tmp_path_factory.mktemp("app") / "vae-run"
    assert main(["train", "vae", "--out", str(out), "--seed", "1", *TRAIN]) == 0
    return out


@pytest.fixture(scope="module")
def vae_ex(vae_run):
    yield Explorer.from_run(vae_run)


def pixels(img) -> torch.Tensor:
    """A Pillow image -> uint8 (C, H, W)."""
    arr = torch.from_numpy(np.asarray(img).copy())
    return arr.unsqueeze(0) if arr.dim() == 2 else arr.permute(2, 0, 1)


def expected(image: torch.Tensor) -> torch.Tensor:
    """What a (C, H, W) image in [0, 1] looks like on the page (8 bits per channel)."""
    return pixels(to_pil(image))


def same(image: torch.Tensor, want: torch.Tensor) -> bool:
    """``image`` is exactly ``want`` (a model's output) clamped to [0, 1]."""
    return torch.equal(image, want.detach().float().clamp(0, 1))


def same_analysis(a, b) -> bool:
    tensors = ("input", "model_input", "reconstruction")
    return all(
        (getattr(a, k) is None and getattr(b, k) is None) or torch.equal(getattr(a, k), getattr(b, k)) for k in tensors
    ) and (a.seed, a.label, a.likelihood, a.outlier) == (b.seed, b.label, b.likelihood, b.outlier)


def digits_test(n=4):
    return data.load("digits", "test").images[:n].float() / 255


# ----------------------------------------------------------------------------- the card and the page


@pytest.mark.slow
def test_card_names_the_model_its_capabilities_and_the_training_log(vae_ex, vae_run):
    card = vae_ex.card()
    assert card["name"] == "vae" and card["class"] == "VAE" and "Kingma" in card["summary"]
    assert card["config"]["latent_dim"] == 2 and card["data"]["name"] == "digits"
    caps = card["capabilities"]
    assert (
        caps["latent"] and caps["manifold"] and caps["reconstruct"] and caps["log_prob"] and caps["importance_sampled"]
    )
    assert not caps["translate"] and caps["num_classes"] == 0 and caps["kind"] == "image"
    records = [json.loads(line) for line in (vae_run / "metrics.jsonl").read_text().splitlines()]
    m = card["metrics"]
    assert m["records"] == len(records) == 3 and m["last_step"] == 6 and m["last"] == records[-1]
    assert m["series"]["vae/loss"] == [[r["step"], r["vae/loss"]] for r in records]
    assert card["parameters"] == sum(p.numel() for p in genlab.load(vae_run).parameters())


def test_the_card_is_strict_json_even_with_non_finite_metrics(tmp_path):
    model = build("pixelcnn", image_shape=(1, 5, 5), hidden_channels=8, num_blocks=1, output_channels=8)
    model.save(tmp_path)
    lines = [
        {"step": s, "nll/loss": v, "lr": lr}
        for s, v, lr in ((1, 3.0, 0.1), (2, float("nan"), 0.1), (3, 2.0, float("inf")))
    ]
    (tmp_path / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in lines) + '\n{"step": 4, "nll/lo')
    raw = json.dumps(Explorer.from_run(tmp_path).card(), allow_nan=False)  # raises on NaN / inf
    card = json.loads(raw, parse_constant=lambda c: pytest.fail(f"{c} in the card"))
    m = card["metrics"]
    assert m["records"] == 3 and m["last"]["nll/loss"] == 2.0 and m["last"]["lr"] is None  # the cut line is skipped
    assert m["series"]["nll/loss"] == [[1, 3.0], [3, 2.0]]  # the NaN is left out of the curve


def test_capabilities_follow_the_methods_not_the_names():
    assert capabilities(
        build("pixelcnn", image_shape=(1, 5, 5), hidden_channels=8, num_blocks=1, output_channels=8)
    ) == {
        "kind": "image",
        "sample": True,
        "num_classes": 0,
        "latent_dim": None,
        "latent_shape": None,
        "latent": False,
        "manifold": False,
        "reconstruct": False,
        "log_prob": True,
        "importance_sampled": False,
        "translate": False,
        "analyze": True,
    }
    gan = capabilities(build("gan", image_shape=(1, 8, 8), latent_dim=4, hidden_dim=16, hidden_layers=1, num_classes=3))
    assert gan["latent"] and gan["manifold"] and not gan["log_prob"] and not gan["analyze"] and gan["num_classes"] == 3
    assert capabilities(build("gan", image_shape=(2,), latent_dim=1, hidden_dim=8, hidden_layers=1))["kind"] == "points"
    assert not capabilities(build("gan", image_shape=(1, 8, 8), latent_dim=1, hidden_dim=8, hidden_layers=1))[
        "manifold"
    ]
    # image-sized codes get sliders and interpolation, not a 2-D manifold (a slice through 2 of 256 entries is blank)
    glow = capabilities(build("glow", image_shape=(1, 16, 16), num_scales=2, steps_per_scale=1, hidden_channels=4))
    assert glow["latent"] and glow["latent_dim"] == 256 and not glow["manifold"]
    assert capabilities(Flipper(VAEConfig(image_shape=(1, 4, 6), latent_dim=2, channels=(4,), hidden_dim=0)))[
        "translate"
    ]


# ----------------------------------------------------------------------------- images


def test_samples_are_the_models_samples_for_the_seed(vae_ex, vae_run):
    model = genlab.load(vae_run)
    shown = vae_ex.samples(9, seed=7)
    assert shown.image.size == (2 + 3 * 10, 2 + 3 * 10) and shown.nrow == 3
    x = model.sample(9, generator=torch.Generator().manual_seed(7))
    assert torch.equal(shown.samples, x) and torch.equal(pixels(shown.image), expected(make_grid(x, nrow=3)))
    assert vae_ex.samples(9, seed=7).image.tobytes() == shown.image.tobytes()
    assert vae_ex.samples(9, seed=8).image.tobytes() != shown.image.tobytes()


def test_latent_returns_exactly_decode_of_z(vae_ex, vae_run):
    model = genlab.load(vae_run)
    image, z = vae_ex.latent(seed=5)
    assert torch.equal(
        z, torch.randn(1, 2, generator=torch.Generator().manual_seed(5))[0]
    )  # the prior draw of the seed
    assert image.shape == (1, 8, 8)
    assert same(image, model.decode(z[None])[0])
    # the seed's code equals what sample() decodes for that seed
    assert same(image, model.sample(1, generator=torch.Generator().manual_seed(5))[0])
    moved, moved_z = vae_ex.latent(seed=5, values=[1.25])
    assert moved_z.tolist() == [1.25, z[1].item()]
    assert same(moved, model.decode(torch.tensor([[1.25, z[1].item()]]))[0])
    given, given_z = vae_ex.latent(z=[-0.3, 2.0])
    assert torch.equal(given_z, torch.tensor([-0.3, 2.0])) and same(given, model.decode(torch.tensor([[-0.3, 2.0]]))[0])


def test_interpolation_strip_and_manifold(vae_ex, vae_run):
    model = genlab.load(vae_run)
    strip = vae_ex.interpolate(seed_a=1, seed_b=2, steps=3, method="lerp")
    assert strip.shape == (1, 12, 2 + 3 * 10)
    za, zb = vae_ex.prior(1, 1)[0], vae_ex.prior(1, 2)[0]
    assert torch.equal(za, torch.randn(1, 2, generator=torch.Generator().manual_seed(1))[0])
    want = make_grid(model.decode(torch.stack([za, (za + zb) / 2, zb])), nrow=3)  # lerp's midpoint: equal to an ulp
    assert torch.equal(expected(strip), expected(want))
    slerp = vae_ex.interpolate(seed_a=1, seed_b=2, steps=3)
    frames = latent_viz.z_interpolation_frames(model, za, zb, 3, "slerp")
    assert same(slerp, make_grid(torch.stack(frames), nrow=3))
    man = vae_ex.manifold(4)
    assert man.shape == (1, 32, 32) and same(man, latent_viz.manifold_grid(model, n=4))


def test_conditional_gan_latent_uses_the_label_and_the_generators_prior():
    model = build("gan", image_shape=(1, 8, 8), latent_dim=4, hidden_dim=16, hidden_layers=1, num_classes=3)
    ex = Explorer(model)
    image, z = ex.latent(seed=3, label=2)
    assert same(image, model.sample(1, generator=torch.Generator().manual_seed(3), labels=torch.tensor([2]))[0])
    other, other_z = ex.latent(seed=3, label=0)
    assert torch.equal(other_z, z) and not torch.equal(other, image)
    shown = ex.samples(4, seed=0)  # default labels 0, 1, 2, 0
    x = model.sample(4, generator=torch.Generator().manual_seed(0), labels=torch.tensor([0, 1, 2, 0]))
    assert shown.labels.tolist() == [0, 1, 2, 0] and torch.equal(pixels(shown.image), expected(make_grid(x, nrow=2)))
    assert ex.samples(3, labels=[1]).labels.tolist() == [1, 1, 1]
    assert ex.interpolate(steps=4, label=1).shape == (1, 12, 42)


@pytest.mark.slow
def test_point_and_sequence_models_get_samples():
    points = Explorer(build("gan", image_shape=(2,), latent_dim=2, hidden_dim=8, hidden_layers=1))
    shown = points.samples(500, seed=0)
    assert shown.image.size == (384, 384) and shown.samples.shape == (500, 2)
    assert points.samples(500, seed=0).image.tobytes() == shown.image.tobytes()
    wave = build("wavenet", image_shape=(1, 1, 12), residual_channels=4, skip_channels=4, dilations=(1, 2), stacks=1)
    ex = Explorer(wave)
    shown = ex.samples(2, seed=0)
    assert shown.image.size == (512, 2 * 64)
    x = wave.sample(2, generator=torch.Generator().manual_seed(0))
    assert torch.equal(shown.samples, x) and shown.image.tobytes() == figure_image(waveform_figure(x)).tobytes()
    with pytest.raises(RequestError, match="cannot decode latent codes"):
        ex.latent()


# ----------------------------------------------------------------------------- your image


def test_analyze_gives_log_prob_reconstruction_and_outlier_scores(vae_ex, vae_run):
    model = genlab.load(vae_run)
    x01 = digits_test(1)
    found = vae_ex.analyze(x01[0], seed=4, iw_samples=7)
    g = torch.Generator().manual_seed(4)
    x = model.prepare(x01, generator=g)
    lp = model.log_prob(x, iw_samples=7, generator=g)
    lik = found.likelihood
    assert lik.log_prob_nats == float(lp[0]) and lik.nll_nats == -float(lp[0]) and lik.offset_nats == 0
    assert lik.bits_per_dim == pytest.approx(-float(lp[0]) / (64 * 0.6931471805599453), rel=1e-12)
    assert "k = 7" in lik.estimator and lik.conditional_on_label is None
    assert torch.equal(found.input, x01[0]) and found.seed == 4 and found.label is None
    assert torch.equal(found.model_input, x[0])  # the binarized draw
    assert same(found.reconstruction, model.decode(model.encode(x))[0])
    # outlier scores: percentiles among the run's held-out digits, as genlab.ood scores them
    # (with genlab.ood's own importance samples, k = 10, for the image and the reference alike)
    out = found.outlier
    assert out["available"] and out["reference"] == "digits test split, first 100 images" and out["iw_samples"] == 10
    ref = ood.nll_bits_per_dim(model, data.load("digits", "test").images[:100], seed=4)
    mine = float(ood.nll_bits_per_dim(model, x01, seed=4)[0])
    assert out["nll_bits_per_dim"]["value"] == pytest.approx(mine, rel=1e-12)
    assert out["nll_bits_per_dim"]["percentile"] == pytest.approx(100 * float((ref < mine).double().mean()))
    assert out["nll_bits_per_dim"]["reference_mean"] == pytest.approx(float(ref.mean()))
    # complexity: the code length of the binarized image the VAE scores (ood.scores), on both sides
    ref_complexity = ood.score(model, data.load("digits", "test").images[:100], "complexity", seed=4)
    my_complexity = float(ood.score(model, x01, "complexity", seed=4)[0])
    assert out["complexity"]["value"] == pytest.approx(my_complexity)
    assert out["complexity"]["percentile"] == pytest.approx(
        100 * float((ref_complexity < my_complexity).double().mean())
    )
    assert same_analysis(vae_ex.analyze(x01[0], seed=4, iw_samples=7), found)  # determinism per seed
    assert vae_ex.analyze(x01[0], seed=5, iw_samples=7).likelihood != lik


def test_uploads_are_fitted_to_the_models_size_only_when_asked(vae_ex):
    from genlab.data.images import fit_image, to_array

    big = to_pil(torch.rand(3, 20, 12))  # an RGB image of another size and aspect ratio
    with pytest.raises(RequestError) as error:
        uploads.image_tensor(big, (1, 8, 8))
    assert "12x20" in str(error.value) and "8x8" in str(error.value) and "fit" in str(error.value)
    x01 = uploads.image_tensor(big, (1, 8, 8), fit=True)
    found = vae_ex.analyze(x01, iw_samples=2)
    want = to_array(fit_image(big.convert("L"), (8, 8)), 1)
    assert torch.equal(expected(found.input), torch.from_numpy(want.copy()))


def test_exact_likelihood_models_and_labels():
    pix = build("pixelcnn", image_shape=(1, 5, 5), hidden_channels=8, num_blocks=1, output_channels=8)
    xq = torch.round(torch.rand(1, 1, 5, 5) * 255) / 255  # 8-bit levels, as an upload carries
    ex = Explorer(pix)
    found = ex.analyze(xq[0], seed=2)
    x = pix.prepare(xq, generator=torch.Generator().manual_seed(2))
    assert found.likelihood.log_prob_nats == float(pix.log_prob(x).detach()[0])
    assert found.reconstruction is None and found.likelihood.estimator == pix.likelihood_description()
    assert found.outlier == {
        "available": False,
        "reason": "no reference images: the run's config.json names no data set",
    }
    assert ex.analyze(xq[0], iw_samples=5).likelihood is not None  # ignored: exact model
    gated = build(
        "gated-pixelcnn",
        image_shape=(3, 4, 4),
        hidden_channels=6,
        num_blocks=2,
        output_channels=6,
        mixtures=2,
        num_classes=3,
    )
    rgb = torch.round(torch.rand(3, 4, 4) * 255) / 255
    ex = Explorer(gated)
    found = ex.analyze(rgb, label=2)
    assert found.likelihood.log_prob_nats == float(gated.log_prob(rgb[None], labels=torch.tensor([2])).detach()[0])
    assert found.likelihood.conditional_on_label == 2 and found.outlier is None
    with pytest.raises(RequestError, match=r"'label' must be in 0\.\.2, got 3"):
        ex.analyze(rgb, label=3)


def with_data(model, folder, name="digits"):
    """``model`` saved in ``folder`` as a run of the data set ``name`` (the outlier reference)."""
    model.save(folder)
    doc = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**doc, "data": {"name": name}}))
    return folder


def test_ddpm_scores_an_image_with_its_cheap_estimator_and_fewer_reference_images(tmp_path, monkeypatch):
    """DDPM's bound over all T = 1000 terms takes about 15 s an image at MNIST size: the
    explorer uses its unbiased estimate from 50 stratified terms and says so, and cuts the
    reference images to what the estimator scores in REFERENCE_SECONDS."""
    from genlab.explore import explorer as engine

    model = build("ddpm", **{**TINY["ddpm"], "timesteps": 1000})
    ex = Explorer.from_run(with_data(model, tmp_path))
    calls = []
    ex.model.net.register_forward_hook(lambda *args: calls.append(1))
    monkeypatch.setattr(engine, "REFERENCE_SECONDS", 0.0)
    found = ex.analyze(torch.rand(1, 6, 6))
    lik, out = found.likelihood, found.outlier
    assert "an unbiased stratified estimate from k = 50 of its T = 1000 terms" in lik.estimator
    assert out["estimator"] == lik.estimator and out["reference"] == "digits test split, first 10 images"
    assert len(calls) < 1000  # 50 each for the image's NLL, its outlier score, the 10 references in one batch, and
    # the reconstruction (the full bound: 1000 network passes for each of the three)
    assert ex.model.config.bound_timesteps == 0  # the run's own estimator is left as it was
    assert ex.card()["config"]["bound_timesteps"] == 0


class Flipper(VAE):
    """A test translator: a2b mirrors left-right, b2a flips upside down (input space = [0, 1])."""

    domain_channels = 1

    def translate(self, x, direction):
        return x.flip(-1) if direction == "a2b" else x.flip(-2)


def test_translate_calls_the_models_translate():
    model = Flipper(
        VAEConfig(image_shape=(1, 4, 6), latent_dim=2, channels=(4,), hidden_dim=0, likelihood="logistic")
    ).eval()
    img = torch.rand(1, 4, 6)
    ex = Explorer(model)
    a2b = ex.translate(img, "a2b")
    assert a2b.shape == (1, 4, 6) and torch.equal(a2b, img.flip(-1))
    assert torch.equal(ex.translate(img, direction="b2a"), img.flip(-2))
    with pytest.raises(RequestError, match="'a2b' or 'b2a'"):
        ex.translate(img, "sideways")


def test_a_registered_translator_gets_samples_and_translations():
    """Whatever model in the registry has translate() (CycleGAN): paired samples split into
    one-domain images, and translate on the domain's shape."""
    names = [n for n in registry.MODELS if "translate" in capabilities_of(registry.entry(n).model_class)]
    if not names:
        pytest.skip("no translator in the registry")

    model = build(names[0], **TINY[names[0]])
    c, h, w = model.config.image_shape
    cd = model.domain_channels
    img = torch.round(torch.rand(cd, h, w) * 255) / 255
    ex = Explorer(model)
    card = ex.card()
    assert card["capabilities"]["translate"] and not card["capabilities"]["analyze"]
    shown = ex.samples(4, seed=1)
    x = model.sample(4, generator=torch.Generator().manual_seed(1))
    assert torch.equal(pixels(shown.image), expected(make_grid(x.reshape(4 * c // cd, cd, h, w), nrow=shown.nrow)))
    for direction in ("a2b", "b2a"):
        assert same(ex.translate(img, direction), model.translate(img[None], direction)[0])


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(registry.MODELS))
def test_every_registered_model_answers_what_its_capabilities_promise(name):
    """Capabilities come from methods: each view a model's card lists must answer with
    images of the right size, and the others must refuse with a RequestError."""
    model = build(name, **TINY[name])
    caps = capabilities(model)
    shape = tuple(model.config.image_shape)
    ex = Explorer(model)
    assert ex.card()["capabilities"] == caps
    label = 1 if caps["num_classes"] else None
    assert ex.samples(2, labels=None if label is None else [label]).image.size[0] > 0
    image = torch.rand(*shape) if len(shape) == 3 else torch.rand(1, 4, 4)
    for view, call, cap, size in [
        ("latent", lambda: ex.latent(label=label)[0], "latent", shape),
        ("interpolate", lambda: ex.interpolate(steps=3, label=label), "latent", None),
        ("manifold", lambda: ex.manifold(2, label=label), "manifold", (shape[0], 2 * shape[-2], 2 * shape[-1])),
        ("analyze", lambda: ex.analyze(image, iw_samples=2, label=label), "analyze", None),
    ]:
        if not caps[cap]:
            with pytest.raises(RequestError):
                call()
            continue
        out = call()
        if size is not None:
            assert tuple(out.shape) == size, view
        if view == "analyze":
            assert (out.likelihood is not None) == caps["log_prob"]
            assert (out.reconstruction is not None) == caps["reconstruct"]
            if caps["reconstruct"]:
                assert tuple(out.reconstruction.shape) == shape


# ----------------------------------------------------------------------------- bad arguments


@pytest.mark.parametrize(
    "view, kwargs, message",
    [
        ("samples", {"n": 65}, "'n' must be in 1..64, got 65"),
        ("samples", {"n": "9"}, "'n' must be an integer"),
        ("samples", {"seed": -1}, "'seed' must be in 0.."),
        ("samples", {"labels": [1]}, "this model is unconditional"),
        ("latent", {"values": [0, 0, 0]}, "'values' must be a list of at most 2 numbers"),
        ("latent", {"z": [0.5]}, "'z' must be a list of exactly 2 numbers"),
        ("latent", {"values": [1e9]}, "finite numbers within +-100"),
        ("latent", {"label": 1}, "'label' was given, but this model is unconditional"),
        ("interpolate", {"method": "cubic"}, "'method' must be 'slerp' or 'lerp'"),
        ("interpolate", {"steps": 1}, "'steps' must be in 2..32"),
        ("manifold", {"dims": [0, 0]}, "two different latent dimensions in 0..1"),
        ("manifold", {"n": 31}, "'n' must be in 2..30"),
        ("analyze", {"x01": None}, "'x01' must be one image, a float tensor (1, 8, 8) (C, H, W) in [0, 1], got None"),
        ("analyze", {"x01": torch.zeros(1, 8, 8, dtype=torch.uint8)}, "got a torch.uint8 tensor"),
        (
            "analyze",
            {"x01": torch.rand(1, 8, 9)},
            "'x01' has shape (1, 8, 9), this model takes one image of shape (1, 8, 8)",
        ),
        ("analyze", {"x01": torch.full((1, 8, 8), 2.0)}, "'x01' must hold values in [0, 1], got 2..2"),
        ("analyze", {"x01": torch.rand(1, 8, 8), "iw_samples": 0}, "'iw_samples' must be in 1..1000"),
        ("translate", {"x01": torch.rand(1, 8, 8)}, "cannot translate images"),
    ],
)
def test_bad_arguments_raise_a_request_error_that_says_what_is_accepted(vae_ex, view, kwargs, message):
    with pytest.raises(RequestError) as error:
        getattr(vae_ex, view)(**kwargs)
    assert message in str(error.value), str(error.value)


def test_model_calls_are_serialised_and_the_run_dir_is_never_written(vae_run):
    snapshot = lambda: {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in vae_run.rglob("*")}  # noqa: E731
    before = snapshot()
    explorer = Explorer.from_run(vae_run, reference_examples=20)
    inside, most = [0], [0]
    sample = explorer.model.sample

    def slow_sample(*args, **kwargs):
        inside[0] += 1
        most[0] = max(most[0], inside[0])
        time.sleep(0.02)
        try:
            return sample(*args, **kwargs)
        finally:
            inside[0] -= 1

    explorer.model.sample = slow_sample
    results = {}
    threads = [
        threading.Thread(target=lambda s=s: results.__setitem__(s, explorer.samples(4, seed=s).image.tobytes()))
        for s in range(6)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert most[0] == 1  # never two model calls at once
    assert all(results[s] == explorer.samples(4, seed=s).image.tobytes() for s in range(6))
    explorer.analyze(digits_test(1)[0], iw_samples=2)
    explorer.card()
    assert snapshot() == before


# ----------------------------------------------------------------------------- the command


def test_serve_refuses_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert main(["serve", str(tmp_path)]) == 2
    assert "config.json" in capsys.readouterr().err
    assert main(["serve", str(tmp_path / "missing")]) == 2
    assert "not a directory" in capsys.readouterr().err


@pytest.mark.slow
def test_serve_reports_a_busy_port(vae_run, capsys):
    pytest.importorskip("gradio")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        assert main(["serve", str(vae_run), "--port", str(port)]) == 2
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ddpm", "flow-matching"])
def test_image_shaped_codes_get_sliders_and_interpolation_over_flattened_codes(name):
    """ddpm's and flow matching's codes are (C, H, W) noise: the latent views work on the
    flattened code, decode receives (N, *latent_shape), and neither is importance-sampled."""
    model = build(name, **TINY[name]).eval()
    ex = Explorer(model)
    shape, d = tuple(model.latent_shape), 36  # (1, 6, 6)
    caps = ex.caps
    assert caps["latent"] and caps["latent_dim"] == d and caps["latent_shape"] == list(shape) and not caps["manifold"]
    assert not caps["importance_sampled"] and caps["log_prob"]

    def decoded(z, seed):
        return model.decode(z.reshape(len(z), *shape), generator=torch.Generator().manual_seed(seed))

    image, z = ex.latent(seed=3)
    assert z.shape == (d,) and torch.equal(z, model.latent(1, generator=torch.Generator().manual_seed(3)).reshape(d))
    assert same(image, decoded(z[None], 3)[0])
    moved, moved_z = ex.latent(seed=3, values=[0.5, -1.0])
    want = torch.cat([torch.tensor([0.5, -1.0]), z[2:]])
    assert torch.equal(moved_z, want) and same(moved, decoded(want[None], 3)[0])
    with pytest.raises(RequestError, match="at most 36"):
        ex.latent(values=[0.0] * (d + 1))

    strip = ex.interpolate(seed_a=1, seed_b=2, steps=3, method="lerp")
    za, zb = ex.prior(1, 1)[0], ex.prior(1, 2)[0]
    assert za.shape == (d,)
    frames = decoded(torch.stack([za, (za + zb) / 2, zb]), 1)
    assert torch.allclose(expected(strip).float(), expected(make_grid(frames, nrow=3)).float(), atol=1)

    lik = ex.analyze(torch.rand(1, 6, 6), iw_samples=9).likelihood
    assert lik.estimator == model.likelihood_description(None) and "IWAE" not in lik.estimator


def test_a_shipped_model_shows_its_card_and_says_how_to_find_its_data():
    """pretrained:vae-mnist: the card's measurements on the page; its config names MNIST but no
    folder, so without data_dir there are no references, and the reason names --data-dir."""
    from genlab.app.ui import card_markdown
    from genlab.pretrained import card as shipped_card

    ex = Explorer.from_run("pretrained:vae-mnist", reference_examples=10)
    card = ex.card()
    want = shipped_card("vae-mnist")
    assert card["model_card"]["measured"] == want["measured"] and want["headline"] in card_markdown(card)
    reason = ex.analyze(torch.rand(1, 28, 28), iw_samples=2).outlier["reason"]
    assert "--data-dir" in reason and "download=True" not in reason


def test_data_dir_gives_a_shipped_model_outlier_scores_and_the_projection(shared_data):
    ex = Explorer.from_run("pretrained:vae-mnist", reference_examples=10, data_dir=shared_data)
    out = ex.analyze(torch.rand(1, 28, 28), iw_samples=2).outlier
    assert out["available"] and out["reference"] == "mnist test split, first 10 images"
    from genlab.explore import views

    assert "mnist test images" in views.projection_plot(ex, 20).axes[0].get_title()
