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

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from genlab import data as gdata
from genlab import registry
from genlab.train.trainer import Trainer
from genlab.viz.gan import training_movie
from genlab.viz.images import save_png


def machine() -> str:
    return f"{platform.platform()}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs (torch threads {torch.get_num_threads()}), torch {torch.__version__}, python {platform.python_version()}"


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
    t0 = time.perf_counter()
    g = torch.Generator().manual_seed(seed)
    while time.perf_counter() - t0 < seconds:
        idx = torch.randint(len(x_all), (128,), generator=g)
        loss = nn.functional.cross_entropy(net(x_all[idx].float() / 255), y_all[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    with torch.no_grad():
        pred = torch.cat([net(xb.float() / 255).argmax(1) for xb in test.images[:5000].split(1000)])
    return net, float((pred == test.labels[:5000]).float().mean())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=20.0, help="training budget (wall clock) for the GAN")
    ap.add_argument("--data-dir", default="/work/shared/data")
    ap.add_argument("--objective", default="non-saturating")
    ap.add_argument("--channels", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--classifier-seconds", type=float, default=60.0)
    ap.add_argument("--samples", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None, help="run directory (default: a temporary folder)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    train = gdata.load("mnist", "train", data_dir=args.data_dir)
    test = gdata.load("mnist", "test", data_dir=args.data_dir)
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="dcgan-mnist-"))
    print(f"# DCGAN on MNIST: {args.objective}, channels {args.channels}, batch {args.batch_size}, budget {args.minutes:g} min, seed {args.seed}")
    print(f"# machine: {machine()}", flush=True)

    clf, acc = train_classifier(train, test, args.classifier_seconds, args.seed)
    print(f"classifier: {args.classifier_seconds:.0f} s of training, test accuracy {acc:.3f}", flush=True)

    def build():
        return registry.build("dcgan", image_shape=(1, 28, 28), channels=args.channels, objective=args.objective)

    quiet = dict(batch_size=args.batch_size, progress=False, checkpoint_every=0, log_every=0, seed=args.seed, device="cpu")
    calib = Trainer(build(), train, registry.train_config("dcgan", steps=25, sample_every=0, **quiet), out / "calib")
    calib.fit(5)
    t = time.perf_counter()
    calib.fit(25)
    rate = 20 / (time.perf_counter() - t)
    steps = max(10, int(rate * args.minutes * 60))
    print(f"calibration: {rate:.1f} iterations/s -> {steps} iterations for {args.minutes:g} min", flush=True)

    torch.manual_seed(args.seed)
    model = build()
    cfg = registry.train_config("dcgan", steps=steps, sample_every=max(1, steps // 20), **{**quiet, "log_every": max(1, steps // 10)})
    t = time.perf_counter()
    Trainer(model, train, cfg, out / "run").fit()
    train_s = time.perf_counter() - t

    model.eval()
    x = torch.cat([model.sample(500, generator=torch.Generator().manual_seed(args.seed + i)) for i in range(args.samples // 500)])
    with torch.no_grad():
        probs = torch.softmax(clf(x), 1)
    shares = torch.bincount(probs.argmax(1), minlength=10).float() / len(x)
    save_png(x[:100], out / "samples.png", scale=2)
    movie = training_movie(out / "run")
    print(f"trained {steps} iterations in {train_s / 60:.1f} min; samples: {out / 'samples.png'}; movie: {movie}")
    print(f"{'digit':<8}" + "".join(f"{d:>7}" for d in range(10)))
    print(f"{'share %':<8}" + "".join(f"{100 * s:>7.1f}" for s in shares.tolist()))
    ok = bool((shares > 0).all()) and float(shares.min()) >= 0.05
    print(f"digits present: {int((shares > 0).sum())}/10, smallest share {100 * float(shares.min()):.1f}%, "
          f"mean classifier confidence {float(probs.max(1).values.mean()):.3f}; target (all 10, none < 5%): {'met' if ok else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
