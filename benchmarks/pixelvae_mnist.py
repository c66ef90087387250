"""Benchmark: PixelVAE (one or two latent levels) on dynamically binarised MNIST
for a fixed budget of CPU minutes.

Not a test: it prints a table. Training: the 60,000 MNIST training images, a
fresh Bernoulli draw per pixel each time an image is used (*not* the static
binarised MNIST of the paper, so the numbers are context, not a like-for-like
comparison), genlab's Trainer with the settings of ``genlab train pixelvae`` (the
defaults, a registry preset ``--preset``, e.g. ``mnist-10min``, and ``--set``
overrides), linear warm-up then a cosine decay whose length follows the budget
(``harness.fit_schedule_to_budget``), so the whole budget (``--clock cpu``: CPU
seconds of this process) is used.

Reported on the first ``--test-images`` test images (binarised with a fixed seed):

* the test -ELBO (one sample per image) and its terms: the reconstruction
  -log p(x|z) and every KL term (KL > 0 and the count of *active units*,
  Burda et al. 2016: latent dimensions whose posterior mean varies over the data,
  Cov_x(E_q[z_j]) > 0.01, show that the latent is used, i.e. no posterior collapse);
* the IWAE estimate of the NLL with k = ``--k`` importance samples and the exact
  autoregressive p(x|z), and beside it k = ``--k-check`` on the first
  ``--k-check-images`` images: how much a larger k would still tighten the bound
  (each decoded code is a PixelCNN pass, so k = 1000 on all 10,000 images costs
  about 2 CPU-hours with the ``mnist-10min`` decoder);
* sampling time (cached pixel-by-pixel sampler).

The importance-sampled evaluation takes minutes on one CPU thread; to keep each
process under 10 minutes, train with ``--save DIR`` and evaluate with
``--load DIR`` in a second run::

    python benchmarks/pixelvae_mnist.py --data-dir ../shared/data --minutes 8 --save /tmp/pvae1 --skip-iwae
    python benchmarks/pixelvae_mnist.py --data-dir ../shared/data --load /tmp/pvae1
"""

from __future__ import annotations

import math
import time

import torch

import genlab
import harness
from genlab.data import transforms
from genlab.models.pixelvae import PixelVAE


def train(args, train_set) -> tuple[PixelVAE, list[tuple[str, str]]]:
    """Train the pixelvae of ``--preset`` / ``--set`` / ``--levels`` for the budget; (model in eval mode,
    table rows)."""
    sets = [f"model.latent_levels={args.levels}"] if args.levels else []
    model, facts = harness.train_to_budget(
        args,
        "pixelvae",
        train_set,
        harness.out_dir(args, "pixelvae_mnist_") / "run",
        data="mnist",
        preset=args.preset,
        sets=sets + list(args.set),
        first=20,
        warm=5,
    )
    steps, minutes, wall = facts["steps"], facts["minutes"], facts["wall_minutes"]
    tc, seen = facts["config"].train, facts["images"]
    rows = [
        (
            "training",
            f"{minutes:.1f} {args.clock.upper()}-min ({wall:.1f} wall), {steps} steps of {tc.batch_size}, "
            f"{seen / len(train_set.images):.2f} epochs, Adam lr {tc.lr:g}, warm-up {tc.warmup_steps} + cosine "
            f"fitted to the budget, EMA {tc.ema_decay:g}",
        ),
        ("training throughput", f"{seen / (minutes * 60):.0f} images per {args.clock} second"),
    ]
    return model.eval(), rows


@torch.inference_mode()
def active_units(model: PixelVAE, x: torch.Tensor, threshold: float = 0.01) -> list[str]:
    """Per latent level: dimensions with Cov_x(E_q[z_j | x]) > threshold, of all."""
    means = [
        torch.cat([model.encode_all(xb)[i][0].flatten(1) for xb in x.split(500)])
        for i in range(model.config.latent_levels)
    ]
    names = ["z"] if len(means) == 1 else ["z1", "z2"]
    return [f"{n}: {int((m.var(0) > threshold).sum())}/{m.shape[1]}" for n, m in zip(names, means)]


def build_parser():
    ap = harness.parser(
        __doc__, data_dir=harness.default_data_dir(), minutes=10.0, threads=1, seed=0, device="cpu", out=None
    )
    ap.add_argument("--preset", default=None, help="a preset of pixelvae (genlab models pixelvae), e.g. mnist-10min")
    ap.add_argument(
        "--set", action="append", default=[], metavar="SECTION.FIELD=VALUE", help="config overrides, as genlab train"
    )
    ap.add_argument(
        "--levels",
        type=int,
        default=None,
        choices=(1, 2),
        help="latent levels (model.latent_levels; default: the preset's)",
    )
    ap.add_argument("--k", type=int, default=100, help="importance samples for the test NLL")
    ap.add_argument(
        "--k-check", type=int, default=1000, help="a larger k, scored on --k-check-images images beside --k"
    )
    ap.add_argument("--k-check-images", type=int, default=100, help="images for --k-check (0: none)")
    ap.add_argument("--test-images", type=int, default=10000, help="the first N test images (10,000: all)")
    ap.add_argument("--save", default=None, help="save the trained model to this directory")
    ap.add_argument("--load", default=None, help="evaluate a saved model instead of training one")
    ap.add_argument("--skip-iwae", action="store_true", help="report the ELBO terms only")
    return ap


def main(argv=None) -> None:
    args, machine = harness.start(build_parser(), argv)
    rows: list[tuple[str, str]] = []
    if args.load:
        model = genlab.load(args.load, device=args.device).eval()
        rows.append(("trained model", f"loaded from {args.load}"))
    else:
        model, rows = train(args, harness.load("mnist", "train", args))
        if args.save:
            model.save(args.save)
    g = torch.Generator().manual_seed(1234)
    xt = transforms.binarize(harness.test_images("mnist", args, args.test_images), generator=g).to(model.device)
    se = lambda v: v.std().item() / math.sqrt(v.numel())  # noqa: E731

    with torch.inference_mode():
        terms = [model.elbo_terms(xb, generator=g) for xb in xt.split(500)]
    terms = {k: torch.cat([t[k] for t in terms]) for k in terms[0]}
    kl = sum(v for k, v in terms.items() if k.startswith("kl"))
    neg_elbo = kl - terms["recon"]
    rows.append(
        (
            f"test -ELBO (1 sample), {xt.shape[0]} test images",
            f"{neg_elbo.mean().item():.2f} +- {se(neg_elbo):.2f} nats",
        )
    )
    rows.append(("reconstruction -log p(x|z)", f"{-terms['recon'].mean().item():.2f} nats"))
    rows += [(k.replace("_", " "), f"{v.mean().item():.2f} nats") for k, v in terms.items() if k.startswith("kl")]
    rows.append(("active units (Cov_x E_q[z_j] > 0.01)", ", ".join(active_units(model, xt))))
    if not args.skip_iwae:
        t = time.perf_counter()
        c = time.process_time()
        nll = -model.log_prob(xt, iw_samples=args.k, batch_size=2000, generator=g)
        rows.append(
            (
                f"test NLL, IWAE k={args.k}, same images",
                f"**{nll.mean().item():.2f} +- {se(nll):.2f} nats** "
                f"({(time.process_time() - c) / 60:.1f} CPU-min, {(time.perf_counter() - t) / 60:.1f} wall)",
            )
        )
        if (
            args.k_check > args.k and args.k_check_images > 0
        ):  # how much a larger k would still tighten the bound, on a few images
            n = min(args.k_check_images, xt.shape[0])
            c = time.process_time()
            big = -model.log_prob(xt[:n], iw_samples=args.k_check, batch_size=2000, generator=g)
            gap = nll[:n] - big  # paired over the same images
            rows.append(
                (
                    f"k={args.k} vs k={args.k_check}, first {n} images",
                    f"{nll[:n].mean().item():.2f} vs {big.mean().item():.2f} nats: "
                    f"k={args.k_check} lower by {gap.mean().item():.2f} +- {se(gap):.2f} "
                    f"({(time.process_time() - c) / 60:.1f} CPU-min)",
                )
            )
    for n in (1, 64):
        model.sample(n, generator=torch.Generator().manual_seed(0))  # warm-up
        t = time.perf_counter()
        model.sample(n, generator=torch.Generator().manual_seed(0))
        dt = time.perf_counter() - t
        rows.append((f"sampling, batch {n} (cached)", f"{dt:.2f} s, {n / dt:.1f} images/s"))

    table = harness.Table(["quantity", "value"])
    table.add(
        "model",
        f"pixelvae, latent_levels={model.config.latent_levels}, "
        f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters: {model.config}",
    )
    for name, value in rows:
        table.add(name, value)
    table.add("genlab", genlab.__version__)
    table.finish(machine)


if __name__ == "__main__":
    main()
