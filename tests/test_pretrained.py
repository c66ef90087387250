"""The pretrained models shipped in genlab/pretrained: they load, match their cards, sample, fit the size budget."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch

import genlab
from genlab import pretrained
from genlab.cli import main
from genlab.errors import GenlabError
from genlab.models.vae import VAE, VAEConfig

#: The models that must ship (one per family a user meets first); more may.
REQUIRED = {
    "vae-mnist",
    "vae-frey-face",
    "pixelcnn-mnist",
    "gated-pixelcnn-mnist",
    "dcgan-mnist",
    "gan-ring8",
    "ali-mnist",
    "cyclegan-mnist-invert",
    "wavenet-sines",
    "flow-matching-mnist",
}
MAX_BYTES = 25 * 1024 * 1024


def test_the_required_models_ship():
    assert REQUIRED <= set(pretrained.names())
    assert pretrained.names()[0] == pretrained.FEATURED  # genlab serve opens on it
    assert pretrained.names()[1:] == sorted(pretrained.names()[1:])


def test_package_data_is_under_25_mb():
    total = sum(f.stat().st_size for f in pretrained.ROOT.rglob("*") if f.is_file() and "__pycache__" not in f.parts)
    assert total < MAX_BYTES, f"{total / 2**20:.2f} MB of pretrained package data"


@pytest.mark.parametrize("name", pretrained.names())
def test_shipped_model_loads_matches_its_card_and_samples(name):
    folder = pretrained.path(name)
    card = pretrained.card(name)
    doc = json.loads((folder / "config.json").read_text())
    assert card["name"] == name and card["model"] == doc["model_name"]
    assert card["config_sha256"] == hashlib.sha256((folder / "config.json").read_bytes()).hexdigest()
    assert card["headline"] and card["training"]["cpu_minutes"] > 0 and card["measured"]
    assert (doc.get("data") or {}).get("data_dir") is None  # no path of the training machine ships
    model = genlab.load(f"pretrained:{name}")
    assert sum(p.numel() for p in model.parameters()) == card["parameters"]
    assert all(p.dtype == torch.float32 for p in model.parameters())  # float16 on disk, float32 in memory
    if "translate" in model.capabilities:
        x = torch.rand(2, model.config.image_shape[0] // 2, 28, 28)  # one domain's channels
        out = model.translate(x, "a2b")
        assert out.shape == x.shape and torch.isfinite(out).all() and 0 <= out.min() and out.max() <= 1
        return
    labels = torch.tensor([3, 7]) if model.config.num_classes else None
    with torch.inference_mode():
        x = model.sample(2, labels=labels, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(x).all()
    if model.data_kind == "points":
        assert x.shape == (2, 2) and x.abs().max() < 10  # ring8's modes lie on a circle of radius 2
    else:
        assert x.shape == (2, *model.config.image_shape) and 0 <= x.min() and x.max() <= 1
        assert x.std() > 0


def test_cards_give_the_numbers_their_kind_calls_for():
    for name in REQUIRED:
        card, model = pretrained.card(name), genlab.load(f"pretrained:{name}")
        m = card["measured"]
        if model.likelihood_kind != "none":
            assert m["likelihood"]["nll_nats"] > 0 and m["likelihood"]["bits_per_dim"] > 0
        if name == "gan-ring8":
            assert m["mode_coverage"]["num_modes"] == 8
        if name in ("dcgan-mnist", "ali-mnist", "vae-mnist"):
            assert m["sample_quality"]["fid"] >= 0 and "digits_present" in m["sample_quality"]["digit_coverage"]
        if name == "cyclegan-mnist-invert":
            assert 0 <= m["translation"]["a2b_class_kept"] <= 1


def test_unknown_name_lists_the_available_ones():
    with pytest.raises(pretrained.PretrainedError, match="available: .*vae-mnist") as e:
        genlab.load("pretrained:no-such-model")
    assert isinstance(e.value, GenlabError)


def test_float16_round_trip_keeps_the_model(tmp_path):
    torch.manual_seed(0)
    model = VAE(VAEConfig(image_shape=(1, 28, 28), latent_dim=4, channels=(8, 16), hidden_dim=32)).eval()
    model.save(tmp_path / "m")
    state = model.state_dict()
    pretrained.save_half(state, tmp_path / "m" / "model.safetensors")
    from genlab.io import load_tensors

    stored = load_tensors(tmp_path / "m" / "model.safetensors")
    for k, v in state.items():
        assert stored[k].dtype == (torch.float16 if v.is_floating_point() else v.dtype), k
    back = genlab.load(tmp_path / "m")
    for k, v in back.state_dict().items():
        assert v.dtype == state[k].dtype
        assert torch.allclose(v, state[k], rtol=1e-3, atol=1e-4), k  # float16 keeps ~3 significant digits
    z = torch.randn(5, 4)
    assert torch.allclose(back.decode(z), model.decode(z), atol=5e-3)


def test_float16_refuses_values_it_cannot_hold():
    with pytest.raises(GenlabError, match="'big' does not fit float16"):
        pretrained.half_tensors({"ok": torch.ones(2), "big": torch.tensor([1e6])})
    assert pretrained.half_tensors({"n": torch.tensor([7])})["n"].dtype == torch.int64


def test_cli_samples_a_pretrained_model_into_the_working_directory(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["sample", "pretrained:dcgan-mnist", "-n", "4"]) == 0
    assert (tmp_path / "pretrained-dcgan-mnist" / "samples.png").is_file()  # never into the package
    assert main(["manifold", "pretrained:vae-frey-face", "--n", "3", "--out", str(tmp_path / "m.png")]) == 0
    assert (tmp_path / "m.png").is_file()


def test_cli_lists_pretrained_models_and_refuses_bad_uses(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in REQUIRED:
        assert name in out
    assert main(["sample", "pretrained:nope"]) == 2
    assert "available: " in capsys.readouterr().err
    assert main(["resume", "pretrained:vae-mnist", "--steps", "10"]) == 2
    assert "no checkpoints to resume" in capsys.readouterr().err


def test_cli_lists_the_judges_verdicts_of_a_card(monkeypatch, capsys):
    card = json.loads(json.dumps(pretrained.card("dcgan-mnist")))
    card["judged"] = {
        "checks": [
            {
                "check": "samples",
                "n": 1000,
                "numbers": "91.0% confident; smallest digit 2: 5.1%",
                "target": ">= 85% confident, each digit >= 3%",
                "pass": True,
                "measured": {},
            }
        ]
    }
    monkeypatch.setattr(pretrained, "card", lambda name: card)
    assert main(["models"]) == 0
    assert (
        "judged (samples): 91.0% confident; smallest digit 2: 5.1% [meets >= 85% confident" in capsys.readouterr().out
    )


def test_serve_without_a_run_opens_every_shipped_model(monkeypatch):
    import genlab.app

    seen = {}
    monkeypatch.setattr(genlab.app, "serve", lambda runs, **kw: seen.update(runs=list(runs), **kw))
    assert main(["serve", "--port", "0"]) == 0
    assert seen["runs"] == [pretrained.path(n) for n in pretrained.names()] and seen["host"] == "127.0.0.1"
    assert main(["serve", "pretrained:gan-ring8"]) == 0
    assert seen["runs"] == [pretrained.path("gan-ring8")] and seen["data_dir"] is None
    assert main(["serve", "--data-dir", "somewhere", "pretrained:gan-ring8"]) == 0
    assert seen["data_dir"] == "somewhere"  # the test images for examples, outlier scores and the projection


def test_report_of_a_pretrained_model_goes_to_the_working_directory(tmp_path, monkeypatch):
    import genlab.report

    seen = {}
    monkeypatch.setattr(genlab.report, "write_report", lambda run, out, **kw: seen.update(run=run, out=out))
    monkeypatch.chdir(tmp_path)
    assert main(["report", "pretrained:vae-mnist"]) == 0
    assert seen == {
        "run": pretrained.path("vae-mnist"),
        "out": __import__("pathlib").Path("pretrained-vae-mnist/report.html"),
    }


def test_models_with_a_shipped_name_prints_its_card(capsys):
    card = pretrained.card("vq-transformer-mnist")
    for name in ("vq-transformer-mnist", "pretrained:vq-transformer-mnist"):
        assert main(["models", name]) == 0
        out = capsys.readouterr().out
        assert out.startswith(f"vq-transformer-mnist: {card['about']}")
        assert card["headline"] in out and f"{card['training']['cpu_minutes']} CPU-minutes" in out
        for check in card["judged"]["checks"]:
            assert check["numbers"] in out
    assert main(["models", "pixelcnn"]) == 0  # a registry name still prints its presets
    assert "mnist-cpu" in capsys.readouterr().out
    assert main(["models", "nope"]) == 2
    err = capsys.readouterr().err
    assert "registry models: ali" in err and "shipped models: vq-transformer-mnist" in err


def test_a_model_that_misses_a_target_says_why_in_its_card(capsys):
    """Every shipped model the judge fails carries a ``falls_short`` sentence (what it reached, what would
    close the gap), and ``genlab models NAME`` prints it."""
    for name in pretrained.names():
        card = pretrained.card(name)
        if any(c["pass"] is False for c in card.get("judged", {}).get("checks", [])):
            assert len(card.get("falls_short", "")) > 40, name
            assert main(["models", name]) == 0
            assert f"falls short: {card['falls_short']}" in capsys.readouterr().out


def test_rewriting_the_notes_changes_only_the_words(tmp_path, monkeypatch):
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    import train_pretrained as tp

    name = "gan-ring8"
    (tmp_path / name).mkdir()
    card = {**pretrained.card(name), "about": "old words", "falls_short": "old reason"}
    (tmp_path / name / "card.json").write_text(json.dumps(card))
    spec = tp.SPECS[name]
    monkeypatch.setitem(tp.SPECS, name, __import__("dataclasses").replace(spec, falls_short=""))
    assert tp.main(["--notes", "--only", name, "--out", str(tmp_path)]) == 0
    got = json.loads((tmp_path / name / "card.json").read_text())
    assert got["about"] == spec.about and "falls_short" not in got
    rest = [json.dumps({k: v for k, v in c.items() if k not in ("about", "falls_short")}) for c in (got, card)]
    assert rest[0] == rest[1]  # (json text: a card may hold NaN, which equals nothing)
