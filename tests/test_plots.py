"""genlab.viz.plots (matplotlib) and genlab.viz.samples.render_samples: orientation of the
plots, one picture per kind of data, and the Trainer's periodic samples for every kind."""

from __future__ import annotations

import wave

import numpy as np
import pytest
import torch

from genlab import registry
from genlab.errors import GenlabError
from genlab.viz.images import make_grid, to_pil
from genlab.viz.plots import figure_image, loss_curves, points_figure, waveform_figure
from genlab.viz.samples import DEFAULT_COUNT, render_samples


def build(name, **fields):
    config_cls, model_cls = registry.get(name)
    torch.manual_seed(0)
    return model_cls(config_cls(**fields)).eval()


def rgb(img) -> torch.Tensor:
    return torch.from_numpy(np.asarray(img).copy()).float()  # (H, W, 3)


def bluish(img) -> torch.Tensor:
    a = rgb(img)
    return (a[..., 2] - a[..., 0] > 80) & (a[..., 2] > 150)


# --------------------------------------------------------------------------- plots


def test_waveform_panels_put_high_values_at_the_top_and_low_at_the_bottom():
    img = figure_image(
        waveform_figure(
            torch.stack([torch.full((1, 1, 64), 0.9), torch.full((1, 1, 64), 0.1)]), width=300, row_height=150
        )
    )
    assert img.size == (300, 300)
    ys = bluish(img).nonzero()[:, 0].float()
    top, bottom = ys[ys < 150], ys[ys >= 150] - 150
    assert len(top) > 50 and len(bottom) > 50
    assert top.mean() < 40 and bottom.mean() > 100  # 0.9 near the top of panel 0, 0.1 near the bottom of panel 1


def test_points_plot_orients_the_surface_and_the_points():
    size = 400
    # D says "real" right of x = 0: dark (fake) on the left, light (real) on the right
    img = rgb(
        figure_image(
            points_figure(None, torch.zeros(0, 2), lambda p: (p[:, 0] > 0).float(), extent=(-1, 1, -1, 1), size=size)
        )
    )
    row = img[size // 2]
    assert row[int(0.25 * size)].sum() < 300 < row[int(0.6 * size)].sum()
    # the same along y: light at the top (y > 0), dark at the bottom
    img = rgb(
        figure_image(
            points_figure(None, torch.zeros(0, 2), lambda p: (p[:, 1] > 0).float(), extent=(-1, 1, -1, 1), size=size)
        )
    )
    col = img[:, int(0.4 * size)]
    assert col[int(0.25 * size)].sum() > 300 > col[int(0.75 * size)].sum()
    # real points in black around (-0.5, 0.5), generated ones in red around (0.5, -0.5)
    g = torch.Generator().manual_seed(0)
    real = torch.tensor([-0.5, 0.5]) + 0.05 * torch.randn(200, 2, generator=g)
    fake = torch.tensor([0.5, -0.5]) + 0.05 * torch.randn(200, 2, generator=g)
    a = rgb(figure_image(points_figure(real, fake, extent=(-1, 1, -1, 1), size=size)))
    inner = a[int(0.15 * size) : int(0.8 * size), int(0.2 * size) : int(0.85 * size)]  # inside the axes, off the labels
    h, w = inner.shape[:2]
    black = inner.sum(-1) < 100
    red = (inner[..., 0] > 180) & (inner[..., 1] < 80)
    upper_left, lower_right = (slice(0, h // 2), slice(0, w // 2)), (slice(h // 2, h), slice(w // 2, w))
    assert black[upper_left].sum() > 100 > black[lower_right].sum()
    assert red[lower_right].sum() > 100 > red[upper_left].sum()


def test_each_loss_is_drawn_once_though_logged_under_two_names():
    d, g = [[1, 0.7], [2, 0.6]], [[1, 1.1], [2, 1.3]]
    series = {
        "discriminator/d/loss": d,
        "discriminator/loss": d,
        "generator/g/loss": g,
        "generator/loss": g,
        "generator/g/fake": [[1, 0.2], [2, 0.3]],
        "images_per_s": [[1, 50.0], [2, 60.0]],
    }
    fig = loss_curves(series)
    assert [line.get_label() for line in fig.axes[0].get_lines()] == ["discriminator/loss", "generator/loss"]


# --------------------------------------------------------------------------- render_samples


def test_images_are_a_grid_of_the_models_samples_with_cycling_labels():
    model = build("gan", image_shape=(1, 8, 8), latent_dim=4, hidden_dim=16, hidden_layers=1, num_classes=3)
    shown = render_samples(model, 5, generator=torch.Generator().manual_seed(0))
    x = model.sample(5, generator=torch.Generator().manual_seed(0), labels=torch.tensor([0, 1, 2, 0, 1]))
    assert shown.kind == "image" and shown.labels.tolist() == [0, 1, 2, 0, 1] and shown.nrow == 3
    assert np.array_equal(np.asarray(shown.image), np.asarray(to_pil(make_grid(x, nrow=3))))
    assert render_samples(model, generator=torch.Generator()).samples.shape[0] == DEFAULT_COUNT["image"]
    with pytest.raises(GenlabError, match="at least 1"):
        render_samples(model, 0)


def test_sequences_become_waveforms_or_a_wav_file(tmp_path):
    model = build("wavenet", image_shape=(1, 1, 12), residual_channels=4, skip_channels=4, dilations=(1, 2), stacks=1)
    shown = render_samples(model, 2, generator=torch.Generator().manual_seed(0))
    assert shown.kind == "sequence" and shown.image.size == (512, 2 * 64)
    with wave.open(str(shown.save(tmp_path / "s.wav", rate=8000))) as w:
        assert w.getframerate() == 8000 and w.getnframes() >= 2 * 12
    assert shown.save(tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"
    image_model = build("vae", image_shape=(1, 8, 8), latent_dim=2, hidden_dim=8, channels=(4, 8))  # unconditional
    with pytest.raises(GenlabError, match="WAV"):
        render_samples(image_model, 1).save(tmp_path / "x.wav")


def test_points_are_plotted_over_the_named_toy_data():
    model = build("gan", image_shape=(2,), latent_dim=2, hidden_dim=8, hidden_layers=1)
    shown = render_samples(model, generator=torch.Generator().manual_seed(0), real="ring8", size=256)
    assert (
        shown.kind == "points"
        and shown.samples.shape == (DEFAULT_COUNT["points"], 2)
        and shown.image.size == (256, 256)
    )


@pytest.mark.parametrize(
    "name, fields, data",
    [
        ("gan", dict(latent_dim=2, hidden_dim=8, hidden_layers=1), "points"),
        ("wavenet", dict(residual_channels=4, skip_channels=4, dilations=(1, 2), stacks=1), "sequences"),
    ],
)
def test_the_trainer_saves_samples_for_every_kind_of_data(tmp_path, name, fields, data):
    from genlab import data as gdata
    from genlab.config import TrainConfig
    from genlab.train import Trainer

    ds = gdata.load("ring8" if data == "points" else "sines")
    model = build(name, image_shape=tuple(ds.images.shape[1:]), **fields).train()
    cfg = TrainConfig(
        steps=2, batch_size=8, sample_every=2, log_every=0, checkpoint_every=0, progress=False, device="cpu"
    )
    torch.set_num_threads(1)
    Trainer(model, ds, cfg, tmp_path).fit()
    from PIL import Image

    with Image.open(tmp_path / "samples" / "step-0000002.png") as img:
        assert img.size == ((384, 384) if data == "points" else (512, 8 * 64))
