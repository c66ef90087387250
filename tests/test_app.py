"""The explorer's engine (:class:`genlab.app.Explorer`): tiny models saved in tmp_path,
each view called with the JSON-ready body the page sends and its answer round-tripped
through strict JSON. Every image is checked against the direct library call it stands
for, pixel for pixel. The Gradio page itself is tested in test_app_browser.py."""

from __future__ import annotations

import base64
import io
import json
import socket
import threading
import time
from contextlib import contextmanager

import numpy as np
import pytest
import torch
from PIL import Image

import genlab
from genlab import data, ood, registry
from genlab.app import Explorer, RequestError, capabilities
from genlab.app.explorer import domain_shape
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


@contextmanager
def serving(explorer):
    """The explorer itself: views are called in process (the former HTTP layer is Gradio's now)."""
    yield explorer


@pytest.fixture(scope="module")
def vae_url(vae_run):
    yield Explorer.from_run(vae_run)


VIEWS = {"card", "samples", "latent", "interpolate", "manifold", "analyze", "translate"}


def request(explorer, path, body=None):
    """(status, strict-JSON answer) of one view: 200, or 400 with {"error"} for a RequestError
    (GenlabError / ValueError: bad input said by the explorer or the model)."""
    name = path.rsplit("/", 1)[-1]
    if name not in VIEWS:
        return 400, {"error": f"unknown view {path!r}"}
    try:
        doc = getattr(explorer, name)(body or {})
    except (RequestError, ValueError) as e:
        return 400, {"error": str(e)}
    return 200, json.loads(json.dumps(doc, allow_nan=False))


def ok(url, path, body=None):
    status, doc = request(url, path, body)
    assert status == 200, doc
    return doc


def png(b64: str) -> Image.Image:
    raw = base64.b64decode(b64)
    assert raw[:8] == b"\x89PNG\r\n\x1a\n"
    img = Image.open(io.BytesIO(raw))
    img.load()
    return img


def pixels(b64: str) -> torch.Tensor:
    """A base64 PNG -> uint8 (C, H, W)."""
    img = png(b64)
    arr = torch.from_numpy(np.asarray(img).copy())
    return arr.unsqueeze(0) if arr.dim() == 2 else arr.permute(2, 0, 1)


def expected(image: torch.Tensor) -> torch.Tensor:
    """What a (C, H, W) image in [0, 1] looks like after the PNG round trip."""
    return pixels(base64.b64encode(_png_bytes(image)).decode())


def _png_bytes(image: torch.Tensor) -> bytes:
    buf = io.BytesIO()
    to_pil(image).save(buf, format="PNG")
    return buf.getvalue()


def data_url(image: torch.Tensor) -> str:
    return "data:image/png;base64," + base64.b64encode(_png_bytes(image)).decode()


def digits_test(n=4):
    return data.load("digits", "test").images[:n].float() / 255


# ----------------------------------------------------------------------------- the card and the page


def test_card_names_the_model_its_capabilities_and_the_training_log(vae_url, vae_run):
    card = ok(vae_url, "/api/card")
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


def test_answers_are_strict_json_even_with_non_finite_metrics(tmp_path):
    model = build("pixelcnn", image_shape=(1, 5, 5), hidden_channels=8, num_blocks=1, output_channels=8)
    model.save(tmp_path)
    lines = [
        {"step": s, "nll/loss": v, "lr": lr}
        for s, v, lr in ((1, 3.0, 0.1), (2, float("nan"), 0.1), (3, 2.0, float("inf")))
    ]
    (tmp_path / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in lines) + '\n{"step": 4, "nll/lo')
    raw = json.dumps(Explorer.from_run(tmp_path).card(), allow_nan=False)  # raises on NaN / inf
    card = json.loads(raw, parse_constant=lambda c: pytest.fail(f"{c} in the answer"))
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


def test_samples_are_the_models_samples_for_the_seed(vae_url, vae_run):
    model = genlab.load(vae_run)
    doc = ok(vae_url, "/api/samples", {"n": 9, "seed": 7})
    assert png(doc["image"]).size == (2 + 3 * 10, 2 + 3 * 10) and doc["nrow"] == 3
    x = model.sample(9, generator=torch.Generator().manual_seed(7))
    assert torch.equal(pixels(doc["image"]), expected(make_grid(x, nrow=3)))
    assert ok(vae_url, "/api/samples", {"n": 9, "seed": 7})["image"] == doc["image"]
    assert ok(vae_url, "/api/samples", {"n": 9, "seed": 8})["image"] != doc["image"]


def test_latent_endpoint_returns_exactly_decode_of_z(vae_url, vae_run):
    model = genlab.load(vae_run)
    doc = ok(vae_url, "/api/latent", {"seed": 5})
    z = torch.tensor(doc["z"])
    assert torch.equal(
        z, torch.randn(1, 2, generator=torch.Generator().manual_seed(5))[0]
    )  # the prior draw of the seed
    assert png(doc["image"]).size == (8, 8)
    assert torch.equal(pixels(doc["image"]), expected(model.decode(z[None])[0]))
    # the seed's code equals what sample() decodes for that seed
    assert torch.equal(pixels(doc["image"]), expected(model.sample(1, generator=torch.Generator().manual_seed(5))[0]))
    moved = ok(vae_url, "/api/latent", {"seed": 5, "values": [1.25]})
    assert moved["z"] == [1.25, doc["z"][1]]
    assert torch.equal(pixels(moved["image"]), expected(model.decode(torch.tensor([[1.25, doc["z"][1]]]))[0]))
    given = ok(vae_url, "/api/latent", {"z": [-0.3, 2.0]})
    assert torch.equal(pixels(given["image"]), expected(model.decode(torch.tensor([[-0.3, 2.0]]))[0]))


def test_interpolation_strip_and_manifold(vae_url, vae_run):
    model = genlab.load(vae_run)
    doc = ok(vae_url, "/api/interpolate", {"seed_a": 1, "seed_b": 2, "steps": 3, "method": "lerp"})
    assert png(doc["image"]).size == (2 + 3 * 10, 12)
    za, zb = torch.tensor(doc["z_a"]), torch.tensor(doc["z_b"])
    strip = make_grid(model.decode(torch.stack([za, (za + zb) / 2, zb])), nrow=3)
    assert torch.equal(pixels(doc["image"]), expected(strip))
    slerp = ok(vae_url, "/api/interpolate", {"seed_a": 1, "seed_b": 2, "steps": 3})
    frames = latent_viz.z_interpolation_frames(model, za, zb, 3, "slerp")
    assert torch.equal(pixels(slerp["image"]), expected(make_grid(torch.stack(frames), nrow=3)))
    man = ok(vae_url, "/api/manifold", {"n": 4})
    assert png(man["image"]).size == (32, 32)
    assert torch.equal(pixels(man["image"]), expected(latent_viz.manifold_grid(model, n=4)))


def test_conditional_gan_latent_uses_the_label_and_the_generators_prior():
    model = build("gan", image_shape=(1, 8, 8), latent_dim=4, hidden_dim=16, hidden_layers=1, num_classes=3)
    with serving(Explorer(model)) as url:
        doc = ok(url, "/api/latent", {"seed": 3, "label": 2})
        same = model.sample(1, generator=torch.Generator().manual_seed(3), labels=torch.tensor([2]))
        assert torch.equal(pixels(doc["image"]), expected(same[0]))
        other = ok(url, "/api/latent", {"seed": 3, "label": 0})
        assert other["z"] == doc["z"] and other["image"] != doc["image"]
        grid = ok(url, "/api/samples", {"n": 4, "seed": 0})  # default labels 0, 1, 2, 0
        x = model.sample(4, generator=torch.Generator().manual_seed(0), labels=torch.tensor([0, 1, 2, 0]))
        assert grid["labels"] == [0, 1, 2, 0] and torch.equal(pixels(grid["image"]), expected(make_grid(x, nrow=2)))
        assert ok(url, "/api/samples", {"n": 3, "labels": [1]})["labels"] == [1, 1, 1]
        assert png(ok(url, "/api/interpolate", {"steps": 4, "label": 1})["image"]).size == (42, 12)


def test_point_and_sequence_models_get_samples():
    points = build("gan", image_shape=(2,), latent_dim=2, hidden_dim=8, hidden_layers=1)
    with serving(Explorer(points)) as url:
        doc = ok(url, "/api/samples", {"n": 500, "seed": 0})
        assert png(doc["image"]).size == (384, 384)
        assert ok(url, "/api/samples", {"n": 500, "seed": 0})["image"] == doc["image"]
    wave = build("wavenet", image_shape=(1, 1, 12), residual_channels=4, skip_channels=4, dilations=(1, 2), stacks=1)
    with serving(Explorer(wave)) as url:
        doc = ok(url, "/api/samples", {"n": 2, "seed": 0})
        assert png(doc["image"]).size == (512, 2 * 64)
        x = wave.sample(2, generator=torch.Generator().manual_seed(0))
        buf = io.BytesIO()
        figure_image(waveform_figure(x)).save(buf, format="PNG")
        assert doc["image"] == base64.b64encode(buf.getvalue()).decode()
        assert request(url, "/api/latent", {})[0] == 400


# ----------------------------------------------------------------------------- your image


def test_analyze_gives_log_prob_reconstruction_and_outlier_scores(vae_url, vae_run):
    model = genlab.load(vae_run)
    x01 = digits_test(1)
    doc = ok(vae_url, "/api/analyze", {"image": data_url(x01[0]), "seed": 4, "iw_samples": 7})
    g = torch.Generator().manual_seed(4)
    x = model.prepare(x01, generator=g)
    lp = model.log_prob(x, iw_samples=7, generator=g)
    lik = doc["likelihood"]
    assert lik["log_prob_nats"] == float(lp[0]) and lik["nll_nats"] == -float(lp[0]) and lik["offset_nats"] == 0
    assert lik["bits_per_dim"] == pytest.approx(-float(lp[0]) / (64 * 0.6931471805599453), rel=1e-12)
    assert "k = 7" in lik["estimator"]
    assert torch.equal(pixels(doc["input"]), expected(x01[0]))
    assert torch.equal(pixels(doc["model_input"]), expected(x[0]))  # the binarized draw
    assert torch.equal(pixels(doc["reconstruction"]), expected(model.decode(model.encode(x))[0]))
    # outlier scores: percentiles among the run's held-out digits, as genlab.ood scores them
    # (with genlab.ood's own importance samples, k = 10, for the upload and the reference alike)
    out = doc["outlier"]
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
    again = ok(vae_url, "/api/analyze", {"image": data_url(x01[0]), "seed": 4, "iw_samples": 7})
    assert again == doc  # determinism per seed
    assert ok(vae_url, "/api/analyze", {"image": data_url(x01[0]), "seed": 5, "iw_samples": 7})["likelihood"] != lik


def test_analyze_fits_other_sizes_only_when_asked(vae_url, vae_run):
    from genlab.data.images import fit_image, to_array

    big = torch.rand(3, 20, 12)  # an RGB image of another size and aspect ratio
    status, doc = request(vae_url, "/api/analyze", {"image": data_url(big)})
    assert status == 400 and "12x20" in doc["error"] and "8x8" in doc["error"] and "fit" in doc["error"]
    doc = ok(vae_url, "/api/analyze", {"image": data_url(big), "fit": True, "iw_samples": 2})
    want = to_array(fit_image(to_pil(big).convert("L"), (8, 8)), 1)
    assert torch.equal(pixels(doc["input"]), torch.from_numpy(want.copy()))


def test_exact_likelihood_models_and_labels():
    pix = build("pixelcnn", image_shape=(1, 5, 5), hidden_channels=8, num_blocks=1, output_channels=8)
    x01 = torch.rand(1, 1, 5, 5)
    with serving(Explorer(pix)) as url:
        doc = ok(url, "/api/analyze", {"image": data_url(x01[0]), "seed": 2})
        xq = torch.round(x01 * 255) / 255  # what the PNG carries
        x = pix.prepare(xq, generator=torch.Generator().manual_seed(2))
        assert doc["likelihood"]["log_prob_nats"] == float(pix.log_prob(x).detach()[0])
        assert "reconstruction" not in doc and doc["likelihood"]["estimator"] == pix.likelihood_description()
        assert doc["outlier"] == {
            "available": False,
            "reason": "no reference images: the run's config.json names no data set",
        }
        assert (
            request(url, "/api/analyze", {"image": data_url(x01[0]), "iw_samples": 5})[0] == 200
        )  # ignored: exact model
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
    with serving(Explorer(gated)) as url:
        doc = ok(url, "/api/analyze", {"image": data_url(rgb), "label": 2})
        assert doc["likelihood"]["log_prob_nats"] == float(
            gated.log_prob(rgb[None], labels=torch.tensor([2])).detach()[0]
        )
        assert doc["likelihood"]["conditional_on_label"] == 2 and "outlier" not in doc
        status, err = request(url, "/api/analyze", {"image": data_url(rgb), "label": 3})
        assert status == 400 and "'label' must be in 0..2, got 3" in err["error"]


def with_data(model, folder, name="digits"):
    """``model`` saved in ``folder`` as a run of the data set ``name`` (the outlier reference)."""
    model.save(folder)
    doc = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**doc, "data": {"name": name}}))
    return folder


def test_ddpm_scores_an_upload_with_its_cheap_estimator_and_fewer_reference_images(tmp_path, monkeypatch):
    """DDPM's bound over all T = 1000 terms takes about 15 s an image at MNIST size: the
    explorer uses its unbiased estimate from 50 stratified terms and says so, and cuts the
    reference images to what the estimator scores in REFERENCE_SECONDS."""
    from genlab.app import explorer as engine

    model = build("ddpm", **{**TINY["ddpm"], "timesteps": 1000})
    ex = Explorer.from_run(with_data(model, tmp_path))
    calls = []
    ex.model.net.register_forward_hook(lambda *args: calls.append(1))
    monkeypatch.setattr(engine, "REFERENCE_SECONDS", 0.0)
    doc = ex.analyze({"image": data_url(torch.rand(1, 6, 6)), "fit": True})
    lik, out = doc["likelihood"], doc["outlier"]
    assert "an unbiased stratified estimate from k = 50 of its T = 1000 terms" in lik["estimator"]
    assert out["estimator"] == lik["estimator"] and out["reference"] == "digits test split, first 10 images"
    assert len(calls) < 1000  # 50 each for the upload's NLL, its outlier score, the 10 references in one batch, and
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
    img = torch.round(torch.rand(1, 4, 6) * 255) / 255
    with serving(Explorer(model)) as url:
        a2b = ok(url, "/api/translate", {"image": data_url(img), "direction": "a2b"})
        assert png(a2b["image"]).size == (6, 4) and torch.equal(pixels(a2b["image"]), expected(img.flip(-1)))
        b2a = ok(url, "/api/translate", {"image": data_url(img), "direction": "b2a"})
        assert torch.equal(pixels(b2a["image"]), expected(img.flip(-2)))
        status, err = request(url, "/api/translate", {"image": data_url(img), "direction": "sideways"})
        assert status == 400 and "'a2b' or 'b2a'" in err["error"]


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
    with serving(Explorer(model)) as url:
        card = ok(url, "/api/card")
        assert card["capabilities"]["translate"] and not card["capabilities"]["analyze"]
        doc = ok(url, "/api/samples", {"n": 4, "seed": 1})
        x = model.sample(4, generator=torch.Generator().manual_seed(1))
        assert torch.equal(
            pixels(doc["image"]), expected(make_grid(x.reshape(4 * c // cd, cd, h, w), nrow=doc["nrow"]))
        )
        for direction in ("a2b", "b2a"):
            out = ok(url, "/api/translate", {"image": data_url(img), "direction": direction})
            assert torch.equal(pixels(out["image"]), expected(model.translate(img[None], direction)[0]))


@pytest.mark.parametrize("name", sorted(registry.MODELS))
def test_every_registered_model_answers_what_its_capabilities_promise(name):
    """Capabilities come from methods: each view a model's card lists must answer with
    PNGs of the right size, and the others must refuse with 400."""
    model = build(name, **TINY[name])
    caps = capabilities(model)
    shape = tuple(model.config.image_shape)
    with serving(Explorer(model)) as url:
        assert ok(url, "/api/card")["capabilities"] == caps
        label = {"label": 1} if caps["num_classes"] else {}
        assert ok(url, "/api/samples", {"n": 2, **label})["image"]
        image = {
            "image": data_url(torch.rand(*domain_shape(model)) if len(shape) == 3 else torch.rand(1, 4, 4)),
            "fit": True,
        }
        for path, body, cap, size in [
            ("/api/latent", {**label}, "latent", shape[:0:-1]),
            ("/api/interpolate", {"steps": 3, **label}, "latent", None),
            (
                "/api/manifold",
                {"n": 2, **label},
                "manifold",
                (2 * shape[-1], 2 * shape[-2]) if len(shape) == 3 else None,
            ),
            ("/api/analyze", {**image, "iw_samples": 2, **label}, "analyze", None),
        ]:
            status, doc = request(url, path, body)
            assert status == (200 if caps[cap] else 400), (path, doc)
            if caps[cap] and size is not None:
                assert png(doc["image"]).size == tuple(size)
            if path == "/api/analyze" and caps[cap]:
                assert ("likelihood" in doc) == caps["log_prob"] and ("reconstruction" in doc) == caps["reconstruct"]
                if caps["reconstruct"]:
                    assert png(doc["reconstruction"]).size == shape[:0:-1]


# ----------------------------------------------------------------------------- bad requests


@pytest.mark.parametrize(
    "path, body, message",
    [
        ("/api/samples", {"n": 65}, "'n' must be in 1..64, got 65"),
        ("/api/samples", {"n": "9"}, "'n' must be an integer"),
        ("/api/samples", {"seed": -1}, "'seed' must be in 0.."),
        ("/api/samples", {"labels": [1]}, "this model is unconditional"),
        ("/api/latent", {"values": [0, 0, 0]}, "'values' must be a list of at most 2 numbers"),
        ("/api/latent", {"z": [0.5]}, "'z' must be a list of exactly 2 numbers"),
        ("/api/latent", {"values": [1e9]}, "finite numbers within +-100"),
        ("/api/interpolate", {"method": "cubic"}, "'method' must be 'slerp' or 'lerp'"),
        ("/api/interpolate", {"steps": 1}, "'steps' must be in 2..32"),
        ("/api/manifold", {"dims": [0, 0]}, "two different latent dimensions in 0..1"),
        ("/api/manifold", {"n": 31}, "'n' must be in 2..30"),
        ("/api/analyze", {}, "'image' must be a PNG file as base64 text"),
        ("/api/analyze", {"image": "not base64!"}, "not valid base64"),
        (
            "/api/analyze",
            {"image": base64.b64encode(b"GIF89a but not really").decode()},
            "could not be decoded as an image",
        ),
        ("/api/analyze", {"image": data_url(torch.rand(1, 8, 8)), "iw_samples": 0}, "'iw_samples' must be in 1..1000"),
        ("/api/translate", {"image": data_url(torch.rand(1, 8, 8))}, "cannot translate images"),
    ],
)
def test_bad_requests_get_400_and_a_message(vae_url, path, body, message):
    status, doc = request(vae_url, path, body)
    assert status == 400 and message in doc["error"], doc


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
    with serving(explorer) as url:
        results = {}
        threads = [
            threading.Thread(
                target=lambda s=s: results.__setitem__(s, ok(url, "/api/samples", {"n": 4, "seed": s})["image"])
            )
            for s in range(6)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert most[0] == 1  # never two model calls at once
        assert all(results[s] == ok(url, "/api/samples", {"n": 4, "seed": s})["image"] for s in range(6))
        ok(url, "/api/analyze", {"image": data_url(digits_test(1)[0]), "iw_samples": 2})
        ok(url, "/api/card")
    assert snapshot() == before


# ----------------------------------------------------------------------------- the command


def test_serve_refuses_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert main(["serve", str(tmp_path)]) == 2
    assert "config.json" in capsys.readouterr().err
    assert main(["serve", str(tmp_path / "missing")]) == 2
    assert "not a directory" in capsys.readouterr().err


def test_serve_reports_a_busy_port(vae_run, capsys):
    pytest.importorskip("gradio")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        assert main(["serve", str(vae_run), "--port", str(port)]) == 2
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err


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

    doc = ex.latent({"seed": 3})
    z = torch.tensor(doc["z"])
    assert z.shape == (d,) and torch.equal(z, model.latent(1, generator=torch.Generator().manual_seed(3)).reshape(d))
    assert torch.equal(pixels(doc["image"]), expected(decoded(z[None], 3)[0]))
    moved = ex.latent({"seed": 3, "values": [0.5, -1.0]})
    want = torch.cat([torch.tensor([0.5, -1.0]), z[2:]])
    assert moved["z"] == want.tolist() and torch.equal(pixels(moved["image"]), expected(decoded(want[None], 3)[0]))
    with pytest.raises(RequestError, match="at most 36"):
        ex.latent({"values": [0.0] * (d + 1)})

    strip = ex.interpolate({"seed_a": 1, "seed_b": 2, "steps": 3, "method": "lerp"})
    za, zb = torch.tensor(strip["z_a"]), torch.tensor(strip["z_b"])
    assert za.shape == (d,)
    frames = decoded(torch.stack([za, (za + zb) / 2, zb]), 1)
    assert torch.allclose(pixels(strip["image"]).float(), expected(make_grid(frames, nrow=3)).float(), atol=1)

    lik = ex.analyze({"image": data_url(torch.rand(1, 6, 6)), "iw_samples": 9})["likelihood"]
    assert lik["estimator"] == model.likelihood_description(None) and "IWAE" not in lik["estimator"]


def test_a_shipped_model_shows_its_card_and_says_how_to_find_its_data():
    """pretrained:vae-mnist: the card's measurements on the page; its config names MNIST but no
    folder, so without data_dir there are no references, and the reason names --data-dir."""
    from genlab.app.ui import card_markdown
    from genlab.pretrained import card as shipped_card

    ex = Explorer.from_run("pretrained:vae-mnist", reference_examples=10)
    card = ex.card()
    want = shipped_card("vae-mnist")
    assert card["model_card"]["measured"] == want["measured"] and want["headline"] in card_markdown(card)
    reason = ex.analyze({"image": data_url(torch.rand(1, 28, 28)), "iw_samples": 2})["outlier"]["reason"]
    assert "--data-dir" in reason and "download=True" not in reason


def test_data_dir_gives_a_shipped_model_outlier_scores_and_the_projection(shared_data):
    ex = Explorer.from_run("pretrained:vae-mnist", reference_examples=10, data_dir=shared_data)
    out = ex.analyze({"image": data_url(torch.rand(1, 28, 28)), "iw_samples": 2})["outlier"]
    assert out["available"] and out["reference"] == "mnist test split, first 10 images"
    from genlab.app import views

    assert "mnist test images" in views.projection_plot(ex, 20).axes[0].get_title()
