"""Benchmark: a VAE on full MNIST for a fixed budget of CPU minutes, scored with
the IWAE bound (k = 1000 by default) on the whole test set.

Not a test: it prints a table. Data: the 60,000 MNIST training images,
dynamically binarised (a fresh Bernoulli draw per pixel each time an image is
used; *not* the fixed "static binarized MNIST" of some papers, so numbers are
not directly comparable with those). The model and its training settings are
``genlab train vae``'s: the defaults, a registry preset (``--preset``, e.g.
``mnist-10min``, ``genlab models vae`` lists them) and ``--set`` overrides.
Training goes through genlab's Trainer with a warm-up then a cosine decay whose
length follows the budget (``harness.fit_schedule_to_budget``: the throughput,
re-measured during the run, turns the remaining minutes into steps), so the
whole budget is used; ``--clock cpu`` (default) counts the budget in CPU
seconds of this process. With ``train.ema_decay`` > 0 the averaged weights are
scored. After training it reports, on the first ``--test-images`` test images
(all 10,000 by default; binarised once with a fixed seed):

* the importance-sampled NLL, -log p(x) estimated with k = ``--k`` samples from
  q(z|x) (the IWAE bound, an upper bound on the NLL in expectation), with its
  standard error over the test images, and the time it took;
* the test -ELBO (one sample per image), negated: an upper bound on the NLL;
* parameter count and training throughput (images/s), with the machine.

    python benchmarks/vae_mnist.py --data-dir ../shared/data --preset mnist-10min --minutes 10 --threads 1
    python benchmarks/vae_mnist.py --data-dir ../shared/data --minutes 1 --k 100 --test-images 1000   # a quick look
"""

from __future__ import annotations

import math
import time

import torch

import genlab
import harness
from genlab.data import transforms
from genlab.models.vae import VAE


def build_parser(doc=__doc__, minutes=10.0):
    ap = harness.parser(
        doc, data_dir=harness.default_data_dir(), minutes=minutes, threads=1, seed=0, device="cpu", out=None
    )
    ap.add_argument("--preset", default=None, help="a preset of vae (genlab models vae), e.g. mnist-10min")
    ap.add_argument(
        "--set", action="append", default=[], metavar="SECTION.FIELD=VALUE", help="config overrides, as genlab train"
    )
    ap.add_argument("--k", type=int, default=1000, help="importance samples for the test NLL")
    ap.add_argument("--test-images", type=int, default=10000, help="the first N test images (10,000: all)")
    ap.add_argument("--save", default=None, help="save the trained model to this directory")
    ap.add_argument("--load", default=None, help="score a model saved with --save instead of training one")
    return ap


def train(args, train_set, work, sets=()) -> tuple[VAE, dict]:
    """Train the vae of ``--preset`` / ``--set`` (then ``sets``) for the budget; (model in eval mode, facts)."""
    return harness.train_to_budget(
        args, "vae", train_set, work, data="mnist", preset=args.preset, sets=list(args.set) + list(sets)
    )


def score(model: VAE, xt: torch.Tensor, k: int, generator: torch.Generator) -> dict:
    """IWAE NLL (k samples) and one-sample -ELBO per test image, nats, with the NLL's CPU and wall minutes."""
    t, c = time.perf_counter(), time.process_time()
    nll = -model.log_prob(xt, iw_samples=k, batch_size=10000, generator=generator)
    times = {"eval_cpu_min": (time.process_time() - c) / 60, "eval_wall_min": (time.perf_counter() - t) / 60}
    with torch.inference_mode():
        neg_elbo = torch.cat([-model.elbo(xb, generator=generator) for xb in xt.split(1000)])
    return {"nll": nll, "neg_elbo": neg_elbo, **times}


def se(v: torch.Tensor) -> float:
    """Standard error of the mean of ``v``."""
    return v.std().item() / math.sqrt(v.numel())


def test_set(args) -> torch.Tensor:
    """The first ``--test-images`` MNIST test images, binarised once (seed 1234)."""
    return transforms.binarize(
        harness.test_images("mnist", args, args.test_images), generator=torch.Generator().manual_seed(1234)
    )


def main(argv=None) -> None:
    args, machine = harness.start(build_parser(), argv)
    table = harness.Table(["quantity", "value"])
    if args.load:
        model = genlab.load(args.load, device=args.device).eval()
        table.add("model", f"vae loaded from {args.load}: {model.config}")
    else:
        train_set = harness.load("mnist", "train", args)
        model, facts = train(args, train_set, harness.out_dir(args, "vae_mnist_"))
        if args.save:
            model.save(args.save)
        tc = facts["config"].train
        table.add("model", f"vae, preset {args.preset or '(defaults)'} {' '.join(args.set)}: {model.config}")
        table.add(
            "training",
            f"{facts['minutes']:.1f} {args.clock.upper()}-min ({facts['wall_minutes']:.1f} wall), {facts['steps']} "
            f"steps of {tc.batch_size}, {facts['images'] / len(train_set.images):.1f} epochs, Adam lr {tc.lr:g}, "
            f"warm-up {tc.warmup_steps} + cosine, EMA {tc.ema_decay:g}{', bfloat16 autocast' if tc.amp else ''}",
        )
        table.add(
            "training throughput", f"{facts['images'] / (facts['minutes'] * 60):.0f} images per {args.clock} second"
        )
    table.add("parameters", f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f} M")
    xt = test_set(args)
    r = score(model, xt, args.k, torch.Generator().manual_seed(4321))
    table.add(
        f"test NLL, IWAE k={args.k}, {xt.shape[0]} test images (dynamic binarisation)",
        f"**{r['nll'].mean().item():.2f} +- {se(r['nll']):.2f} nats**",
    )
    table.add("test -ELBO (1 sample), same images", f"{r['neg_elbo'].mean().item():.2f} +- {se(r['neg_elbo']):.2f}")
    table.add("evaluation time (IWAE)", f"{r['eval_cpu_min']:.1f} CPU-min ({r['eval_wall_min']:.1f} wall)")
    table.add("genlab", genlab.__version__)
    table.finish(machine)


if __name__ == "__main__":
    main()
