"""Benchmark: PixelVAE (one or two latent levels) on dynamically binarised MNIST
for a fixed CPU wall-clock budget.

Not a test: it prints a table. Training: the 60,000 MNIST training images, a
fresh Bernoulli draw per pixel each time an image is used (*not* the static
binarised MNIST of the paper, so the numbers are context, not a like-for-like
comparison), genlab's Trainer, Adam, batch 128, linear warm-up then cosine decay.
A few timed iterations on a throw-away copy size the cosine schedule;
the real run then stops at the end of the schedule or when ``--minutes`` have
passed (``train.max_seconds``), whichever comes first.

Reported on the first ``--test-images`` test images (binarised with a fixed seed):

* the test -ELBO (one sample per image) and its terms: the reconstruction
  -log p(x|z) and every KL term (KL > 0 and the count of *active units*,
  Burda et al. 2016: latent dimensions whose posterior mean varies over the data,
  Cov_x(E_q[z_j]) > 0.01, show that the latent is used, i.e. no posterior collapse);
* the IWAE estimate of the NLL with k = ``--k`` importance samples and the exact
  autoregressive p(x|z);
* sampling time (cached pixel-by-pixel sampler).

The importance-sampled evaluation takes minutes on one CPU thread; to keep each
process under 10 minutes, train with ``--save DIR`` and evaluate with
``--load DIR`` in a second run::

    python benchmarks/pixelvae_mnist.py --data-dir /work/shared/data --minutes 8 --save /tmp/pvae1 --skip-iwae
    python benchmarks/pixelvae_mnist.py --data-dir /work/shared/data --load /tmp/pvae1
"""

from __future__ import annotations

import copy
import math
import statistics
import time

import torch

import genlab
import harness
from genlab.data import transforms
from genlab.models.pixelvae import PixelVAE, PixelVAEConfig
from genlab.train.trainer import Trainer


def iterations_per_second(model: PixelVAE, x: torch.Tensor, iters: int) -> float:
    """Training iterations per second on this machine, now: the median time of a
    forward + backward of the -ELBO on a throw-away copy (the Adam update is cheap beside it)."""
    probe = copy.deepcopy(model).train()
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        probe.loss({"x": x})["loss"].backward()
        times.append(time.perf_counter() - t)
    return 1.0 / statistics.median(times[1:])


def train(args, train_set) -> tuple[PixelVAE, list[tuple[str, str]]]:
    cfg = PixelVAEConfig(image_shape=tuple(train_set.images.shape[1:]), latent_levels=args.levels)
    work = harness.out_dir(args, "pixelvae_mnist_")
    torch.manual_seed(args.seed)
    model = PixelVAE(cfg)
    x = transforms.binarize(transforms.to_float(train_set.images[: args.batch_size]), generator=torch.Generator().manual_seed(args.seed))
    rate = iterations_per_second(model, x.to(model.device), args.calib_steps)
    steps = harness.steps_for(args.minutes * 60, 1 / rate, minimum=20)
    print(f"calibration: {rate * args.batch_size:.0f} images/s -> cosine schedule of {steps} steps", flush=True)
    tcfg = harness.train_config(args, "pixelvae", seconds=args.minutes * 60, steps=steps, lr_schedule="cosine", schedule_steps=steps,
                                warmup_steps=max(1, steps // 50), log_every=100, batch_size=args.batch_size, lr=args.lr)
    trainer = Trainer(model, train_set, tcfg, work / "run")
    t0 = time.perf_counter()
    trainer.fit()
    elapsed = time.perf_counter() - t0
    seen = trainer.step * args.batch_size
    metrics = work / "run" / "metrics.jsonl"
    if metrics.exists():
        print(metrics.read_text().strip().splitlines()[-1], flush=True)  # the last training log
    rows = [
        ("training", f"{elapsed / 60:.1f} min, {trainer.step} of {steps} scheduled steps of {args.batch_size}, {seen / len(train_set.images):.2f} epochs, Adam lr {args.lr:g}, cosine"),
        ("training throughput", f"{seen / elapsed:.0f} images/s"),
    ]
    return model.eval(), rows


@torch.inference_mode()
def active_units(model: PixelVAE, x: torch.Tensor, threshold: float = 0.01) -> list[str]:
    """Per latent level: dimensions with Cov_x(E_q[z_j | x]) > threshold, of all."""
    means = [torch.cat([model.encode_all(xb)[i][0].flatten(1) for xb in x.split(500)]) for i in range(model.config.latent_levels)]
    names = ["z"] if len(means) == 1 else ["z1", "z2"]
    return [f"{n}: {int((m.var(0) > threshold).sum())}/{m.shape[1]}" for n, m in zip(names, means)]


def build_parser():
    ap = harness.parser(__doc__, data_dir=None, minutes=8.0, threads=1, seed=0, device="cpu", out=None)
    ap.add_argument("--levels", type=int, default=1, choices=(1, 2), help="latent levels (model.latent_levels)")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--k", type=int, default=100, help="importance samples for the test NLL")
    ap.add_argument("--test-images", type=int, default=1000)
    ap.add_argument("--calib-steps", type=int, default=8, help="iterations timed to size the schedule")
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
    rows.append((f"test -ELBO (1 sample), {xt.shape[0]} test images", f"{neg_elbo.mean().item():.2f} +- {se(neg_elbo):.2f} nats"))
    rows.append(("reconstruction -log p(x|z)", f"{-terms['recon'].mean().item():.2f} nats"))
    rows += [(k.replace("_", " "), f"{v.mean().item():.2f} nats") for k, v in terms.items() if k.startswith("kl")]
    rows.append(("active units (Cov_x E_q[z_j] > 0.01)", ", ".join(active_units(model, xt))))
    if not args.skip_iwae:
        t = time.perf_counter()
        nll = -model.log_prob(xt, iw_samples=args.k, batch_size=500, generator=g)
        rows.append((f"test NLL, IWAE k={args.k}, same images", f"**{nll.mean().item():.2f} +- {se(nll):.2f} nats** ({(time.perf_counter() - t) / 60:.1f} min)"))
    for n in (1, 64):
        model.sample(n, generator=torch.Generator().manual_seed(0))  # warm-up
        t = time.perf_counter()
        model.sample(n, generator=torch.Generator().manual_seed(0))
        dt = time.perf_counter() - t
        rows.append((f"sampling, batch {n} (cached)", f"{dt:.2f} s, {n / dt:.1f} images/s"))

    table = harness.Table(["quantity", "value"])
    table.add("model", f"pixelvae, latent_levels={model.config.latent_levels}, {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters: {model.config}")
    for name, value in rows:
        table.add(name, value)
    table.add("genlab", genlab.__version__)
    table.finish(machine)


if __name__ == "__main__":
    main()
