"""The command line end to end on a tiny run (8x8 digits, a few steps)."""

import json

import pytest
from PIL import Image

import genlab
from genlab.cli import main

TINY = [
    "--data",
    "digits",
    "--steps",
    "6",
    "--set",
    "train.batch_size=16",
    "--set",
    "train.checkpoint_every=3",
    "--set",
    "train.sample_every=1000",
    "--set",
    "train.log_every=2",
    "--set",
    "train.progress=false",
    "--set",
    "model.latent_dim=2",
]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    assert main(["train", "vae", "--out", str(out), "--seed", "3", *TINY]) == 0
    return out


def test_train_writes_a_loadable_run(run_dir):
    doc = json.loads((run_dir / "config.json").read_text())
    assert doc["model_name"] == "vae" and doc["model"]["latent_dim"] == 2 and doc["train"]["seed"] == 3
    assert doc["data"]["name"] == "digits" and doc["model"]["image_shape"] == [1, 8, 8]
    model = genlab.load(run_dir)
    assert model.sample(3).shape == (3, 1, 8, 8)


def test_sample_interpolate_manifold(run_dir, tmp_path):
    assert main(["sample", str(run_dir), "-n", "9", "--out", str(tmp_path / "s.png")]) == 0
    assert Image.open(tmp_path / "s.png").size[0] > 16
    assert main(["interpolate", str(run_dir), "--points", "3", "--frames", "4", "--out", str(tmp_path / "i.gif")]) == 0
    assert Image.open(tmp_path / "i.gif").n_frames == 12
    assert main(["manifold", str(run_dir), "--n", "4", "--out", str(tmp_path / "m.png"), "--scale", "1"]) == 0
    assert Image.open(tmp_path / "m.png").size == (32, 32)
    assert main(["reconstruct", str(run_dir), "-n", "4", "--out", str(tmp_path / "r.png"), "--scale", "1"]) == 0
    assert Image.open(tmp_path / "r.png").size == (
        2 + 4 * 10,
        2 + 2 * 10,
    )  # 2 rows of 2 (original, reconstruction) pairs
    assert main(["traverse", str(run_dir), "--steps", "5", "--out", str(tmp_path / "t.png"), "--scale", "1"]) == 0
    assert Image.open(tmp_path / "t.png").size == (2 + 5 * 10, 2 + 2 * 10)  # latent_dim=2 rows


def test_out_is_written_in_the_format_its_extension_names(run_dir, tmp_path, capsys):
    assert main(["sample", str(run_dir), "-n", "4", "--out", str(tmp_path / "s.jpg")]) == 0
    assert Image.open(tmp_path / "s.jpg").format == "JPEG"
    assert main(["manifold", str(run_dir), "--n", "3", "--out", str(tmp_path / "m")]) == 0
    assert Image.open(tmp_path / "m.png").format == "PNG"  # no extension: the command's own
    for argv, allowed in (
        (["sample", "-n", "4", "--out", "s.bmp"], ".png, .jpg, .jpeg"),
        (["interpolate", "--out", "i.png"], ".gif"),
        (["report", "--out", "r.txt"], ".html"),
    ):
        capsys.readouterr()
        assert main([argv[0], str(run_dir), *argv[1:-1], str(tmp_path / argv[-1])]) == 2
        err = capsys.readouterr().err.strip()
        assert f"writes {allowed} files" in err and "\n" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.png", "s.jpg"]


def test_a_translator_asked_for_16_samples_shows_16_images(tmp_path, monkeypatch):
    from genlab.viz import samples

    run = tmp_path / "cg"
    assert (
        main(
            [
                "train",
                "cyclegan",
                "--data",
                "unpaired:digits,digits+invert",
                "--steps",
                "1",
                "--out",
                str(run),
                "--set",
                "train.batch_size=8",
                "--set",
                "model.g_downsamplings=1",
                "--set",
                "model.d_downsamplings=1",
                "--set",
                "model.g_channels=4",
                "--set",
                "model.d_channels=4",
                "--set",
                "train.progress=false",
                "--no-report",
            ]
        )
        == 0
    )
    shown = []
    render = samples.render_samples
    monkeypatch.setattr(samples, "render_samples", lambda *a, **k: shown.append(render(*a, **k)) or shown[-1])
    assert main(["sample", str(run), "-n", "16", "--out", str(tmp_path / "s.png")]) == 0
    assert shown[0].samples.shape[0] == 8 and shown[0].samples.shape[1] == 2  # 8 (A, B) pairs of 1-channel images


def test_eval_prints_json_and_writes_reports(run_dir, capsys):
    assert main(["eval", str(run_dir), "--iw-samples", "5", "--max-examples", "20", "--samples", "50"]) == 0
    out = capsys.readouterr().out
    result = json.loads(out[out.index("{") :])
    lik = result["likelihood"]
    assert lik["iw_samples"] == 5 and lik["num_examples"] == 20 and lik["nll_nats"] > 0
    assert abs(lik["bits_per_dim"] - lik["nll_nats"] / (64 * 0.6931471805599453)) < 1e-6
    assert "dynamic binarization" in lik["preprocessing"]
    # no shipped feature network takes 8x8 images: quality is skipped with the reason, the likelihood stays
    assert result["quality"] is None and "8, 8" in result["settings"]["quality_skipped"]
    assert json.loads((run_dir / "eval.json").read_text())["likelihood"]["iw_samples"] == 5
    assert "|" in (run_dir / "eval.md").read_text()


def test_ood_reports_auroc_per_detector(run_dir, capsys, tmp_path):
    assert (
        main(
            [
                "ood",
                str(run_dir),
                "--out",
                "noise",
                "--out",
                "inverted",
                "--max-examples",
                "30",
                "--iw-samples",
                "2",
                "--report-dir",
                str(tmp_path),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    result = json.loads(out[out.index("{") :])
    for name in ("noise", "inverted"):
        for method in ("likelihood", "typicality", "complexity"):
            assert 0.0 <= result["results"][name][method]["auroc"] <= 1.0
    assert (tmp_path / "ood.json").is_file() and (tmp_path / "roc-noise.png").is_file()


def test_resume_continues_to_the_total(run_dir):
    assert main(["resume", str(run_dir), "--steps", "9"]) == 0
    doc = json.loads((run_dir / "config.json").read_text())
    assert doc["train"]["steps"] == 9
    steps = [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert max(steps) <= 9


@pytest.mark.parametrize(
    "argv, words",
    [
        (["train", "nope"], ["unknown model", "vae"]),
        (["train", "vae", "--set", "model.nope=1"], ["unknown key", "latent_dim"]),
        (["train", "vae", "--set", "latent_dim=1"], ["section"]),
        (["train", "vae", "--data", "nope"], ["unknown data set", "mnist-5k"]),
        (["sample", "/nonexistent/run"], ["not a directory"]),
    ],
)
def test_bad_input_is_a_clear_error(argv, words, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    for w in words:
        assert w in err


def test_loading_a_corrupt_run_is_a_clear_error(run_dir, tmp_path, capsys):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text((run_dir / "config.json").read_text())
    (bad / "model.safetensors").write_bytes(b"garbage")
    assert main(["sample", str(bad)]) == 2
    assert "safetensors" in capsys.readouterr().err


def test_gan_on_toy_points_trains_and_plots(tmp_path):
    out = tmp_path / "ring"
    assert (
        main(
            [
                "train",
                "gan",
                "--data",
                "ring8",
                "--steps",
                "3",
                "--out",
                str(out),
                "--set",
                "train.progress=false",
                "--set",
                "train.batch_size=32",
            ]
        )
        == 0
    )
    assert genlab.load(out).sample(5).shape == (5, 2)
    doc = json.loads((out / "config.json").read_text())
    assert (
        doc["model"]["penalty"] == "r1" and doc["train"]["batch_size"] == 32
    )  # the point preset, then the user's flags
    assert main(["sample", str(out), "--out", str(tmp_path / "p.png")]) == 0
    assert Image.open(tmp_path / "p.png").size[0] >= 256


def test_wavenet_on_sines_trains_and_writes_wav(tmp_path):
    import wave

    out = tmp_path / "wn"
    assert (
        main(
            [
                "train",
                "wavenet",
                "--data",
                "sines",
                "--steps",
                "2",
                "--out",
                str(out),
                "--set",
                "train.progress=false",
                "--set",
                "train.batch_size=8",
                "--set",
                "model.residual_channels=8",
                "--set",
                "model.skip_channels=8",
                "--set",
                "model.dilations=[1,2]",
                "--set",
                "model.stacks=1",
            ]
        )
        == 0
    )
    assert main(["sample", str(out), "-n", "2", "--out", str(tmp_path / "s.wav")]) == 0
    with wave.open(str(tmp_path / "s.wav")) as w:
        assert w.getframerate() == 8000 and w.getnframes() >= 2 * 256
    assert Image.open(tmp_path / "s.png").format == "PNG"  # the waveforms beside the sound
    assert (
        main(["sample", str(out), "-n", "2", "--out", str(tmp_path / "samples")]) == 0
    )  # no extension: the sound and its picture
    assert sorted(p.name for p in tmp_path.glob("samples*")) == ["samples.png", "samples.wav"]


def test_pixelcnn_completes_an_image(tmp_path):
    import torch

    from genlab.viz.images import save_png

    out = tmp_path / "pc"
    assert (
        main(
            [
                "train",
                "pixelcnn",
                "--data",
                "digits",
                "--steps",
                "2",
                "--out",
                str(out),
                "--set",
                "train.progress=false",
                "--set",
                "train.batch_size=8",
                "--set",
                "model.hidden_channels=8",
                "--set",
                "model.num_blocks=1",
            ]
        )
        == 0
    )
    save_png(torch.rand(1, 8, 8), tmp_path / "x.png")
    assert (
        main(
            [
                "complete",
                str(out),
                "--image",
                str(tmp_path / "x.png"),
                "--rows",
                "4",
                "-n",
                "3",
                "--out",
                str(tmp_path / "c.png"),
                "--scale",
                "1",
            ]
        )
        == 0
    )
    assert Image.open(tmp_path / "c.png").size[0] > 8
    # without --out the completion goes into the run folder (the completed batch must not be taken for that folder)
    assert (
        main(["complete", str(out), "--image", str(tmp_path / "x.png"), "--rows", "4", "-n", "2", "--scale", "1"]) == 0
    )
    assert Image.open(out / "completion.png").size[0] > 8


def test_models_and_datasets_list_every_choice(capsys):
    from genlab import data, registry

    assert main(["models"]) == 0 and main(["datasets"]) == 0
    out = capsys.readouterr().out
    for name in [*registry.MODELS, *data.DATASETS]:
        assert f"\n{name} " in "\n" + out
