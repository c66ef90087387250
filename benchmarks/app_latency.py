"""Benchmark: response times of the web explorer (``genlab serve``).

Not a test: it saves small untrained default models for 28x28 grey images (speed
does not depend on the weights) with the embedded ``mnist-5k`` as their data set,
serves each on a free local port and times every endpoint the model offers
through HTTP, as the page calls them: the median of ``--repeats`` requests after
one warm-up, plus the first /api/analyze, which also scores the reference images
for the outlier percentiles (once per seed and k).

    python benchmarks/app_latency.py --threads 1
"""

from __future__ import annotations

import base64
import io
import json
import statistics
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import torch

import harness
from genlab import registry
from genlab.app import Explorer, make_server
from genlab.viz.images import to_pil

MODELS = ("vae", "dcgan", "pixelcnn")


def post(url: str, path: str, body: dict) -> float:
    """Seconds for one POST (the answer must be 200)."""
    req = urllib.request.Request(url + path, json.dumps(body).encode(), {"Content-Type": "application/json"})
    t = time.perf_counter()
    with urllib.request.urlopen(req, timeout=600) as r:
        r.read()
        assert r.status == 200
    return time.perf_counter() - t


def build_parser():
    ap = harness.parser(__doc__, threads=1)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--repeats", type=int, default=5)
    return ap


def main(argv=None) -> None:
    args, machine = harness.start(build_parser(), argv)
    buf = io.BytesIO()
    to_pil(torch.rand(1, 28, 28)).save(buf, format="PNG")
    image = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    requests = [
        ("samples, n=16", "/api/samples", {"n": 16, "seed": 0}, "sample"),
        ("samples, n=64", "/api/samples", {"n": 64, "seed": 0}, "sample"),
        ("latent slider (one image)", "/api/latent", {"seed": 0, "values": [0.5, -1.0]}, "latent"),
        ("interpolation, 10 frames", "/api/interpolate", {"steps": 10}, "latent"),
        ("manifold, 15 x 15", "/api/manifold", {"n": 15}, "manifold"),
        ("analyze an upload", "/api/analyze", {"image": image, "iw_samples": 100}, "analyze"),
    ]
    table = harness.Table(["model", "parameters", "request", "median time", "first call"])
    for name in args.models.split(","):
        torch.manual_seed(0)
        model = registry.build(name, image_shape=(1, 28, 28)).eval()
        with tempfile.TemporaryDirectory() as tmp:
            run = model.save(Path(tmp) / name)
            doc = json.loads((run / "config.json").read_text())
            doc["data"] = {"name": "mnist-5k"}
            (run / "config.json").write_text(json.dumps(doc))
            explorer = Explorer.from_run(run)
            server = make_server(explorer, "127.0.0.1", 0)
            threading.Thread(target=server.serve_forever, daemon=True).start()
            url = f"http://127.0.0.1:{server.server_address[1]}"
            params = f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f} M"
            try:
                for label, path, body, cap in requests:
                    if not explorer.caps[cap]:
                        continue
                    if cap == "analyze":
                        label += " (k=100)" if explorer.caps["importance_sampled"] else " (exact)"
                    first = post(url, path, body)
                    times = [post(url, path, body) for _ in range(args.repeats)]
                    table.add(name, params, label, f"{1000 * statistics.median(times):.0f} ms", f"{1000 * first:.0f} ms")
            finally:
                server.shutdown()
                server.server_close()
    table.finish(machine)


if __name__ == "__main__":
    main()
