"""Benchmark: response times of every view of the web explorer (``genlab serve``).

Not a test: it saves small untrained default models for 28x28 grey images (speed
does not depend on the weights; wavenet: 1 x 2000 samples, cyclegan: two 28x28
domains) with the embedded ``mnist-5k`` as their data set, serves them all on one
Gradio page on a free local port and times every view each model offers over
HTTP with gradio_client, one request at a time, as the page calls them (the
queue's join + event stream, until the answer naming the result files; a browser
then fetches those images in parallel): the median of ``--repeats`` requests
after one warm-up call, whose time is shown as "first".

    python benchmarks/app_latency.py --threads 1
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

import harness
from genlab import registry
from genlab.app.serve import launch
from genlab.explore import Explorer

MODELS = {
    "vae": dict(image_shape=(1, 28, 28)),
    "dcgan": dict(image_shape=(1, 28, 28)),
    "pixelcnn": dict(image_shape=(1, 28, 28)),
    "gan-points": dict(image_shape=(2,)),
    "wavenet": dict(image_shape=(1, 1, 2000)),
    "cyclegan": dict(image_shape=(2, 28, 28)),
}


def save(root: Path, key: str) -> Path:
    name = "gan" if key == "gan-points" else key
    torch.manual_seed(0)
    model = registry.build(name, **MODELS[key]).eval()
    run = model.save(root / key)
    doc = json.loads((run / "config.json").read_text())
    doc["data"] = {
        "name": {"gan-points": "ring8", "cyclegan": "unpaired:mnist-5k,mnist-5k+invert"}.get(key, "mnist-5k")
    }
    if key == "wavenet":
        doc.pop("data")
    (run / "config.json").write_text(json.dumps(doc))
    return run


def views(i: int, ex: Explorer, image) -> list[tuple[str, str, tuple]]:
    """(label, api name, arguments) of each view model ``i`` offers."""
    caps = ex.caps
    d = caps["latent_dim"] or 0
    out = []
    if caps["sample"] and caps["kind"] == "image":
        out += [("samples, n=16", "samples", (16, 0)), ("samples, n=64", "samples", (64, 0))]
    if caps["kind"] == "points":
        out.append(("2-D scatter over D, 1000 points", "points", (1000, 0)))
    if caps["kind"] == "sequence":
        out.append(("audio, 2 clips", "audio", (2, 0)))
    if caps["latent"]:
        out += [
            ("latent slider (one image)", "latent", (0, *[0.5] * min(d, 8))),
            ("interpolation, 10 frames", "interpolate", (0, 1, 10, "slerp")),
        ]
    if caps["manifold"]:
        out.append(("manifold, 15 x 15", "manifold", (15, 0, 1)))
    if caps["analyze"]:
        k = "k=100" if caps["importance_sampled"] else "exact"
        out.append((f"your image: score + reconstruct ({k})", "analyze", (image, None, "upload", 0, 100)))
    if caps["kind"] == "image" and "complete" in ex.model.capabilities:
        out.append(("complete the bottom 4 rows, 4 times", "complete", (image, None, "upload", 24, 4, 0)))
    if caps["translate"]:
        out.append(("translate + cycle", "translate", (image, None, "upload", "a2b")))
    if caps["reconstruct"]:
        out.append(("PCA projection of 500 codes", "projection", (500, 0)))
    return out


def build_parser():
    ap = harness.parser(__doc__, threads=1)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument(
        "--contention",
        action="store_true",
        help="only: the vae slider alone, then while a pixelcnn 64-image grid is drawn (median of --repeats)",
    )
    return ap


def main(argv=None) -> None:
    args, machine = harness.start(build_parser(), argv)
    if args.contention:
        args.models = "vae,pixelcnn"
    from gradio_client import Client, handle_file
    from PIL import Image

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        keys = args.models.split(",")
        explorers = {k: Explorer.from_run(save(root, k)) for k in keys}
        Image.effect_noise((28, 28), 80).save(root / "upload.png")
        page, url = launch(explorers, port=0, block=False, quiet=True)
        client = Client(url, verbose=False, analytics_enabled=False, download_files=False)
        image = handle_file(str(root / "upload.png"))
        try:
            if args.contention:
                contention(client, explorers, args.repeats)
                print(machine.line())
                return
            table = harness.Table(["model", "parameters", "view", "median", "first"])
            for i, key in enumerate(keys):
                ex = explorers[key]
                params = f"{sum(p.numel() for p in ex.model.parameters()) / 1e6:.2f} M"
                for label, api, call_args in views(i, ex, image):
                    times = []
                    for _ in range(args.repeats + 1):
                        t = time.perf_counter()
                        result = client.predict(*call_args, api_name=f"/m{i}_{api}")
                        times.append(time.perf_counter() - t)
                        status = result[-1] if isinstance(result, (list, tuple)) else result
                        assert not str(status).startswith("**Error"), (key, label, status)
                    table.add(
                        key, params, label, f"{1000 * statistics.median(times[1:]):.0f} ms", f"{1000 * times[0]:.0f} ms"
                    )
        finally:
            page.blocks.close()
    table.finish(machine)


def contention(client, explorers: dict, repeats: int) -> None:
    """The VAE's latent slider (tab 0) alone and while the PixelCNN (tab 1) draws 64 images:
    each model has its own one-worker queue, so the slider does not wait for the grid."""
    d = min(explorers["vae"].caps["latent_dim"], 8)

    def slider(k: int) -> float:
        t = time.perf_counter()
        client.predict(k, *[0.1 * k] * d, api_name="/m0_latent")
        return time.perf_counter() - t

    slider(0)
    alone = [slider(k) for k in range(repeats)]
    grid = client.submit(64, 0, api_name="/m1_samples")
    time.sleep(1.0)
    during = [slider(k) for k in range(repeats)]
    overlapped = not grid.done()
    t = time.perf_counter()
    grid.result()
    print(
        f"\nvae slider alone: median {1000 * statistics.median(alone):.0f} ms; while a pixelcnn 64-image grid is "
        f"drawn: median {1000 * statistics.median(during):.0f} ms (max {1000 * max(during):.0f} ms; the grid was "
        f"{'still' if overlapped else 'no longer'} running, and took {time.perf_counter() - t:.1f} s more)"
    )


if __name__ == "__main__":
    main()
