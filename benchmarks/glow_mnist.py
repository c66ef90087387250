"""Benchmark: Glow (or RealNVP, ``--realnvp``) on 8-bit MNIST for a fixed CPU wall-clock budget.

Not a test: it prints a table. Training: the 60,000 MNIST training images (or
``--data mnist-5k``), uniformly dequantised afresh each time an image is used,
genlab's Trainer, Adam with a linear warm-up then a constant rate, stopped when
``--minutes`` have passed. Reported:

* test bits/dim of the 10,000 test images (one dequantisation draw per image, fixed
  seed): exact density of the dequantised image, -D log 256 included, the number the
  Glow and RealNVP papers report (Glow: 1.05 on MNIST after long GPU training);
* sampling time, parameters, and the digits of 1,000 samples at temperatures 0.7 and 1
  judged by genlab's shipped MNIST classifier (share of each digit, confidence).

    python benchmarks/glow_mnist.py --data-dir /work/shared/data --minutes 10
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

from genlab import data as gdata
from genlab import distributions as D
from genlab import registry
from genlab.config import TrainConfig
from genlab.data import transforms
from genlab.metrics.features import get_feature_net
from genlab.train.trainer import Trainer
from genlab.viz.images import save_png


def machine() -> str:
    return (f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs shared with other jobs, torch {torch.__version__}, "
            f"{torch.get_num_threads()} thread(s); load average {os.getloadavg()[0]:.1f}")


def train_for(model, train_set, args, out: Path, between=None) -> list[str]:
    """Train ``model`` with the Trainer until ``args.minutes`` pass; ``between(trainer, elapsed_s)``
    runs between chunks of 25 iterations. Returns report rows."""
    cfg = TrainConfig(steps=10**7, batch_size=args.batch_size, lr=args.lr, warmup_steps=args.warmup, progress=False,
                      checkpoint_every=0, sample_every=0, log_every=100, seed=args.seed, device="cpu")
    trainer = Trainer(model, train_set, cfg, out / "run")
    t0, load0 = time.perf_counter(), os.getloadavg()[0]
    while (elapsed := time.perf_counter() - t0) < args.minutes * 60:
        if between is not None:
            between(trainer, elapsed)
        trainer.fit(trainer.step + 25)
    elapsed = time.perf_counter() - t0
    seen = trainer.step * args.batch_size
    log = out / "run" / "metrics.jsonl"
    if log.exists():
        print(log.read_text().strip().splitlines()[-1], flush=True)
    return [f"| training | {elapsed / 60:.1f} min, {trainer.step} iterations of {args.batch_size}, {seen / len(train_set.images):.2f} epochs, "
            f"Adam lr {args.lr:g}; load average {load0:.1f} at the start, {os.getloadavg()[0]:.1f} at the end |"]


def sampling_rows(model, n: int = 64) -> list[str]:
    model.sample(2, generator=torch.Generator().manual_seed(0))  # warm-up
    t = time.perf_counter()
    model.sample(n, generator=torch.Generator().manual_seed(0))
    s = time.perf_counter() - t
    params = sum(p.numel() for p in model.parameters())
    return [f"| sampling | {s:.2f} s for {n} images ({n / s:.0f} images/s) |", f"| parameters | {params:,} |"]


def digit_rows(samples: torch.Tensor, what: str) -> list[str]:
    """Share of each digit among ``samples`` (N, 1, 28, 28) by the shipped MNIST classifier."""
    probs = torch.softmax(get_feature_net("mnist").logits(samples), 1)
    shares = torch.bincount(probs.argmax(1), minlength=10).float() / len(samples)
    return [f"| {what}: digits present | {int((shares > 0.01).sum())}/10 above 1% (shares % {' '.join(f'{100 * s:.0f}' for s in shares.tolist())}), "
            f"mean classifier confidence {float(probs.max(1).values.mean()):.2f} |"]


def common_args(ap: argparse.ArgumentParser, lr: float, batch: int) -> None:
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--data", default="mnist", help="training set: mnist (60k) or mnist-5k")
    ap.add_argument("--minutes", type=float, default=10.0, help="training wall-clock budget")
    ap.add_argument("--batch-size", type=int, default=batch)
    ap.add_argument("--lr", type=float, default=lr)
    ap.add_argument("--warmup", type=int, default=100, help="linear learning-rate warm-up, iterations")
    ap.add_argument("--test-images", type=int, default=10000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="directory for the run, the samples and the saved model")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common_args(ap, lr=3e-3, batch=64)
    ap.add_argument("--realnvp", action="store_true", help="no 1x1 convolutions (model.invertible_conv=false)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="glow-mnist-"))
    name = "RealNVP" if args.realnvp else "Glow"
    print(f"# {name} on {args.data}, batch {args.batch_size}, budget {args.minutes:g} min, seed {args.seed}")
    print(f"# machine: {machine()}", flush=True)

    torch.manual_seed(args.seed)
    model = registry.build("glow", image_shape=(1, 28, 28), invertible_conv=not args.realnvp)
    rows = train_for(model, gdata.load(args.data, split="train", data_dir=args.data_dir), args, out)
    model.eval().save(out / "model")

    test01 = transforms.to_float(gdata.load("mnist", split="test", data_dir=args.data_dir).images)[: args.test_images]
    g = torch.Generator().manual_seed(1234)
    t = time.perf_counter()
    with torch.inference_mode():
        nll = torch.cat([-model.log_prob(model.prepare(xb, generator=g)).double() for xb in test01.split(500)])
    bpd = D.bits_per_dim(nll, model.num_dims)
    rows.append(f"| test bits/dim, {len(test01)} test images (exact, dequantised) | **{bpd.mean().item():.3f} +- "
                f"{bpd.std().item() / math.sqrt(len(bpd)):.3f}** ({nll.mean().item():.1f} nats; {time.perf_counter() - t:.0f} s) |")
    rows += sampling_rows(model)
    for temp in (0.7, 1.0):
        model.config.temperature = temp
        samples = torch.cat([model.sample(250, generator=torch.Generator().manual_seed(i)) for i in range(4)])
        save_png(samples[:100], out / f"samples-T{temp}.png", scale=2)
        rows += digit_rows(samples, f"1,000 samples at T={temp}")
    print(f"\n| {name} on MNIST | value |\n|---|---|")
    print("\n".join(rows))
    print(f"\nsamples and model in {out}")


if __name__ == "__main__":
    main()
