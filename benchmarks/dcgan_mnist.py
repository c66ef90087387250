"""Benchmark: DCGAN on MNIST under a fixed CPU budget; which digits does it make?

Trains the ``dcgan`` model through genlab's Trainer for ``--minutes`` (default 20;
the budget is turned into a step count by a short timed calibration run), then
judges 2,000 samples with a small CNN classifier that this script trains itself on
MNIST (about a minute; its test accuracy is printed). Reports the share of each
digit among the samples and the classifier's mean confidence, saves a sample grid,
and assembles the training movie. Target: all 10 digits present, none under 5%.
Not a test.

    python benchmarks/dcgan_mnist.py --data-dir /work/shared/data            # 20 minutes
    python benchmarks/dcgan_mnist.py --data-dir /work/shared/data --minutes 0.5   # smoke run
"""

from __future__ import annotations

import sys
import time

import torch
from torch import nn

import harness
from genlab import registry
from genlab.train.trainer import Trainer
from genlab.viz.gan import training_movie
from genlab.viz.images import save_png


def train_classifier(train, test, seconds: float, seed: int = 0) -> tuple[nn.Module, float]:
    """A small CNN on MNIST for ``seconds``; returns (model, test accuracy)."""
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 7 * 7, 64), nn.ReLU(), nn.Linear(64, 10),
    )
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    x_all, y_all = train.images, train.labels
    g = torch.Generator().manual_seed(seed)
    for _ in harness.until(seconds):
        idx = torch.randint(len(x_all), (128,), generator=g)
        loss = nn.functional.cross_entropy(net(x_all[idx].float() / 255), y_all[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    with torch.no_grad():
        pred = torch.cat([net(xb.float() / 255).argmax(1) for xb in test.images[:5000].split(1000)])
    return net, float((pred == test.labels[:5000]).float().mean())


def build_parser():
    ap = harness.parser(__doc__, data_dir="/work/shared/data", minutes=20.0, threads=2, seed=0, device="cpu", out=None)
    ap.add_argument("--objective", default="non-saturating")
    ap.add_argument("--channels", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--classifier-seconds", type=float, default=60.0)
    ap.add_argument("--samples", type=int, default=2000)
    return ap


def main(argv=None) -> int:
    args, machine = harness.start(build_parser(), argv)
    train, test = harness.splits("mnist", args)
    out = harness.out_dir(args, "dcgan-mnist-")
    print(f"# DCGAN on MNIST: {args.objective}, channels {args.channels}, batch {args.batch_size}, budget {args.minutes:g} min, seed {args.seed}", flush=True)

    clf, acc = train_classifier(train, test, args.classifier_seconds, args.seed)
    print(f"classifier: {args.classifier_seconds:.0f} s of training, test accuracy {acc:.3f}", flush=True)

    def build():
        return registry.build("dcgan", image_shape=(1, 28, 28), channels=args.channels, objective=args.objective)

    calib = Trainer(build(), train, harness.train_config(args, "dcgan", steps=25, batch_size=args.batch_size), out / "calib")
    per_step = harness.seconds_per_step(calib, timed=20, warm=5)
    steps = harness.steps_for(args.minutes * 60, per_step)
    print(f"calibration: {1 / per_step:.1f} iterations/s -> {steps} iterations for {args.minutes:g} min", flush=True)

    torch.manual_seed(args.seed)
    model = build()
    cfg = harness.train_config(args, "dcgan", steps=steps, batch_size=args.batch_size, sample_every=max(1, steps // 20), log_every=max(1, steps // 10))
    t = time.perf_counter()
    Trainer(model, train, cfg, out / "run").fit()
    train_s = time.perf_counter() - t

    model.eval().cpu()
    x = torch.cat([model.sample(500, generator=torch.Generator().manual_seed(args.seed + i)) for i in range(args.samples // 500)])
    with torch.no_grad():
        probs = torch.softmax(clf(x), 1)
    shares = torch.bincount(probs.argmax(1), minlength=10).float() / len(x)
    save_png(x[:100], out / "samples.png", scale=2)
    movie = training_movie(out / "run")
    print(f"trained {steps} iterations in {train_s / 60:.1f} min; samples: {out / 'samples.png'}; movie: {movie}")
    table = harness.Table(["digit", *map(str, range(10))])
    table.add("share %", *(f"{100 * s:.1f}" for s in shares.tolist()))
    ok = bool((shares > 0).all()) and float(shares.min()) >= 0.05
    table.finish(machine, f"digits present: {int((shares > 0).sum())}/10, smallest share {100 * float(shares.min()):.1f}%, "
                          f"mean classifier confidence {float(probs.max(1).values.mean()):.3f}; target (all 10, none < 5%): {'met' if ok else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
