"""genlab report: the page of a run, written by `genlab train` at the end and by
`genlab report`; every inline image decodes (with Pillow here, and in headless
Chromium where it is installed) and the parts follow the model's capabilities."""

from __future__ import annotations

import base64
import io
import json
import re
import time

import pytest
from PIL import Image

from browser import chromium, image_stats, offline_page
from genlab.cli import main
from genlab.io import atomic_write_json
from genlab.report import write_report
from saved_runs import saved

TRAIN = [
    "--data",
    "digits",
    "--steps",
    "6",
    "--set",
    "train.batch_size=16",
    "--set",
    "train.sample_every=2",
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


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "vae"
    t = time.perf_counter()
    assert main(["train", "vae", "--out", str(out), *TRAIN]) == 0
    print(f"train + report: {time.perf_counter() - t:.1f} s")
    return out


def inline_images(page: str) -> list[tuple[str, bytes]]:
    return [
        (m, base64.b64decode(b)) for m, b in re.findall(r'src="data:(image/[a-z]+);base64,([A-Za-z0-9+/=]+)"', page)
    ]


def sections(page: str) -> list[str]:
    return re.findall(r"<h2>([^<]+)</h2>", page)


def test_train_writes_a_self_contained_report_with_every_latent_view(vae_run):
    page = (vae_run / "report.html").read_text()
    assert sections(page) == [
        "Run, machine and timings",
        "Training curves",
        "Samples",
        "Samples over training",
        "Reconstructions",
        "Interpolation",
        "Traversals",
        "2-D manifold",
    ]
    assert not re.search(r'(?:src|href)="(?!data:)', page), "every resource is inline"
    assert "http://" not in page and "https://" not in page.replace("arXiv", "")
    images = inline_images(page)
    kinds = [m for m, _ in images]
    assert (
        kinds.count("image/gif") == 1 and len(images) == 6 + 3
    )  # curves, samples, 3 timeline grids, rec, gif, trav, manifold
    for mime, raw in images:
        img = Image.open(io.BytesIO(raw))
        img.load()
        assert img.format == mime.split("/")[1].upper() and img.width > 0
        lo, hi = img.convert("L").getextrema()
        assert hi > lo, "an image of one colour"
    assert "step 2" in page and "step 6" in page and "fast mode" in page
    assert "(the Trainer&#x27;s grid)" in page or "the Trainer's grid" in page  # the last step's grid is reused


def test_report_adds_eval_and_ood_results_when_present(vae_run, tmp_path):
    run = tmp_path / "run"
    import shutil

    shutil.copytree(vae_run, run)
    atomic_write_json(run / "eval.json", {"likelihood": {"nll_nats": 91.25, "bits_per_dim": 0.1679}, "split": "test"})
    (run / "ood").mkdir()
    atomic_write_json(
        run / "ood" / "ood.json", {"markdown": "| set | likelihood AUROC |\n|---|---|\n| noise | 0.998 |\n"}
    )
    from genlab.ood import plot_roc

    plot_roc({"likelihood": ([0.0, 0.2, 1.0], [0.0, 0.9, 1.0])}, run / "ood" / "roc-noise.png")
    page = write_report(run).read_text()
    assert sections(page)[-2:] == ["Evaluation (eval.json)", "Out-of-distribution detection"]
    assert "likelihood.nll_nats</th><td>91.25" in page and "<td>noise</td><td>0.998</td>" in page
    assert "roc-noise" in page and len(inline_images(page)) == 9 + 1


def test_parts_follow_capabilities_and_fast_mode_skips_slow_sampling(tmp_path):
    pix = saved(
        tmp_path / "pix",
        "pixelcnn",
        "digits",
        image_shape=(1, 8, 8),
        hidden_channels=8,
        num_blocks=1,
        output_channels=8,
    )
    page = write_report(pix).read_text()
    assert sections(page) == ["Run, machine and timings", "Samples"]  # no metrics, no latent space, no encoder
    fast = write_report(pix, pix / "fast.html", fast=True, budget_s=0.0).read_text()
    assert "sampling skipped while training ended" in fast and f"genlab report {pix}" in fast
    points = saved(tmp_path / "gan", "gan", "ring8", image_shape=(2,), latent_dim=2, hidden_dim=8, hidden_layers=1)
    page = write_report(points).read_text()
    assert "Samples" in sections(page) and "Reconstructions" not in sections(page)
    (img,) = [raw for _, raw in inline_images(page)]
    assert Image.open(io.BytesIO(raw := img)).size[0] > 300 and raw
    wave = saved(
        tmp_path / "wave",
        "wavenet",
        None,
        image_shape=(1, 1, 32),
        residual_channels=4,
        skip_channels=4,
        dilations=(1, 2),
        stacks=1,
    )
    page = write_report(wave).read_text()
    assert '<audio controls src="data:audio/wav;base64,' in page


def test_report_command_and_training_without_it(vae_run, tmp_path, capsys):
    out = tmp_path / "r.html"
    assert main(["report", str(vae_run), "--out", str(out)]) == 0
    assert out.read_text().count("<h2>") == 8 and "(full)" in out.read_text()
    assert main(["train", "vae", "--out", str(tmp_path / "quiet"), "--no-report", *TRAIN]) == 0
    assert not (tmp_path / "quiet" / "report.html").exists()
    assert main(["report", str(tmp_path / "missing")]) == 2


@pytest.mark.slow
def test_every_image_of_the_report_decodes_in_chromium(vae_run):
    with chromium() as browser:
        external: list = []
        page = offline_page(browser, "file://", external)
        page.goto((vae_run / "report.html").as_uri())
        page.wait_for_load_state("load")
        stats = image_stats(page, "img")
        assert len(stats) == 9 and external == []
        for w, h, spread in stats:
            assert w > 0 and h > 0 and spread > 0, stats
        json.dumps(stats)
