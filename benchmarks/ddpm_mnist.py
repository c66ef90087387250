"""Benchmark: DDPM on MNIST under a fixed CPU budget: test bits/dim (the bound), samples/s, FID, digits.

Trains ``ddpm`` through genlab's Trainer on the 60,000 MNIST training digits for
``--minutes`` of wall clock (in chunks of 25 steps until the budget is spent; EMA
weights), then measures on the test split:

* bits/dim of the variational bound (discretized decoder at t = 1, prior at T),
  estimated per image from ``--bound-timesteps`` stratified terms (unbiased for the
  sum of all T), over ``--test-examples`` images, with its standard error;
* samples per second of ``model.sample`` (DDIM, ``--sample-steps`` steps, eta 0);
* FID, KID, precision/recall and density/coverage of ``--samples`` samples in the
  features of genlab's shipped MNIST classifier (as ``genlab eval --samples``), and
  the digits among the samples by that classifier's argmax (coverage of the 10 classes).

    python benchmarks/ddpm_mnist.py --data-dir /work/shared/data              # 10 minutes
    python benchmarks/ddpm_mnist.py --data-dir /work/shared/data --minutes 0.2 --samples 200 --test-examples 20   # smoke
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

import genlab
from genlab import data as gdata
from genlab import registry
from genlab.config import TrainConfig
from genlab.metrics.features import get_feature_net
from genlab.metrics.likelihood import evaluate_likelihood
from genlab.metrics.quality import generate_samples, quality_metrics, reference_features
from genlab.train.trainer import Trainer
from genlab.viz.images import save_png


def machine() -> str:
    return (f"{platform.platform()}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs shared with other jobs "
            f"(torch threads {torch.get_num_threads()}), torch {torch.__version__}; load average {os.getloadavg()[0]:.1f}")


def parser(doc: str, minutes: float = 10.0) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=minutes, help="training budget, wall clock")
    ap.add_argument("--data-dir", default="/work/shared/data")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--ema", type=float, default=0.98, help="EMA decay; the EMA starts at the initial weights, so short runs need a short horizon")
    ap.add_argument("--test-examples", type=int, default=250, help="test images for bits/dim")
    ap.add_argument("--samples", type=int, default=2000, help="samples for FID and the digit shares")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="model config field (JSON value), repeatable")
    ap.add_argument("--out", default=None, help="run directory (default: a temporary folder)")
    return ap


def run(name: str, args, fields: dict, likelihood_note: str) -> dict:
    """Train ``name`` for the budget, then print and return the measurements."""
    import json

    torch.set_num_threads(args.threads)
    for item in args.set:
        key, value = item.split("=", 1)
        try:
            fields[key] = json.loads(value)
        except json.JSONDecodeError:
            fields[key] = value  # a plain string such as cosine
    train, test = gdata.load("mnist", "train", data_dir=args.data_dir), gdata.load("mnist", "test", data_dir=args.data_dir)
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix=f"{name}-mnist-"))
    torch.manual_seed(args.seed)
    model = registry.build(name, image_shape=(1, 28, 28), **fields)
    params = sum(p.numel() for p in model.parameters())
    print(f"# {name} on MNIST: {fields}, {params / 1e6:.2f} M parameters, batch {args.batch_size}, lr {args.lr}, EMA {args.ema}, "
          f"budget {args.minutes:g} min, seed {args.seed}")
    print(f"# machine at start: {machine()}", flush=True)
    cfg = TrainConfig(steps=25, batch_size=args.batch_size, lr=args.lr, grad_clip=1.0, ema_decay=args.ema, progress=False,
                      checkpoint_every=0, sample_every=0, log_every=100, seed=args.seed, device="cpu")
    trainer = Trainer(model, train, cfg, out)
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < args.minutes * 60:
        trainer.fit(trainer.step + 25)
    train_s = time.perf_counter() - t0
    model = genlab.load(out)  # the EMA weights
    print(f"trained {trainer.step} steps of {args.batch_size} in {train_s / 60:.1f} min ({trainer.step / train_s:.2f} steps/s)", flush=True)

    t = time.perf_counter()
    lik = evaluate_likelihood(model, test, max_examples=args.test_examples, batch_size=args.test_examples, seed=args.seed, progress=False)
    lik_s = time.perf_counter() - t
    print(f"test bits/dim {lik['bits_per_dim']:.3f} +- {lik['bits_per_dim_se']:.3f} ({lik['nll_nats']:.1f} nats) over {lik['num_examples']} "
          f"test images; {likelihood_note}; {lik_s:.0f} s", flush=True)

    net = get_feature_net("mnist")
    t = time.perf_counter()
    fake = generate_samples(model, args.samples, batch_size=100, seed=args.seed)
    per_s = len(fake) / (time.perf_counter() - t)
    save_png(fake[:100], out / "samples.png", scale=2)
    ref = reference_features(test, net, split="test", cache=False)
    q = quality_metrics(ref["features"], net.features(fake).numpy(), seed=args.seed)
    shares = torch.bincount(net.logits(fake).argmax(1), minlength=10).float() / len(fake)
    print(f"sampling: {per_s:.2f} samples/s; samples: {out / 'samples.png'}")
    print(f"FID {q['fid']:.2f}, KID {q['kid']:.4f} +- {q['kid_std']:.4f}, precision {q['precision']:.3f}, recall {q['recall']:.3f}, "
          f"density {q['density']:.3f}, coverage {q['coverage']:.3f} ({len(fake)} samples vs {len(ref['features'])} test images, shipped MNIST features)")
    print(f"{'digit':<8}" + "".join(f"{d:>7}" for d in range(10)))
    print(f"{'share %':<8}" + "".join(f"{100 * s:>7.1f}" for s in shares.tolist()))
    print(f"digits present: {int((shares > 0).sum())}/10, smallest share {100 * float(shares.min()):.1f}%")
    print(f"# machine at end: {machine()}")
    return {"steps": trainer.step, "likelihood": lik, "samples_per_s": per_s, "quality": q, "shares": shares.tolist()}


def main(argv=None) -> int:
    ap = parser(__doc__)
    ap.add_argument("--bound-timesteps", type=int, default=50, help="stratified terms per image (0: all T)")
    ap.add_argument("--sample-steps", type=int, default=20, help="DDIM steps of model.sample")
    args = ap.parse_args(argv)
    fields = {"bound_timesteps": args.bound_timesteps, "sample_steps": args.sample_steps}
    note = (f"variational bound, discretized decoder, {args.bound_timesteps or 'all'} of T stratified terms per image"
            if args.bound_timesteps else "variational bound, discretized decoder, all T terms")
    run("ddpm", args, fields, note)
    return 0


if __name__ == "__main__":
    sys.exit(main())
