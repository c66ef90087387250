"""Benchmark: naive vs cached sampling of PixelCNN / Gated PixelCNN / the transformer.

Not a test: it prints a table of images per second at batch 1, 16 and 64 on
28x28 grey (Bernoulli) and 32x32 RGB (discretised logistic mixture) images,
with small untrained default models (speed does not depend on the weights).

* naive: one full forward pass over the whole image per pixel and channel;
* cached (Ramachandran et al. 2017): every layer keeps its past inputs and
  computes only the new position, so a pixel costs O(receptive field).

Both use the same random stream; the table says whether the samples are equal.
Naive sampling is slow: with ``--naive-rows K`` (``--quick`` sets K = 2) it is
timed on the first K rows only (the other pixels are held fixed through
``model.complete``, which skips their forward passes) and its full-image time is
extrapolated by H / K, marked "est."; the cached sampler runs the same partial
job to check equality, and is also timed on full images.

    python benchmarks/sampling_speed.py --quick
    python benchmarks/sampling_speed.py --models transformer --shapes 1x28x28 --batches 16 --quick
"""

from __future__ import annotations

import os
import time

import torch

import harness
from genlab import registry


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def build_parser():
    ap = harness.parser(__doc__, threads=os.cpu_count() or 1)
    ap.add_argument("--models", default="pixelcnn,gated-pixelcnn")
    ap.add_argument("--batches", default="1,16,64")
    ap.add_argument("--shapes", default="1x28x28,3x32x32", help="image shapes CxHxW, comma-separated")
    ap.add_argument(
        "--naive-rows", type=int, default=0, help="time naive sampling on this many rows only (0: full images)"
    )
    ap.add_argument("--quick", action="store_true", help="same as --naive-rows 2")
    return ap


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    naive_rows = 2 if args.quick and not args.naive_rows else args.naive_rows
    machine = harness.setup(args)
    batches = [int(b) for b in args.batches.split(",")]
    table = harness.Table(["model", "image", "batch", "naive images/s", "cached images/s", "speed-up", "samples equal"])
    for name in args.models.split(","):
        for shape in [tuple(int(n) for n in s.split("x")) for s in args.shapes.split(",")]:
            torch.manual_seed(0)
            model = registry.build(name, image_shape=shape).eval()
            c, h, w = shape
            for b in batches:
                rows = naive_rows if 0 < naive_rows < h else h
                x0 = torch.zeros(b, *shape)
                observed = torch.zeros(b, *shape, dtype=torch.bool)
                observed[:, :, rows:] = True  # rows >= `rows` are held fixed (all of them when rows == h: none)
                naive, t_naive = timed(
                    lambda: model.complete(x0, observed, generator=torch.Generator().manual_seed(1), method="naive")
                )
                partial, _ = timed(
                    lambda: model.complete(x0, observed, generator=torch.Generator().manual_seed(1), method="cached")
                )
                _, t_cached = timed(
                    lambda: model.sample(b, generator=torch.Generator().manual_seed(1), method="cached")
                )
                t_naive_full = t_naive * h / rows
                equal = torch.equal(naive, partial)
                est = " (est.)" if rows < h else ""
                table.add(
                    name,
                    f"{c}x{h}x{w}",
                    b,
                    f"{b / t_naive_full:.3g}{est}",
                    f"{b / t_cached:.3g}",
                    f"{t_naive_full / t_cached:.0f}x{est}",
                    f"{'yes' if equal else 'NO'}{f' (first {rows} rows)' if rows < h else ''}",
                )
    table.finish(machine)


if __name__ == "__main__":
    main()
