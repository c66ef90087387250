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

Schedule: Adam, batch 128, learning rate warmed up over the first 2% of the
time budget, then cosine-decayed to 0 at the end of the budget (the schedule
is a function of elapsed time, so the run always ends at lr = 0).

    python benchmarks/vae_mnist.py --data-dir /work/shared/data --minutes 10
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import time

import torch

import genlab
from genlab import data as gdata
from genlab.data import transforms
from genlab.models.vae import VAE, VAEConfig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--minutes", type=float, default=10.0, help="training wall-clock budget")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--k", type=int, default=100, help="importance samples for the test NLL")
    ap.add_argument("--test-images", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--save", default=None, help="save the trained model to this directory")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    train = transforms.to_float(gdata.load("mnist", split="train", data_dir=args.data_dir).images)
    test = transforms.to_float(gdata.load("mnist", split="test", data_dir=args.data_dir).images)[: args.test_images]

    model = VAE(VAEConfig(image_shape=tuple(train.shape[1:])))
    n_params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    budget = args.minutes * 60.0
    warmup = 0.02 * budget
    step = [s for s in model.train_steps() if s.name == "vae"][0]

    # The Trainer is step-based; a fixed wall-clock budget needs a time-based
    # schedule, so this benchmark runs its own minimal loop over the model's train step.
    model.train()
    seen, steps, log = 0, 0, []
    t0 = time.perf_counter()
    while True:
        perm = torch.randperm(train.shape[0])
        for i in range(0, train.shape[0] - args.batch_size + 1, args.batch_size):
            elapsed = time.perf_counter() - t0
            if elapsed >= budget:
                break
            frac = elapsed / budget
            lr = args.lr * (min(1.0, elapsed / warmup) if elapsed < warmup else 0.5 * (1 + math.cos(math.pi * frac)))
            for g in opt.param_groups:
                g["lr"] = lr
            x = transforms.binarize(train[perm[i : i + args.batch_size]])
            out = step.loss({"x": x, "y": None})
            opt.zero_grad(set_to_none=True)
            out["loss"].backward()
            opt.step()
            seen += x.shape[0]
            steps += 1
            if steps % 500 == 0:
                log.append(f"step {steps:6d}  {elapsed:6.0f}s  lr {lr:.2e}  elbo {out['elbo'].item():8.2f}  kl {out['kl'].item():6.2f}")
                print(log[-1], flush=True)
        else:
            continue
        break
    train_time = time.perf_counter() - t0
    model.eval()

    g = torch.Generator().manual_seed(1234)
    xt = transforms.binarize(test, generator=g)
    t1 = time.perf_counter()
    nll = -model.log_prob(xt, iw_samples=args.k, batch_size=4096, generator=g)
    eval_time = time.perf_counter() - t1
    with torch.inference_mode():
        neg_elbo = torch.cat([-model.elbo(xb, generator=g) for xb in xt.split(1000)])
    if args.save:
        model.save(args.save)

    se = lambda v: v.std().item() / math.sqrt(v.numel())  # noqa: E731
    print()
    print("| quantity | value |")
    print("|---|---|")
    print(f"| machine | {platform.platform()}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, {torch.get_num_threads()} threads |")
    print(f"| model | genlab VAE defaults: {model.config} |")
    print(f"| parameters | {n_params / 1e6:.2f} M |")
    print(f"| training | {train_time / 60:.1f} min, {steps} steps of {args.batch_size}, {seen / train.shape[0]:.1f} epochs, Adam lr {args.lr:g} cosine |")
    print(f"| training throughput | {seen / train_time:.0f} images/s |")
    print(f"| test NLL, IWAE k={args.k}, {xt.shape[0]} test images (dynamic binarisation) | {nll.mean().item():.2f} +- {se(nll):.2f} nats |")
    print(f"| test -ELBO (1 sample), same images | {neg_elbo.mean().item():.2f} +- {se(neg_elbo):.2f} nats |")
    print(f"| evaluation time (IWAE) | {eval_time / 60:.1f} min |")
    print(f"| genlab | {genlab.__version__} |")


if __name__ == "__main__":
    main()
