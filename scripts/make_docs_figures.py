"""Make the README's figures in ``docs/`` from the pretrained models shipped in the package.

Every figure comes from ``genlab.load("pretrained:<name>")`` with fixed seeds, except
the ring8 training movie, which needs a model at several points of training: it
comes from a short run of the configuration of ``gan-ring8`` (its first 1,500 of
6,000 steps, from ``scripts/train_pretrained.py``). Test digits come from ``--data-dir`` (default ``../shared/data``).
The explorer's screenshot is taken in headless Chromium (``--chromium``, Debian's
``/usr/bin/chromium``, driven by playwright; no browser is downloaded).
Each file must stay under 200 KB and all of them under 3 MB; the script checks.

    python scripts/make_docs_figures.py                          # every figure of a shipped model
    python scripts/make_docs_figures.py --only dcgan-mnist       # one model's figures
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import io  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
from PIL import Image  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import genlab  # noqa: E402
from genlab import pretrained  # noqa: E402
from genlab.viz.images import make_grid, save_gif, save_png  # noqa: E402

MAX_FILE = 200 * 1024
MAX_TOTAL = 3 * 1024 * 1024


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_digits(data_dir: str, n: int, seed: int = 0) -> torch.Tensor:
    """``n`` MNIST test digits in [0, 1], one of each class first."""
    from genlab import data as gdata

    ds = gdata.load("mnist", "test", data_dir)
    first = [int((ds.labels == d).nonzero()[0]) for d in range(10)]
    rest = torch.randperm(len(ds), generator=gen(seed))[: max(0, n - 10)].tolist()
    return ds.images[(first + rest)[:n]].float() / 255


def samples(name: str, out: Path, n: int = 64, nrow: int = 8, labels=None) -> Path:
    model = genlab.load(f"pretrained:{name}")
    with torch.inference_mode():
        x = model.sample(n, labels=labels, generator=gen()).float().clamp(0, 1)
    return save_png(make_grid(x, nrow=nrow), out / f"{name}-samples.png", scale=2)


def vae_interpolation(out: Path, data_dir: str) -> Path:
    """Five walks at once, each a loop through four encoded test digits."""
    from genlab.viz.latent import loop_frames

    model = genlab.load("pretrained:vae-mnist")
    x01 = test_digits(data_dir, 20)
    with torch.inference_mode():
        z = model.encode(model.prepare(x01, generator=gen())).view(5, 4, -1)
        loops = [loop_frames(model, z[i], steps_per_leg=8) for i in range(5)]
    frames = [make_grid(torch.stack(f), nrow=5) for f in zip(*loops)]
    return save_gif(frames, out / "vae-mnist-interpolation.gif", duration_ms=100, scale=2)


def frey_manifold(out: Path) -> Path:
    from genlab.viz.latent import manifold_grid

    model = genlab.load("pretrained:vae-frey-face")
    return save_png(manifold_grid(model, n=12), out / "vae-frey-face-manifold.png", scale=2)


def ali_reconstructions(out: Path, data_dir: str) -> Path:
    """Columns in pairs: a test digit, then G(E(x))."""
    model = genlab.load("pretrained:ali-mnist")
    x01 = test_digits(data_dir, 20)
    with torch.inference_mode():
        rec = model.reconstruct(model.prepare(x01, generator=gen())).float()
    pairs = torch.stack([x01, rec], 1).flatten(0, 1)
    return save_png(make_grid(pairs, nrow=10), out / "ali-mnist-reconstructions.png", scale=2)


def cyclegan_translations(out: Path, data_dir: str) -> Path:
    """a2b above b2a; rows: input, translation, translated back."""
    from genlab.data.unpaired import load_unpaired
    from genlab.viz.translation import translation_grid

    model = genlab.load("pretrained:cyclegan-mnist-invert")
    test = load_unpaired("mnist", "mnist+invert", "test", data_dir, seed=0)
    a, b = test.a.images[:10].float() / 255, test.b.images[:10].float() / 255
    with torch.inference_mode():
        grid = make_grid(
            torch.stack([translation_grid(model, a, "a2b"), translation_grid(model, b, "b2a")]), nrow=1, padding=6
        )
    return save_png(grid, out / "cyclegan-mnist-invert.png", scale=2)


def mnistm_translations(out: Path, data_dir: str) -> Path:
    """The colour sim-to-real CycleGAN: real-style test digits, F of them (made clean); clean test
    digits, G of them (made real-style); 12 of each."""
    from genlab.data.unpaired import load_domain

    model = genlab.load("pretrained:cyclegan-mnist-mnistm")
    real = load_domain("mnist+mnistm", "test", data_dir, seed=0).images[:12].float() / 255
    clean = test_digits(data_dir, 12).expand(-1, 3, -1, -1)
    with torch.inference_mode():
        rows = [real, model.translate(real, "b2a"), clean, model.translate(clean, "a2b")]
    return save_png(make_grid(torch.cat(rows).clamp(0, 1), nrow=12, padding=2), out / "sim-to-real-mnistm.png", scale=2)


def wavenet_waveforms(out: Path) -> Path:
    from genlab.viz.plots import save_figure, waveform_figure

    model = genlab.load("pretrained:wavenet-sines")
    with torch.inference_mode():
        x = model.sample(4, generator=gen()).float()
    fig = waveform_figure(x, width=560, row_height=60, title="wavenet-sines: four sampled clips (mu-law codes / 255)")
    return save_figure(fig, out / "wavenet-sines-samples.png")


def ring8_figures(out: Path) -> list[Path]:
    """The shipped model over D's surface, and a movie of a short run of its configuration."""
    from genlab import registry
    from genlab.data.toy2d import load_toy, sample_toy
    from genlab.train import Trainer
    from genlab.viz.plots import discriminator_surface, figure_image, plot_gan_toy2d, points_figure

    final = plot_gan_toy2d(
        genlab.load("pretrained:gan-ring8"), out / "gan-ring8.png", n=1000, generator=gen(), size=360
    )
    from train_pretrained import SPECS, run_config

    cfg = run_config(SPECS["gan-ring8"], data_dir=None)  # toy points: no data folder
    data = load_toy("ring8", "train")
    cfg.model.image_shape = tuple(data.images.shape[1:])
    torch.manual_seed(cfg.train.seed)
    model = registry.build("gan", cfg.model)
    real = sample_toy("ring8", 500, generator=gen(1))
    frames = []
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(model, data, cfg.train, Path(tmp) / "run", cfg)
        for step in range(0, 1501, 100):
            trainer.fit(step)
            model.eval()
            with torch.inference_mode():
                fake = model.sample(500, generator=gen())
            fig = points_figure(
                real,
                fake,
                discriminator_surface(model),
                f"gan-ring8, step {step}",
                resolution=64,
                extent=(-2.6, 2.6, -2.6, 2.6),
                size=240,
            )
            frames.append(figure_image(fig).convert("P", palette=Image.ADAPTIVE, colors=64))
            model.train()
    durations = [250] * (len(frames) - 1) + [1500]
    buf = io.BytesIO()
    frames[0].save(
        buf, format="GIF", save_all=True, append_images=frames[1:], duration=durations, loop=0, optimize=True
    )
    movie = out / "gan-ring8-training.gif"
    movie.write_bytes(buf.getvalue())
    return [final, movie]


def explorer_screenshot(out: Path, chromium: str) -> Path:
    """The explorer (``genlab serve`` with no run: every shipped model) after "Draw samples"
    on the featured model's tab, in headless Chromium, reduced to a 64-colour PNG."""
    from playwright.sync_api import sync_playwright

    from genlab.app.serve import launch
    from genlab.explore import Explorer

    explorers = {n: Explorer.from_run(pretrained.path(n), reference_examples=0) for n in pretrained.names()}
    for attempt in range(3):  # Gradio gives up when its own check of the local URL takes over 3 s (a loaded machine)
        try:
            page_obj, url = launch(explorers, port=0, block=False, quiet=True)
            break
        except ValueError:
            if attempt == 2:
                raise
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=["--headless", "--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1100, "height": 760})
            page.set_default_timeout(120000)
            page.goto(url)
            page.get_by_role("tab", name=pretrained.FEATURED, exact=True).first.click()
            page.get_by_role("tab", name="Samples", exact=True).filter(visible=True).first.click()
            page.get_by_role("button", name="Draw samples", exact=True).filter(visible=True).first.click()
            page.wait_for_function(
                "() => Array.from(document.querySelectorAll('[id$=-samples-gallery] img'))"
                ".filter(i => i.complete && i.naturalWidth > 0).length >= 16"
            )
            shot = page.screenshot()
            browser.close()
    finally:
        page_obj.blocks.close()
    with Image.open(io.BytesIO(shot)) as im:
        small = im.convert("RGB").resize((im.width * 3 // 4, im.height * 3 // 4), Image.LANCZOS)
    path = out / "explorer.png"
    small.quantize(colors=64).save(path, optimize=True)
    return path


#: figure -> (the shipped model it needs, how to make it from (out, args)); a figure whose model
#: does not ship is skipped.
FIGURES = {
    "vae-mnist": ("vae-mnist", lambda out, a: [samples("vae-mnist", out), vae_interpolation(out, a.data_dir)]),
    "vae-frey-face": ("vae-frey-face", lambda out, a: [frey_manifold(out)]),
    "flow-matching-mnist": ("flow-matching-mnist", lambda out, a: [samples("flow-matching-mnist", out)]),
    "ddpm-mnist": ("ddpm-mnist", lambda out, a: [samples("ddpm-mnist", out)]),
    # autoregressive: 784 network passes per batch
    "pixelcnn-mnist": ("pixelcnn-mnist", lambda out, a: [samples("pixelcnn-mnist", out, n=20, nrow=10)]),
    "gated-pixelcnn-mnist": (
        "gated-pixelcnn-mnist",
        lambda out, a: [  # the digits 0-9, twice
            samples("gated-pixelcnn-mnist", out, n=20, nrow=10, labels=torch.arange(20) % 10)
        ],
    ),
    "dcgan-mnist": ("dcgan-mnist", lambda out, a: [samples("dcgan-mnist", out)]),
    "progan-mnist": ("progan-mnist", lambda out, a: [samples("progan-mnist", out)]),
    "glow-mnist": ("glow-mnist", lambda out, a: [samples("glow-mnist", out)]),
    "vqvae-mnist": ("vqvae-mnist", lambda out, a: [samples("vqvae-mnist", out)]),
    "vq-transformer-mnist": ("vq-transformer-mnist", lambda out, a: [samples("vq-transformer-mnist", out)]),
    "pixelvae-mnist": ("pixelvae-mnist", lambda out, a: [samples("pixelvae-mnist", out)]),
    "ali-mnist": ("ali-mnist", lambda out, a: [samples("ali-mnist", out), ali_reconstructions(out, a.data_dir)]),
    "cyclegan-mnist-invert": ("cyclegan-mnist-invert", lambda out, a: [cyclegan_translations(out, a.data_dir)]),
    "cyclegan-mnist-mnistm": ("cyclegan-mnist-mnistm", lambda out, a: [mnistm_translations(out, a.data_dir)]),
    "wavenet-sines": ("wavenet-sines", lambda out, a: [wavenet_waveforms(out)]),
    "gan-ring8": ("gan-ring8", lambda out, a: ring8_figures(out)),
    "explorer": (pretrained.FEATURED, lambda out, a: [explorer_screenshot(out, a.chromium)]),
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--out", default=str(ROOT / "docs"))
    ap.add_argument("--chromium", default="/usr/bin/chromium", help="the browser for the explorer's screenshot")
    ap.add_argument("--only", action="append", default=[], metavar="FIGURE", help="make this figure only (repeatable)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    shipped = set(pretrained.names())
    wanted = set(args.only) or set(FIGURES)
    unknown = wanted - set(FIGURES)
    if unknown:
        ap.error(f"unknown figure(s) {sorted(unknown)}; choose from {', '.join(FIGURES)}")
    made = []
    for key, (needs, make) in FIGURES.items():
        if key in wanted and needs in shipped:
            made += make(out, args)
    for p in made:
        size = p.stat().st_size
        print(f"{p.relative_to(ROOT) if p.is_relative_to(ROOT) else p}: {size / 1024:.0f} KB")
        if size > MAX_FILE:
            raise SystemExit(f"{p} is {size / 1024:.0f} KB, over the 200 KB limit")
    total = sum(f.stat().st_size for f in out.iterdir() if f.suffix in (".png", ".gif"))
    print(f"all figures in {out}: {total / 1024:.0f} KB")
    if total > MAX_TOTAL:
        raise SystemExit(f"the figures add up to {total / 2**20:.2f} MB, over the 3 MB limit")
    return 0


if __name__ == "__main__":
    sys.exit(main())
