"""The explorer's extra views without Gradio: uploads (limits, transparency), labels,
progress and cancellation, the PCA projection, the figures and the samples gallery."""

from __future__ import annotations

import sys
import threading
import types

import pytest
import torch
from PIL import Image

from genlab import registry
from genlab.app import uploads
from genlab.cli import main
from genlab.explore import Explorer, views
from genlab.explore.explorer import RequestError
from genlab.viz import plots
from genlab.viz.images import make_grid
from genlab.viz.samples import domain_shape
from tiny import TINY


def build(name, **fields):
    config_cls, model_cls = registry.get(name)
    torch.manual_seed(0)
    return model_cls(config_cls(**fields)).eval()


def test_uploads_are_limited_and_transparency_is_laid_over_white(tmp_path):
    rgba = Image.new("RGBA", (6, 4), (0, 0, 0, 0))
    rgba.putpixel((1, 1), (10, 20, 30, 255))
    path = tmp_path / "t.png"
    rgba.save(path)
    flat = uploads.read_upload(path)
    assert flat.mode == "RGB" and flat.getpixel((0, 0)) == (255, 255, 255) and flat.getpixel((1, 1)) == (10, 20, 30)
    assert uploads.flatten(rgba, background=0).getpixel((0, 0)) == (0, 0, 0)  # sketches: over black
    wide = tmp_path / "wide.png"
    Image.new("L", (5000, 2)).save(wide)
    with pytest.raises(RequestError, match="5000x2 pixels; at most 4096 a side"):
        uploads.read_upload(wide)
    fat = tmp_path / "fat.png"
    fat.write_bytes(bytes(uploads.MAX_UPLOAD_BYTES + 1))
    with pytest.raises(RequestError, match="fat.png is 5.0 MiB; at most 5 MiB"):
        uploads.read_upload(fat)
    for name, content in (
        ("text.png", b"not an image"),
        ("page.png", b"<html><body>hi</body></html>"),
        ("noise.png", bytes(range(256)) * 8),
        ("cut.png", b"\x89PNG\r\n\x1a\n"),
    ):
        (tmp_path / name).write_bytes(content)
        with pytest.raises(RequestError, match=rf"^{name} is not an image PIL can read: [a-z]") as error:
            uploads.read_upload(tmp_path / name)
        assert str(tmp_path) not in str(error.value)  # the server's folders are not shown
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(RequestError, match=r"^empty.png is empty \(0 bytes\), not an image$"):
        uploads.read_upload(tmp_path / "empty.png")
    with pytest.raises(RequestError, match="gone.png is no longer on the server"):
        uploads.read_upload(tmp_path / "gone.png")
    with pytest.raises(RequestError, match="upload an image first"):
        uploads.read_upload(None)


def test_labels_are_parsed_and_checked():
    from genlab.run import LabelError

    assert views.parse_labels(" 1, 2,3", 10) == [1, 2, 3] and views.parse_labels("", 10) is None
    with pytest.raises(LabelError, match="out of range: this model has 3 classes"):
        views.parse_labels("3", 3)
    with pytest.raises(LabelError, match="unconditional"):
        views.parse_labels("1", 0)
    with pytest.raises(LabelError, match="integers separated by commas"):
        views.parse_labels("a,b", 3)


def test_watch_counts_calls_reports_progress_and_cancels():
    net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU())
    cancel, seen = threading.Event(), []
    with views.Watch(("t", 1), cancel, lambda done, total: seen.append((done, total)), interval=0.0) as w:
        for _ in range(3):
            net(torch.zeros(1, 2))
    assert w.count == 9 and seen[0] == (1, None)  # Sequential + Linear + ReLU per pass
    with views.Watch(("t", 1), cancel, lambda done, total: seen.append((done, total)), interval=0.0):
        net(torch.zeros(1, 2))
    assert seen[-1] == (3, 9)  # the total of the last finished call
    other = []  # another thread's module calls are not counted, nor cancelled
    with pytest.raises(views.Cancelled):
        with views.Watch(("t", 2), cancel) as w2:
            t = threading.Thread(target=lambda: other.append(net(torch.zeros(1, 2))))
            cancel.set()
            t.start()
            t.join()
            net(torch.zeros(1, 2))
    assert other and w2.count == 0 and ("t", 2) not in views.Watch._totals
    with pytest.raises(views.Cancelled, match="gone"):  # the client went away: asked with each report
        with views.Watch(("t", 3), threading.Event(), interval=0.0, gone=lambda: True):
            net(torch.zeros(1, 2))


def test_pca_matches_the_eigenvectors_of_the_covariance():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(400, 5, generator=g) * torch.tensor([5.0, 2.0, 1.0, 0.5, 0.1]) + 3.0
    proj, var = plots.pca_2d(x)
    xc = (x - x.mean(0)).double()
    evals, evecs = torch.linalg.eigh(xc.T @ xc)
    top = evecs[:, [-1, -2]]
    ref = (xc @ top).float()
    for k in range(2):  # equal up to the sign of each axis
        s = torch.sign((proj[:, k] * ref[:, k]).sum())
        assert torch.allclose(proj[:, k], s * ref[:, k], atol=1e-3)
    assert torch.allclose(var.double(), evals[[-1, -2]] / evals.sum(), atol=1e-5)
    one, v1 = plots.pca_2d(torch.randn(10, 1, generator=g))
    assert torch.all(one[:, 1] == 0) and v1[0] == pytest.approx(1.0) and v1[1] == 0


def test_gallery_images_are_the_samples_and_captions_carry_the_labels():
    model = build("gan", image_shape=(1, 8, 8), latent_dim=4, hidden_dim=16, hidden_layers=1, num_classes=3)
    ex = Explorer(model)
    grid, images, captions = views.sample_images(ex, 4, 7, [2, 0])
    want = model.sample(4, generator=torch.Generator().manual_seed(7), labels=torch.tensor([2, 0, 2, 0]))
    assert torch.equal(torch.stack(images), want.clamp(0, 1)) and torch.equal(grid, make_grid(want, nrow=2))
    assert captions == ["#0  label 2", "#1  label 0", "#2  label 2", "#3  label 0"]


def test_completion_and_the_translation_cycle_take_image_tensors():
    pix = Explorer(build("pixelcnn", image_shape=(1, 5, 5), hidden_channels=8, num_blocks=1, output_channels=8))
    x01 = torch.rand(1, 5, 5)
    kept, grid = views.complete(pix, x01, 3, 2, 0, None)
    assert torch.equal(kept[:, :3], x01[:, :3]) and bool((kept[:, 3:] == 0.5).all()) and grid.shape[0] == 1
    with pytest.raises(RequestError, match=r"'x01' has shape \(1, 4, 4\), this model takes one image of shape"):
        views.complete(pix, torch.rand(1, 4, 4), 3, 2, 0, None)
    cyc = Explorer(build("cyclegan", **TINY["cyclegan"]))
    x = torch.rand(*domain_shape(cyc.model))
    shown, there, back = views.translate_cycle(cyc, x, "a2b")
    assert torch.equal(shown, x) and torch.equal(there, cyc.translate(x, "a2b"))
    assert torch.equal(back, cyc.translate(there, "b2a")) and back.shape == x.shape


def test_manifold_and_projection_figures_have_labelled_axes(tmp_path):
    vae = build("vae", image_shape=(1, 8, 8), latent_dim=2, channels=(4, 8), hidden_dim=16)
    fig = views.manifold_plot(Explorer(vae), 4, (0, 1), None)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "z[0]" and ax.get_ylabel() == "z[1]"
    ticks = [float(t.get_text()) for t in ax.get_xticklabels()]
    assert ticks == pytest.approx([round(float(v), 2) for v in plots.quantile_axis(4)], abs=0.006)
    assert plots.png_bytes(fig)[:8] == b"\x89PNG\r\n\x1a\n"
    vae.save(tmp_path)
    doc = (tmp_path / "config.json").read_text().replace('"model_name"', '"data": {"name": "digits"}, "model_name"')
    (tmp_path / "config.json").write_text(doc)
    proj = views.projection_plot(Explorer.from_run(tmp_path), 60)
    legend = [t.get_text() for t in proj.axes[0].get_legend().get_texts()]
    assert sorted(legend, key=int) == [str(k) for k in range(10)] and "PC 1" in proj.axes[0].get_xlabel()


def test_serve_without_gradio_says_how_to_install_it(tmp_path, monkeypatch, capsys):
    build("vae", image_shape=(1, 8, 8), latent_dim=2, channels=(4, 8), hidden_dim=16).save(tmp_path)
    monkeypatch.setitem(sys.modules, "gradio", None)
    assert main(["serve", str(tmp_path)]) == 2
    assert 'pip install "genlab[app]"' in capsys.readouterr().err


def test_a_failing_report_only_warns_after_training(tmp_path, monkeypatch, capsys):
    import genlab.report

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(genlab.report, "write_report", broken)
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
                str(tmp_path / "r"),
                "--set",
                "train.progress=false",
                "--set",
                "model.channels=[4,8]",
                "--set",
                "model.hidden_dim=16",
            ]
        )
        == 0
    )
    err = capsys.readouterr().err
    assert (
        "the report was not written (RuntimeError: disk full)" in err
        and (tmp_path / "r" / "model.safetensors").exists()
    )


def test_the_analysis_text_has_one_field_a_line_and_names_each_estimator():
    vae = build("vae", image_shape=(1, 8, 8), latent_dim=2, channels=(4, 8), hidden_dim=16)
    ex = Explorer(vae)
    ex._doc = {"data": {"name": "noise"}}  # as if the run's test split were 12 noise images
    ex._test_split = types.SimpleNamespace(images=(torch.rand(12, 1, 8, 8) * 255).to(torch.uint8))
    x01 = uploads.image_tensor(Image.new("L", (8, 8), 128), (1, 8, 8))
    lines = views.analysis_markdown(ex.analyze(x01, iw_samples=3)).splitlines()
    fields = [line for line in lines if line.startswith("- ")]
    assert len(fields) == 6 and all(line.startswith("- ") or line.startswith("**Outlier") or not line for line in lines)
    estimators = [line for line in fields if "estimator" in line]
    assert len(estimators) == 2 and "k = 3 samples" in estimators[0] and "k = 10 samples" in estimators[1]
