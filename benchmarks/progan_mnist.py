"""Benchmark: progressive growing (progan) on MNIST under a fixed CPU budget.

MNIST grows 7x7 -> 14x14 -> 28x28. A short timed calibration measures the cost of
one iteration in each phase; P is chosen so that the four growth phases of P
iterations each (stable 7x7, fade to 14x14, stable 14x14, fade to 28x28) take about
``--grow-share`` (default half) of the budget (``--minutes``, default 8); the last
phase, stable 28x28, then trains until the budget is spent. All through genlab's
Trainer (the machine is shared, so the calibration is only a guide). Reports the time
of each phase, then for 10,000 samples (from the Trainer's EMA weights and from the
raw weights) the share of each digit according to the shipped MNIST feature network's
classifier head and the FID against the 10,000 test images in that network's
features (``genlab.metrics.quality``; not Inception FID, so not comparable with
published numbers). Saves ``growth.png`` (one row per resolution, the same codes,
each row at the end of that resolution's stable phase) and ``growth.gif`` (a frame
at the end of every phase). ``--model dcgan`` runs the same budget and evaluation for
the ``dcgan`` model (32 channels, non-saturating, as benchmarks/dcgan_mnist.py),
trained until the budget is spent.
Not a test.

    python benchmarks/progan_mnist.py --data-dir ../shared/data                  # 8 minutes
    python benchmarks/progan_mnist.py --data-dir ../shared/data --model dcgan    # the same budget for dcgan
    python benchmarks/progan_mnist.py --data-dir ../shared/data --minutes 0.5    # smoke run
"""

from __future__ import annotations

import copy
import sys
import time

import torch

import harness
from genlab import registry
from genlab.metrics.features import get_feature_net
from genlab.metrics.quality import fid_from_features, generate_samples, reference_features
from genlab.train.trainer import Trainer
from genlab.viz.images import make_grid, save_gif, save_png

PHASES = ["stable 7x7", "fade 14x14", "stable 14x14", "fade 28x28", "stable 28x28"]


def iteration_seconds(model, batch: torch.Tensor, step: int, reps: int = 2) -> float:
    """Seconds of one iteration's losses and backward passes at ``step`` (best of ``reps`` after a warm-up)."""
    model.begin_iteration(step)
    best = float("inf")
    for i in range(reps + 1):
        t = time.perf_counter()
        for s in model.train_steps():
            model.zero_grad(set_to_none=True)
            s.loss({"x": batch, "y": None})["loss"].backward()
        if i:
            best = min(best, time.perf_counter() - t)
    model.zero_grad(set_to_none=True)
    return best


def evaluate(model, net, real_features, test, n: int, seed: int) -> dict:
    x = generate_samples(model, n, seed=seed)
    shares = torch.bincount(net.logits(x).argmax(1), minlength=10).double() / n
    return {"fid": fid_from_features(real_features, net.features(x).numpy()), "shares": shares, "x": x}


def ema_copy(trainer: Trainer):
    model = copy.deepcopy(trainer.model)
    if trainer.ema is not None:
        model.load_state_dict(trainer.ema.weights_like(model))
    return model.eval()


def build_parser():
    ap = harness.parser(
        __doc__, data_dir=harness.default_data_dir(), minutes=8.0, threads=1, seed=0, device="cpu", out=None
    )
    ap.add_argument("--model", default="progan", choices=["progan", "dcgan"])
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument(
        "--channels",
        type=int,
        default=None,
        help="progan: width at 7x7 (default the config's); dcgan: base width (default 32)",
    )
    ap.add_argument("--objective", default=None, help="progan: wgan-gp (default) or e.g. non-saturating")
    ap.add_argument(
        "--gp-weight", type=float, default=None, help="progan: lambda of the gradient penalty (default 10; 0 disables)"
    )
    ap.add_argument(
        "--grow-share", type=float, default=0.5, help="progan: share of the budget for the phases before the last"
    )
    ap.add_argument("--ema-decay", type=float, default=0.99, help="the paper uses 0.999 over far longer runs")
    ap.add_argument("--samples", type=int, default=10000)
    return ap


def main(argv=None) -> int:
    args, machine = harness.start(build_parser(), argv)
    train, test = harness.splits("mnist", args)
    out = harness.out_dir(args, f"{args.model}-mnist-")
    budget = args.minutes * 60
    print(
        f"# {args.model} on MNIST, {args.objective or 'default objective'}, gp weight "
        f"{args.gp_weight if args.gp_weight is not None else 'default'}, batch {args.batch_size}, budget "
        f"{args.minutes:g} min, EMA {args.ema_decay}, seed {args.seed}",
        flush=True,
    )
    net = get_feature_net("mnist")
    real = reference_features(test, net, split="test")["features"]
    # the Trainer stops every run at the budget (train.max_seconds), counted over all its fits
    tcfg = harness.train_config(args, args.model, seconds=budget, batch_size=args.batch_size, ema_decay=args.ema_decay)

    torch.manual_seed(args.seed)
    if args.model == "dcgan":
        model = registry.build(
            "dcgan", image_shape=(1, 28, 28), channels=args.channels or 32, objective="non-saturating"
        )
        trainer = Trainer(model, train, tcfg, out / "run")
        t = time.perf_counter()
        trainer.fit()
        print(f"trained {trainer.step} iterations in {(time.perf_counter() - t) / 60:.1f} min", flush=True)
    else:
        given = {"channels": args.channels, "objective": args.objective, "gp_weight": args.gp_weight}
        kw = {k: v for k, v in given.items() if v is not None}
        probe = registry.build("progan", image_shape=(1, 28, 28), stable_steps=1, fade_steps=1, **kw)
        batch = probe.prepare(train.images[: args.batch_size].float() / 255)
        per_phase = [iteration_seconds(probe, batch, s) for s in (0, 1, 2, 3)]
        p = max(1, int(args.grow_share * budget / 1.3 / sum(per_phase)))  # measured: Adam and the Trainer add ~30%
        print(
            "calibration (s/iteration): "
            + ", ".join(f"{n} {c:.3f}" for n, c in zip(PHASES, per_phase))
            + f" -> P = {p}",
            flush=True,
        )
        model = registry.build("progan", image_shape=(1, 28, 28), stable_steps=p, fade_steps=p, **kw)
        ends = [p, 2 * p, 3 * p, 4 * p, harness.UNTIL_BUDGET]  # the last phase: until the budget is spent
        trainer = Trainer(model, train, tcfg, out / "run")
        z = torch.randn(10, model.config.latent_dim, generator=torch.Generator().manual_seed(args.seed))
        frames, rows = [], []
        phases = harness.Table(["phase", "iterations", "minutes", "s/iteration"])
        for name, end in zip(PHASES, ends):
            start, t = trainer.step, time.perf_counter()
            trainer.fit(end)
            sec = time.perf_counter() - t
            n = trainer.step - start
            phases.add(name, n, f"{sec / 60:.2f}", f"{sec / max(n, 1):.3f}")
            snap = ema_copy(trainer).cpu().decode(z)
            frames.append(make_grid(snap, nrow=10))
            if name.startswith("stable"):
                rows.append(snap)
        save_png(make_grid(torch.cat(rows), nrow=10), out / "growth.png", scale=2)
        save_gif(frames, out / "growth.gif", duration_ms=700, scale=2)
        print(f"growth: {out / 'growth.png'} (rows 7x7, 14x14, 28x28), {out / 'growth.gif'}")

    results = {"EMA weights": evaluate(ema_copy(trainer).cpu(), net, real, test, args.samples, args.seed)}
    raw = copy.deepcopy(trainer.model).eval().cpu()
    results["raw weights"] = evaluate(raw, net, real, test, args.samples, args.seed)
    save_png(results["EMA weights"]["x"][:100], out / "samples.png", scale=2)
    table = harness.Table(
        ["weights", "FID", *map(str, range(10)), "min share"],
        title=f"{args.samples} samples vs {len(test)} test images, features of the "
        "shipped 'mnist' net; digit shares in %",
    )
    for k, r in results.items():
        s = r["shares"]
        table.add(k, f"{r['fid']:.2f}", *(f"{100 * v:.1f}" for v in s.tolist()), f"{100 * float(s.min()):.1f}%")
    table.finish(machine, f"samples: {out / 'samples.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
