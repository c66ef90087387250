"""Benchmark: Glow (or RealNVP, ``--realnvp``) on 8-bit MNIST for a fixed budget (CPU minutes by default, ``--clock``).

Not a test: it prints a table. Training: the 60,000 MNIST training images (or
``--data mnist-5k``), uniformly dequantised afresh each time an image is used,
genlab's Trainer, Adam with a linear warm-up then a constant rate (or, with ``--schedule
cosine``, a cosine decay whose length is re-estimated from the measured speed so that it
ends with the budget), stopped when ``--minutes`` of training have passed. Reported:

* test bits/dim of the 10,000 test images (one dequantisation draw per image, fixed
  seed): exact density of the dequantised image, -D log 256 included, the number the
  flow papers report on CIFAR-10 (Glow on MNIST: 1.05, RealNVP 1.06, as tabulated in
  FFJORD, Grathwohl et al. 2019, table 2; the Glow paper itself gives no MNIST figure);
* sampling time, parameters, and the digits of 1,000 samples at temperatures 0.7 and 1
  judged by genlab's shipped MNIST classifier (share of each digit, confidence).

    python benchmarks/glow_mnist.py --data-dir ../shared/data --minutes 10
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch

import harness
from genlab import distributions as D
from genlab import registry
from genlab.metrics.features import get_feature_net
from genlab.train.trainer import Trainer
from genlab.viz.images import save_png


def trainer_for(model, name: str, train_set, args, out: Path) -> Trainer:
    """A Trainer for ``model`` (registry name ``name``) with the flags' batch, rate, warm-up and seed."""
    schedule = (
        dict(lr_schedule="cosine", schedule_steps=10**6) if getattr(args, "schedule", "constant") == "cosine" else {}
    )
    cfg = harness.train_config(
        args, name, batch_size=args.batch_size, lr=args.lr, warmup_steps=args.warmup, log_every=100, **schedule
    )
    return Trainer(model, train_set, cfg, out / "run")


def training_row(trainer: Trainer, args, train_set, cpu_seconds: float, seconds: float, out: Path) -> tuple[str, str]:
    seen = trainer.step * args.batch_size
    log = out / "run" / "metrics.jsonl"
    if log.exists():
        print(log.read_text().strip().splitlines()[-1], flush=True)
    return (
        "training",
        f"{cpu_seconds / 60:.1f} CPU-min ({seconds / 60:.1f} wall-min), {trainer.step} iterations of "
        f"{args.batch_size}, {seen / len(train_set.images):.2f} epochs, Adam lr {args.lr:g}, "
        f"{getattr(args, 'schedule', 'constant')} after {args.warmup} warm-up steps",
    )


def sampling_rows(model, n: int = 64) -> list[tuple[str, str]]:
    model.sample(2, generator=torch.Generator().manual_seed(0))  # warm-up
    t = time.perf_counter()
    model.sample(n, generator=torch.Generator().manual_seed(0))
    s = time.perf_counter() - t
    params = sum(p.numel() for p in model.parameters())
    return [("sampling", f"{s:.2f} s for {n} images ({n / s:.0f} images/s)"), ("parameters", f"{params:,}")]


def digit_rows(samples: torch.Tensor, what: str) -> list[tuple[str, str]]:
    """Share of each digit among ``samples`` (N, 1, 28, 28) by the shipped MNIST classifier."""
    probs = torch.softmax(get_feature_net("mnist").logits(samples), 1)
    shares = torch.bincount(probs.argmax(1), minlength=10).float() / len(samples)
    return [
        (
            f"{what}: digits present",
            f"{int((shares > 0.01).sum())}/10 above 1% "
            f"(shares % {' '.join(f'{100 * s:.0f}' for s in shares.tolist())}), mean classifier confidence "
            f"{float(probs.max(1).values.mean()):.2f}",
        )
    ]


def flow_parser(doc: str, lr: float, batch: int):
    """The flags glow_mnist.py and vqvae_mnist.py share, at their defaults."""
    ap = harness.parser(
        doc, data_dir=harness.default_data_dir(), minutes=10.0, threads=1, seed=0, device="cpu", out=None
    )
    ap.add_argument("--data", default="mnist", help="training set: mnist (60k) or mnist-5k")
    ap.add_argument("--batch-size", type=int, default=batch)
    ap.add_argument("--lr", type=float, default=lr)
    ap.add_argument("--warmup", type=int, default=100, help="linear learning-rate warm-up, iterations")
    ap.add_argument("--test-images", type=int, default=10000)
    return ap


def build_parser():
    ap = flow_parser(__doc__, lr=1e-3, batch=64)
    ap.add_argument("--realnvp", action="store_true", help="no 1x1 convolutions (model.invertible_conv=false)")
    ap.add_argument(
        "--schedule",
        default="constant",
        choices=["constant", "cosine"],
        help="learning rate after the warm-up: constant, or a cosine decay to 0 sized to the "
        "budget (harness.fit_schedule_to_budget)",
    )
    return ap


def main(argv=None) -> None:
    args, machine = harness.start(build_parser(), argv)
    out = harness.out_dir(args, "glow-mnist-")
    name = "RealNVP" if args.realnvp else "Glow"
    print(
        f"# {name} on {args.data}, batch {args.batch_size}, budget {args.minutes:g} min, seed {args.seed}", flush=True
    )

    torch.manual_seed(args.seed)
    model = registry.build("glow", image_shape=(1, 28, 28), invertible_conv=not args.realnvp)
    train_set = harness.load(args.data, "train", args)
    trainer = trainer_for(model, "glow", train_set, args, out)
    t0, c0 = time.perf_counter(), time.process_time()
    if args.schedule == "cosine":
        harness.fit_schedule_to_budget(trainer, args.minutes * 60, first=50, warm=10)
    else:
        harness.fit_until(trainer, args.minutes * 60)
    rows = [training_row(trainer, args, train_set, time.process_time() - c0, time.perf_counter() - t0, out)]
    model.eval().cpu().save(out / "model")

    test01 = harness.test_images("mnist", args, args.test_images)
    g = torch.Generator().manual_seed(1234)
    t = time.perf_counter()
    with torch.inference_mode():
        nll = torch.cat([-model.log_prob(model.prepare(xb, generator=g)).double() for xb in test01.split(500)])
    bpd = D.bits_per_dim(nll, model.num_dims)
    rows.append(
        (
            f"test bits/dim, {len(test01)} test images (exact, dequantised)",
            f"**{bpd.mean().item():.3f} +- "
            f"{bpd.std().item() / math.sqrt(len(bpd)):.3f}** "
            f"({nll.mean().item():.1f} nats; {time.perf_counter() - t:.0f} s)",
        )
    )
    rows += sampling_rows(model)
    for temp in (0.7, 1.0):
        model.config.temperature = temp
        samples = torch.cat([model.sample(250, generator=torch.Generator().manual_seed(i)) for i in range(4)])
        save_png(samples[:100], out / f"samples-T{temp}.png", scale=2)
        rows += digit_rows(samples, f"1,000 samples at T={temp}")
    table = harness.Table([f"{name} on MNIST", "value"])
    for row in rows:
        table.add(*row)
    table.finish(machine, f"samples and model in {out}")


if __name__ == "__main__":
    main()
