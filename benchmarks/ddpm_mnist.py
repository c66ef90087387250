"""Benchmark: DDPM on MNIST under a fixed CPU budget: test bits/dim (the bound), samples/s, FID, digits.

Trains ``ddpm`` through genlab's Trainer on the 60,000 MNIST training digits for
``--minutes`` of training time (``train.max_seconds``; EMA weights), then measures
on the test split:

* bits/dim of the variational bound (discretized decoder at t = 1, prior at T),
  estimated per image from ``--bound-timesteps`` stratified terms (unbiased for the
  sum of all T), over ``--test-examples`` images, with its standard error;
* samples per second of ``model.sample`` (DDIM, ``--sample-steps`` steps, eta 0);
* FID, KID, precision/recall and density/coverage of ``--samples`` samples in the
  features of genlab's shipped MNIST classifier (as ``genlab eval --samples``), and
  the digits among the samples by that classifier's argmax (coverage of the 10 classes).

    python benchmarks/ddpm_mnist.py --data-dir ../shared/data              # 10 minutes
    python benchmarks/ddpm_mnist.py --data-dir ../shared/data --minutes 0.2 --samples 200 --test-examples 20   # smoke
"""

from __future__ import annotations

import json
import sys
import time

import torch

import genlab
import harness
from genlab import registry
from genlab.metrics.likelihood import evaluate_likelihood
from genlab.train.trainer import Trainer


def parser(doc: str, minutes: float = 10.0):
    """The flags ddpm_mnist.py and flow_matching_mnist.py share, at their defaults."""
    ap = harness.parser(
        doc, data_dir=harness.default_data_dir(), minutes=minutes, threads=1, seed=0, device="cpu", out=None
    )
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument(
        "--ema",
        type=float,
        default=0.98,
        help="EMA decay; the EMA starts at the initial weights, so short runs need a short horizon",
    )
    ap.add_argument("--test-examples", type=int, default=250, help="test images for bits/dim")
    ap.add_argument("--samples", type=int, default=2000, help="samples for FID and the digit shares")
    ap.add_argument(
        "--set", action="append", default=[], metavar="FIELD=VALUE", help="model config field (JSON value), repeatable"
    )
    return ap


def run(name: str, args, machine: harness.Machine, fields: dict, likelihood_note: str) -> dict:
    """Train ``name`` for the budget, then print and return the measurements."""
    for item in args.set:
        key, value = item.split("=", 1)
        try:
            fields[key] = json.loads(value)
        except json.JSONDecodeError:
            fields[key] = value  # a plain string such as cosine
    train, test = harness.splits("mnist", args)
    out = harness.out_dir(args, f"{name}-mnist-")
    torch.manual_seed(args.seed)
    model = registry.build(name, image_shape=(1, 28, 28), **fields)
    params = sum(p.numel() for p in model.parameters())
    print(
        f"# {name} on MNIST: {fields}, {params / 1e6:.2f} M parameters, batch {args.batch_size}, lr {args.lr}, EMA "
        f"{args.ema}, budget {args.minutes:g} min, seed {args.seed}",
        flush=True,
    )
    cfg = harness.train_config(
        args,
        name,
        seconds=args.minutes * 60,
        batch_size=args.batch_size,
        lr=args.lr,
        grad_clip=1.0,
        ema_decay=args.ema,
        log_every=100,
    )
    trainer = Trainer(model, train, cfg, out)
    t0, c0 = time.perf_counter(), time.process_time()
    trainer.fit()
    train_s, train_cpu = time.perf_counter() - t0, time.process_time() - c0
    model = genlab.load(out)  # the EMA weights
    print(
        f"trained {trainer.step} steps of {args.batch_size} in {train_cpu / 60:.1f} CPU-min, {train_s / 60:.1f} "
        f"wall-min ({trainer.step / train_cpu:.2f} steps per CPU-second)",
        flush=True,
    )

    t = time.perf_counter()
    lik = evaluate_likelihood(
        model, test, max_examples=args.test_examples, batch_size=args.test_examples, seed=args.seed, progress=False
    )
    lik_s = time.perf_counter() - t
    print(
        f"test bits/dim {lik['bits_per_dim']:.3f} +- {lik['bits_per_dim_se']:.3f} ({lik['nll_nats']:.1f} nats) over "
        f"{lik['num_examples']} test images; {likelihood_note}; {lik_s:.0f} s",
        flush=True,
    )
    if lik["problem"]:
        print(f"INVALID: {lik['problem']}", flush=True)

    q = harness.sample_quality(model, test, samples=args.samples, seed=args.seed, out=out)
    print(f"samples: {q['png']}")
    print(harness.quality_line(q), flush=True)
    table = harness.Table(["digit", *map(str, range(10))])
    table.add("share %", *(f"{100 * s:.1f}" for s in q["shares"]))
    table.finish(machine, f"digits above 1%: {q['digits_above_1pct']}/10, smallest share {100 * min(q['shares']):.1f}%")
    result = {
        "model": name,
        "fields": fields,
        "steps": trainer.step,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "ema": args.ema,
        "train_cpu_minutes": train_cpu / 60,
        "train_wall_minutes": train_s / 60,
        "parameters": params,
        "likelihood": lik,
        "quality": q,
        "machine": machine.line(),
    }
    harness.write_json(out / "results.json", result)
    return result


def build_parser():
    ap = parser(__doc__)
    ap.add_argument("--bound-timesteps", type=int, default=50, help="stratified terms per image (0: all T)")
    ap.add_argument("--sample-steps", type=int, default=20, help="DDIM steps of model.sample")
    return ap


def main(argv=None) -> int:
    args, machine = harness.start(build_parser(), argv)
    fields = {"bound_timesteps": args.bound_timesteps, "sample_steps": args.sample_steps}
    note = (
        f"variational bound, discretized decoder, {args.bound_timesteps or 'all'} of T stratified terms per image"
        if args.bound_timesteps
        else "variational bound, discretized decoder, all T terms"
    )
    run("ddpm", args, machine, fields, note)
    return 0


if __name__ == "__main__":
    sys.exit(main())
