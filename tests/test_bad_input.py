"""Hostile input to the command line and the loaders: every bad input is one line on stderr,
a non-zero exit and nothing written; transparent images, NaN arrays, missing folders and
non-square photos are handled or explained; every option an error message suggests exists."""

from __future__ import annotations

import ast
import dataclasses
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import genlab
from genlab import data, registry
from genlab.cli import build_parser, main
from genlab.config import DataConfig, TrainConfig
from genlab.data.errors import DataError
from genlab.errors import GenlabError

SRC = Path(genlab.__file__).resolve().parent
QUIET = ["--set", "train.progress=false", "--set", "train.sample_every=1000", "--set", "train.log_every=0"]


def fails_in_one_line(argv, capsys, *words) -> str:
    """Run the CLI; it must exit non-zero (argparse exits 2 itself) with one line on stderr holding ``words``."""
    capsys.readouterr()  # what earlier commands printed is not this one's
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    err = capsys.readouterr().err
    assert code not in (0, None), argv
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    for w in words:
        assert w in lines[0], (w, lines[0])
    assert "Traceback" not in err
    return lines[0]


def tree(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bad") / "vae"
    assert (
        main(
            [
                "train",
                "vae",
                "--data",
                "digits",
                "--steps",
                "2",
                "--out",
                str(out),
                "--set",
                "train.batch_size=16",
                "--set",
                "model.latent_dim=2",
                *QUIET,
            ]
        )
        == 0
    )
    return out


@pytest.fixture(scope="module")
def pixelcnn_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bad") / "pc"
    assert (
        main(
            [
                "train",
                "pixelcnn",
                "--data",
                "digits",
                "--steps",
                "1",
                "--out",
                str(out),
                "--set",
                "train.batch_size=8",
                "--set",
                "model.hidden_channels=8",
                "--set",
                "model.num_blocks=1",
                *QUIET,
            ]
        )
        == 0
    )
    return out


@pytest.fixture(scope="module")
def ring_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bad") / "ring"
    assert (
        main(
            [
                "train",
                "gan",
                "--data",
                "ring8",
                "--steps",
                "2",
                "--out",
                str(out),
                "--set",
                "train.batch_size=32",
                *QUIET,
            ]
        )
        == 0
    )
    return out


@pytest.fixture
def not_an_image(tmp_path) -> Path:
    p = tmp_path / "notes.png"
    p.write_text("this is a text file with an image's name\n")
    return p


# --------------------------------------------------------------------------- the command line


@pytest.mark.parametrize("n", ["0", "-3", "two"])
def test_sample_count_must_be_positive(vae_run, capsys, n):
    before = tree(vae_run)
    fails_in_one_line(["sample", str(vae_run), "-n", n], capsys, "-n")
    assert tree(vae_run) == before


@pytest.mark.parametrize(
    "argv, allowed",
    [
        (["sample", "-n", "4", "--scale", "10000"], "--scale: must be 1 to 16"),
        (["sample", "-n", "100000"], "-n: must be 1 to 10000"),
        (["manifold", "--n", "100000"], "--n: must be 2 to 100"),
        (["interpolate", "--frames", "100000"], "--frames: must be 1 to 256"),
        (["interpolate", "--points", "1"], "--points: must be 2 to 64"),
        (["traverse", "--dims", "1000"], "--dims: must be 1 to 100"),
        (["traverse", "--steps", "1000"], "--steps: must be 1 to 64"),
        (["reconstruct", "-n", "100000"], "-n: must be 1 to 1024"),
        (["eval", "--samples", "-1"], "--samples: must be 0 to 50000"),
        (["eval", "--iw-samples", "1000000"], "--iw-samples: must be 1 to 10000"),
        (["sample", "--rate", "10"], "--rate: must be 1000 to 192000"),
    ],
)
def test_size_options_name_their_allowed_range(vae_run, capsys, argv, allowed):
    before = tree(vae_run)
    fails_in_one_line([argv[0], str(vae_run), *argv[1:]], capsys, allowed)
    assert tree(vae_run) == before


@pytest.mark.slow
def test_pictures_over_64_megapixels_are_refused_before_they_are_drawn(vae_run, tmp_path, capsys, monkeypatch):
    from genlab.viz import images

    before = tree(vae_run)
    drawn = []
    monkeypatch.setattr(type(genlab.load(vae_run)), "sample", lambda *a, **k: drawn.append(1))
    line = fails_in_one_line(
        ["sample", str(vae_run), "-n", "10000", "--scale", "16", "--out", str(tmp_path / "s.png")],
        capsys,
        "16032x16032 pixels",
        "limit of 64 megapixels",
    )
    assert "--scale" in line and not drawn and not (tmp_path / "s.png").exists()
    fails_in_one_line(
        ["manifold", str(vae_run), "--n", "100", "--scale", "16", "--out", str(tmp_path / "m.png")],
        capsys,
        "limit of 64 megapixels",
    )
    fails_in_one_line(
        [
            "interpolate",
            str(vae_run),
            "--points",
            "64",
            "--frames",
            "256",
            "--scale",
            "16",
            "--out",
            str(tmp_path / "i.gif"),
        ],
        capsys,
        "in 16384 frames",
    )
    assert tree(vae_run) == before and not list(tmp_path.iterdir())
    with pytest.raises(GenlabError, match="81 megapixels"):
        images.to_pil(torch.zeros(1, 1000, 1000), scale=9)
    with pytest.raises(GenlabError, match="104x1020002 pixels"):
        images.make_grid(torch.zeros(1, 1, 1, 1).expand(10000, 1, 100, 100), nrow=1)


@pytest.mark.parametrize("port", ["70000", "-1", "http"])
def test_serve_port_out_of_range(vae_run, capsys, port):
    fails_in_one_line(["serve", str(vae_run), "--port", port], capsys, "--port")


@pytest.mark.slow
def test_what_a_model_cannot_do_is_one_line(vae_run, pixelcnn_run, ring_run, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # where a pretrained model's outputs would go
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "d.png")
    runs = {run: tree(run) for run in (vae_run, pixelcnn_run, ring_run)}
    for argv, words in [
        (["manifold", pixelcnn_run], "PixelCNN has no latent space"),
        (["manifold", ring_run], "GAN makes points, not images"),
        (["traverse", pixelcnn_run], "PixelCNN has no encoder"),
        (["complete", vae_run, "--image", "d.png", "--rows", "14"], "VAE does not complete images"),
        (["ood", "pretrained:dcgan-mnist", "--in", "mnist-5k", "--out", "noise"], "DCGAN has no likelihood"),
        (["eval", ring_run], "nothing to evaluate: GAN has no likelihood, and the sample-quality metrics"),
        (
            ["eval", "pretrained:dcgan-mnist", "--samples", "0"],
            "nothing to evaluate: DCGAN has no likelihood and no samples",
        ),
        (
            ["train", "vae", "--data", "ring8", "--steps", "2", "--out", "vr"],
            "vae models images, but the data set 'ring8' holds points",
        ),
    ]:
        fails_in_one_line([str(a) for a in argv], capsys, words)
    assert {run: tree(run) for run in runs} == runs and sorted(p.name for p in tmp_path.iterdir()) == ["d.png"]


def test_a_device_this_machine_lacks_is_refused_before_the_server_starts(vae_run, capsys, monkeypatch):
    import genlab.app

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(genlab.app, "serve", lambda *a, **k: pytest.fail("the server started"))
    fails_in_one_line(["serve", str(vae_run), "--device", "cuda"], capsys, "--device='cuda' but CUDA is not available")
    fails_in_one_line(["serve", str(vae_run), "--device", "gpu0"], capsys, "--device: unknown device 'gpu0'")
    fails_in_one_line(["report", str(vae_run), "--device", "cuda"], capsys, "CUDA is not available")


def test_seeds_must_fit_64_bits(vae_run, tmp_path, capsys):
    before = tree(vae_run)
    fails_in_one_line(["sample", str(vae_run), "--seed", str(2**64)], capsys, "--seed: must be 0 <= seed < 2**63")
    fails_in_one_line(["sample", str(vae_run), "--seed", "-1"], capsys, "0 <= seed < 2**63")
    train = ["train", "vae", "--data", "digits", "--steps", "1", "--out", str(tmp_path / "r")]
    fails_in_one_line([*train, "--seed", str(2**64)], capsys, "--seed: must be 0 <= seed < 2**63")
    fails_in_one_line([*train, "--set", f"train.seed={2**63}"], capsys, "train.seed must be 0 <= seed < 2**63")
    assert tree(vae_run) == before and not (tmp_path / "r").exists()
    assert main(["sample", str(vae_run), "--seed", str(2**63 - 1), "-n", "2", "--out", str(tmp_path / "s.png")]) == 0


def test_an_image_shape_the_data_overrides_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    fails_in_one_line(
        ["train", "vae", "--data", "digits", "--steps", "1", "--out", str(out), "--set", "model.image_shape=[3,32,32]"],
        capsys,
        "model.image_shape=[3, 32, 32]",
        "holds data of shape (1, 8, 8)",
        "--set data.image_size=[32, 32] --set data.channels=3",
    )
    assert not out.exists()


def test_a_report_without_metrics_says_so(vae_run):  # trained with train.log_every=0
    page = (vae_run / "report.html").read_text()
    assert "no metrics logged" in page and "? of" not in page


def test_complete_with_a_file_that_is_not_an_image(pixelcnn_run, not_an_image, tmp_path, capsys):
    before = tree(pixelcnn_run)
    fails_in_one_line(
        ["complete", str(pixelcnn_run), "--image", str(not_an_image), "--rows", "3", "--out", str(tmp_path / "c.png")],
        capsys,
        "notes.png",
        "not an image",
    )
    fails_in_one_line(
        ["complete", str(pixelcnn_run), "--image", str(tmp_path / "missing.png"), "--rows", "3"], capsys, "not found"
    )
    assert tree(pixelcnn_run) == before and not (tmp_path / "c.png").exists()


def test_translate_with_a_file_that_is_not_an_image(tmp_path, not_an_image, capsys):
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
                *QUIET,
            ]
        )
        == 0
    )
    before = tree(run)
    fails_in_one_line(
        ["translate", str(run), "--direction", "a2b", "--image", str(not_an_image)], capsys, "not an image"
    )
    assert tree(run) == before


@pytest.mark.slow
def test_warnings_show_the_message_alone(vae_run, tmp_path):
    """8x8 images fit no feature network: eval warns; the warning is one line, no source line under it."""
    env = {**os.environ, "PYTHONPATH": str(SRC.parent), "OMP_NUM_THREADS": "1"}
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "genlab",
            "eval",
            str(vae_run),
            "--iw-samples",
            "2",
            "--max-examples",
            "8",
            "--samples",
            "20",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    lines = [line for line in r.stderr.splitlines() if "warning" in line.lower()]
    assert lines and all(line.startswith("genlab: warning: ") for line in lines), r.stderr
    assert "evaluate(" not in r.stderr and ".py:" not in r.stderr


# --------------------------------------------------------------------------- damaged weights


def _copy(run: Path, to: Path) -> Path:
    import shutil

    return Path(shutil.copytree(run, to))


def test_damaged_weights_are_refused_with_how_to_restore_them(vae_run, tmp_path, capsys):
    run = _copy(vae_run, tmp_path / "run")
    weights = run / "model.safetensors"
    raw = bytearray(weights.read_bytes())
    raw[len(raw) // 2 : len(raw) // 2 + 64] = b"\xff" * 64  # 64 bytes of 0xFF: NaN weights, a file that still parses
    weights.write_bytes(bytes(raw))
    before = tree(run)
    line = fails_in_one_line(
        ["sample", str(run), "-n", "4"],
        capsys,
        f"{weights} is corrupt: its SHA-256 does not match the one written at save; "
        "restore it from checkpoints/ with: cp ",
    )
    assert tree(run) == before
    command = line.split("with: ")[1].split(" (")[0].split()
    assert command[0] == "cp" and Path(command[1]).parent.parent.name == "checkpoints"
    weights.write_bytes(Path(command[1]).read_bytes())  # the suggested fix works
    assert main(["sample", str(run), "-n", "4", "--out", str(tmp_path / "s.png")]) == 0


def test_weights_without_a_digest_still_load_but_not_with_nan(vae_run, tmp_path, capsys):
    from safetensors.torch import save_file

    run = _copy(vae_run, tmp_path / "run")
    state = {k: v.contiguous().clone() for k, v in genlab.load(run).state_dict().items()}
    save_file(state, run / "model.safetensors")  # as genlab 0.1.0 wrote it: no digest
    assert genlab.load(run) is not None
    name = next(k for k, v in state.items() if v.is_floating_point())
    state[name][0] = float("nan")
    save_file(state, run / "model.safetensors")
    fails_in_one_line(
        ["sample", str(run)], capsys, "holds NaN or infinite weights", name, "restore it from checkpoints/"
    )
    saved = genlab.load(vae_run).save(tmp_path / "saved")
    save_file({**state, name: state[name].clone().fill_(float("inf"))}, saved / "model.safetensors")
    fails_in_one_line(["sample", str(saved)], capsys, "holds NaN or infinite weights", "save or train the model again")


def test_every_writer_of_model_weights_stores_their_digest(vae_run, tmp_path):
    from safetensors import safe_open

    from genlab.io import DIGEST_KEY, tensors_digest
    from genlab.pretrained import save_half

    model = genlab.load(vae_run)
    files = [
        vae_run / "model.safetensors",
        model.save(tmp_path / "saved") / "model.safetensors",
        save_half(model.state_dict(), tmp_path / "half.safetensors"),
    ]
    for file in files:
        with safe_open(str(file), framework="pt") as f:
            assert f.metadata()[DIGEST_KEY] == tensors_digest({k: f.get_tensor(k) for k in f.keys()}), file


# --------------------------------------------------------------------------- array files


def test_npz_with_nan_and_inf_says_so_and_how_many(tmp_path, capsys):
    x = np.random.default_rng(0).random((5, 8, 8))
    x[0, 0, :3] = np.nan
    x[1, 1, 1] = np.inf
    np.savez(tmp_path / "nan.npz", x=x)
    with pytest.raises(DataError, match=r"3 NaN and 1 infinite value\(s\) \(of 320\)"):
        data.load(f"npz:{tmp_path / 'nan.npz'}")
    out = tmp_path / "run"
    fails_in_one_line(
        ["train", "vae", "--data", f"npz:{tmp_path / 'nan.npz'}", "--steps", "1", "--out", str(out)], capsys, "3 NaN"
    )
    assert not out.exists()


def test_plain_text_npz_is_not_a_valid_file_and_pickles_are_never_suggested(tmp_path, capsys):
    (tmp_path / "plain.npz").write_text("x,y\n1,2\n")
    line = fails_in_one_line(
        ["train", "vae", "--data", f"npz:{tmp_path / 'plain.npz'}", "--steps", "1", "--out", str(tmp_path / "r")],
        capsys,
        "not a valid .npz/.npy file",
    )
    assert "pickle" not in line.lower()
    (tmp_path / "broken.npz").write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(DataError) as e:
        data.load(f"npz:{tmp_path / 'broken.npz'}")
    assert "pickle" not in str(e.value).lower()
    np.save(tmp_path / "o.npy", np.array([None, 1], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="holds Python objects") as e:
        data.load(f"npy:{tmp_path / 'o.npy'}")
    assert "pickle" not in str(e.value).lower()


# --------------------------------------------------------------------------- data folders


def test_a_missing_data_dir_stops_before_any_download(tmp_path, capsys, monkeypatch):
    import urllib.request

    def no_network(*a, **k):
        raise AssertionError("the network was touched")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    out = tmp_path / "run"
    fails_in_one_line(
        ["train", "vae", "--data", "mnist", "--data-dir", "/nonexistent/genlab-data", "--out", str(out)],
        capsys,
        "/nonexistent/genlab-data",
        "does not exist",
    )
    assert not out.exists()
    (tmp_path / "file").write_text("")
    with pytest.raises(DataError, match="is not a folder"):
        data.load("mnist", data_dir=tmp_path / "file")


def _photos(folder: Path, n: int = 12, size=(40, 30)) -> Path:
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(folder / f"{i}.jpg")
    return folder


def test_a_folder_of_non_square_photos_trains_with_data_image_size(tmp_path, capsys):
    photos = _photos(tmp_path / "photos")  # 40 wide, 30 high
    gan = [
        "train",
        "gan",
        "--data",
        f"folder:{photos}",
        "--steps",
        "1",
        "--set",
        "train.batch_size=4",
        "--set",
        "model.arch=conv",
        "--set",
        "model.channels=4",
        *QUIET,
    ]
    line = fails_in_one_line([*gan, "--out", str(tmp_path / "refused")], capsys, "--set data.image_size=64")
    assert not (tmp_path / "refused").exists()
    assert (
        main([*gan, "--out", str(tmp_path / "ok"), "--set", "data.image_size=32", "--set", "data.channels=1"]) == 0
    ), line
    doc = genlab.load(tmp_path / "ok").config
    assert tuple(doc.image_shape) == (1, 32, 32)
    assert main([*gan, "--out", str(tmp_path / "pair"), "--set", "data.image_size=[28, 28]"]) == 0
    assert tuple(genlab.load(tmp_path / "pair").config.image_shape) == (3, 28, 28)
    fails_in_one_line([*gan, "--out", str(tmp_path / "bad"), "--set", "data.channels=2"], capsys, "channels")
    assert not (tmp_path / "bad").exists()


def _strokes_on_transparent(mode: str) -> Image.Image:
    """A black cross on a fully transparent background, 8x8, in ``mode``."""
    rgba = np.zeros((8, 8, 4), np.uint8)  # transparent black everywhere ...
    rgba[3, :, 3] = rgba[:, 3, 3] = 255  # ... but the opaque black cross
    img = Image.fromarray(rgba, "RGBA")
    if mode == "LA":
        return img.convert("LA")
    if mode == "P":
        p = Image.new("P", (8, 8), 0)
        p.putpalette([0, 0, 0, 0, 0, 0] + [0] * 762)
        p.putdata([1 if (r == 3 or c == 3) else 0 for r in range(8) for c in range(8)])
        p.info["transparency"] = 0  # palette index 0 (black) is transparent
        return p
    return img


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P"])
def test_transparent_pngs_are_composited_on_white(tmp_path, mode):
    from genlab.viz.images import load_image

    folder = tmp_path / "pngs"
    folder.mkdir()
    for i in range(3):
        _strokes_on_transparent(mode).save(folder / f"{i}.png")
    expected = np.full((8, 8), 255, np.uint8)
    expected[3, :] = expected[:, 3] = 0
    ds = data.load(f"folder:{folder}", "all", channels=1)
    assert np.array_equal(ds.images[0, 0].numpy(), expected)
    rgb = data.load(f"folder:{folder}", "all", channels=3).images[0].numpy()
    assert np.array_equal(rgb, np.stack([expected] * 3))
    assert torch.equal(load_image(folder / "0.png", channels=1)[0], torch.from_numpy(expected).float() / 255)


def test_16_bit_pngs_keep_their_256_grey_levels(tmp_path):
    from genlab.data.images import to_array
    from genlab.viz.images import load_image

    levels = np.arange(256).reshape(16, 16)  # stored as the 16-bit values k * 257
    folder = tmp_path / "g16"
    folder.mkdir()
    for i in range(3):
        img = Image.new("I;16", (16, 16))
        img.frombytes((levels * 257).astype("<u2").tobytes())
        img.save(folder / f"{i}.png")
    assert np.array_equal(data.load(f"folder:{folder}", "all").images[0, 0].numpy(), levels)  # --data folder:
    assert np.array_equal(
        (load_image(folder / "0.png", channels=1)[0] * 255).round().numpy(), levels
    )  # complete --image
    with Image.open(folder / "0.png") as img:  # the explorer's uploads
        assert img.mode == "I;16" and np.array_equal(to_array(img, 3), np.stack([levels] * 3))
    as_older_pillow_reads_it = Image.fromarray((levels * 257).astype(np.int32))  # mode "I"
    assert np.array_equal(to_array(as_older_pillow_reads_it, 1)[0], levels)


def test_an_exif_rotated_photo_is_read_as_shown(tmp_path):
    from genlab.viz.images import load_image

    stored = np.zeros((20, 40, 3), np.uint8)
    stored[:, :20] = 255  # 40 wide, 20 high, the left half white ...
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(3):
        img = Image.fromarray(stored)
        exif = img.getexif()
        exif[0x0112] = 6  # ... shown turned 90 degrees clockwise: 20 wide, 40 high, the top half white
        img.save(folder / f"{i}.jpg", exif=exif, quality=95)
    shown = np.zeros((40, 20), np.uint8)
    shown[:20] = 255
    x = load_image(folder / "0.jpg", channels=1)
    assert x.shape == (1, 40, 20) and np.abs(x[0].numpy() * 255 - shown).max() < 40
    ds = data.load(f"folder:{folder}", "all", channels=1)
    assert ds.shape == (1, 40, 20) and np.abs(ds.images[0, 0].numpy().astype(int) - shown).max() < 40


def test_a_folder_of_mixed_sizes_is_refused_with_the_sizes_and_the_fix(tmp_path, capsys):
    folder = tmp_path / "mixed"
    folder.mkdir()
    for i in range(5):
        Image.fromarray(np.full((20, 30) if i < 3 else (40, 40), 9 * i, np.uint8)).save(folder / f"{i}.png")
    out = tmp_path / "run"
    fails_in_one_line(
        ["train", "vae", "--data", f"folder:{folder}", "--steps", "1", "--out", str(out)],
        capsys,
        "2 sizes (height x width: 20x30 (3 images), 40x40 (2 images))",
        "--set data.image_size=N",
    )
    assert not out.exists()
    assert data.load(f"folder:{folder}", "all", image_size=(16, 16)).shape == (1, 16, 16)


# --------------------------------------------------------------------------- the options error messages suggest


def _messages() -> list[tuple[str, str]]:
    """(file:line, text) of every string in a raise ..., warnings.warn(...) or GenlabError(...) under src/genlab."""
    found = []
    for path in sorted(SRC.rglob("*.py")):
        tree_ = ast.parse(path.read_text())
        for node in ast.walk(tree_):
            targets = []
            if isinstance(node, ast.Raise) and node.exc is not None:
                targets.append(node.exc)
            elif isinstance(node, ast.Call) and (
                getattr(node.func, "attr", None) == "warn" or getattr(node.func, "id", None) == "warn"
            ):
                targets.append(node)
            for t in targets:
                parts = [c.value for c in ast.walk(t) if isinstance(c, ast.Constant) and isinstance(c.value, str)]
                found.append((f"{path.relative_to(SRC)}:{node.lineno}", "".join(parts)))
    return found


def _fields() -> dict[str, set[str]]:
    model_fields = set()
    for e in registry.MODELS.values():
        model_fields |= {f.name for f in dataclasses.fields(e.config_class)}
    return {
        "model": model_fields,
        "train": {f.name for f in dataclasses.fields(TrainConfig)},
        "data": {f.name for f in dataclasses.fields(DataConfig)},
    }


def _flags() -> set[str]:
    flags = set()
    parser = build_parser()
    for action in parser._actions:
        for sub in (
            getattr(action, "choices", None).values() if isinstance(getattr(action, "choices", None), dict) else []
        ):
            for a in sub._actions:
                flags |= {o for o in a.option_strings if o.startswith("--")}
    return flags


FILE_SUFFIXES = {"safetensors", "json", "jsonl", "png", "gif", "wav", "npz", "npy"}


def test_every_option_an_error_message_suggests_exists():
    fields, flags = _fields(), _flags()
    messages = _messages()
    assert len(messages) > 100  # the scan sees the messages
    checked = 0
    for where, text in messages:
        for section, field in re.findall(
            r"\b(model|train|data)\.([a-z_][a-z0-9_]*)\b(?=\s*=|\s+(?:must|is|and|or|to)\b|[),;:])", text
        ):
            if field in FILE_SUFFIXES:  # model.safetensors, a file name
                continue
            assert field in fields[section], (
                f"{where}: the message names {section}.{field}, which is not a config field: {text!r}"
            )
            checked += 1
        scripts = re.findall(r"(scripts/[\w/]+\.py|benchmarks/[\w/]+\.py)", text)
        for flag in re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", text):
            if scripts:  # a flag of the script the message names
                assert any(f'"{flag}"' in (SRC.parents[1] / sc).read_text() for sc in scripts), (
                    f"{where}: {flag} not in {scripts}"
                )
            else:
                assert flag in flags, f"{where}: the message names {flag}, which no genlab command takes: {text!r}"
            checked += 1
    assert checked > 20
    assert "--set" in flags and "image_size" in fields["data"] and "channels" in fields["data"]
