"""Benchmark: the default conv VAE on full MNIST for a fixed wall-clock budget.

Not a test: it prints a table. Data: the 60,000 MNIST training images,
dynamically binarised (a fresh Bernoulli draw per pixel each time an image is
used; *not* the fixed "static binarized MNIST" of some papers, so numbers are
not directly comparable with those). After training for ``--minutes`` it
reports, on the first ``--test-images`` test images (also dynamically binarised,
with a fixed seed):

* the importance-sampled NLL, -log p(x) estimated with k = ``--k`` samples
  (the IWAE bound, an upper bound on the NLL in expectation), with its standard
  error over the test images;
* the test ELBO (one sample per image), negated: an upper bound on the NLL;
* parameter count and training throughput (images/s), with the machine.

Training goes through genlab's Trainer (Adam, batch 128). The cosine schedule
needs its length in steps, so the budget is turned into a step count first: a short
calibration run (a throw-away model, not counted in the budget) measures the
iterations per second, then the real run takes budget x rate steps with a
linear warm-up over the first 2% and a cosine decay to 0 at the last step.
Training time and throughput are measured on the real run.

    python benchmarks/vae_mnist.py --data-dir /work/shared/data --minutes 10
"""

from __future__ import annotations

import math
import os
import time

import torch

import genlab
import harness
from genlab.data import transforms
from genlab.models.vae import VAE, VAEConfig
from genlab.train.trainer import Trainer


def build_parser():
    ap = harness.parser(__doc__, data_dir=None, minutes=10.0, threads=os.cpu_count() or 1, seed=0, device="cpu", out=None)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--k", type=int, default=100, help="importance samples for the test NLL")
    ap.add_argument("--test-images", type=int, default=2000)
    ap.add_argument("--calib-steps", type=int, default=40, help="iterations timed to turn --minutes into steps")
    ap.add_argument("--save", default=None, help="save the trained model to this directory")
    return ap


def main(argv=None) -> None:
    args, machine = harness.start(build_parser(), argv)
    train_set = harness.load("mnist", "train", args)
    test = harness.test_images("mnist", args, args.test_images)
    n_train = train_set.images.shape[0]
    cfg = VAEConfig(image_shape=tuple(train_set.images.shape[1:]))
    work = harness.out_dir(args, "vae_mnist_")
    quiet = dict(batch_size=args.batch_size, lr=args.lr)

    # Calibration: iterations per second of this model on this machine, now.
    torch.manual_seed(args.seed)
    calib = Trainer(VAE(cfg), train_set, harness.train_config(args, "vae", steps=args.calib_steps, **quiet), work / "calib")
    per_step = harness.seconds_per_step(calib, timed=args.calib_steps - 5, warm=5)
    steps = harness.steps_for(args.minutes * 60, per_step)
    print(f"calibration: {args.batch_size / per_step:.0f} images/s -> {steps} steps for {args.minutes:g} min", flush=True)

    torch.manual_seed(args.seed)
    model = VAE(cfg)
    n_params = sum(p.numel() for p in model.parameters())
    tcfg = harness.train_config(args, "vae", steps=steps, lr_schedule="cosine", schedule_steps=steps, warmup_steps=max(1, steps // 50), log_every=500, **quiet)
    trainer = Trainer(model, train_set, tcfg, work / "run")
    t0 = time.perf_counter()
    trainer.fit()
    train_time = time.perf_counter() - t0
    seen = steps * args.batch_size
    metrics = work / "run" / "metrics.jsonl"
    if metrics.exists():
        print(metrics.read_text().strip())
    model.eval()

    g = torch.Generator().manual_seed(1234)
    xt = transforms.binarize(test, generator=g).to(model.device)
    t1 = time.perf_counter()
    nll = -model.log_prob(xt, iw_samples=args.k, batch_size=4096, generator=g)
    eval_time = time.perf_counter() - t1
    with torch.inference_mode():
        neg_elbo = torch.cat([-model.elbo(xb, generator=g) for xb in xt.split(1000)])
    if args.save:
        model.save(args.save)

    se = lambda v: v.std().item() / math.sqrt(v.numel())  # noqa: E731
    table = harness.Table(["quantity", "value"])
    table.add("model", f"genlab VAE defaults: {model.config}")
    table.add("parameters", f"{n_params / 1e6:.2f} M")
    table.add("training", f"{train_time / 60:.1f} min, {steps} steps of {args.batch_size}, {seen / n_train:.1f} epochs, genlab Trainer, Adam lr {args.lr:g}, cosine")
    table.add("training throughput", f"{seen / train_time:.0f} images/s")
    table.add(f"test NLL, IWAE k={args.k}, {xt.shape[0]} test images (dynamic binarisation)", f"{nll.mean().item():.2f} +- {se(nll):.2f} nats")
    table.add("test -ELBO (1 sample), same images", f"{neg_elbo.mean().item():.2f} +- {se(neg_elbo):.2f} nats")
    table.add("evaluation time (IWAE)", f"{eval_time / 60:.1f} min")
    table.add("genlab", genlab.__version__)
    table.finish(machine)


if __name__ == "__main__":
    main()
