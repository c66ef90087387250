"""Benchmark: ALI / BiGAN on MNIST under a fixed CPU budget; does E invert G?

Trains the ``ali`` model through genlab's Trainer for ``--minutes`` of ``--clock``
(CPU time by default; 6.5, so that the whole script takes about 8 minutes on one idle thread), then
judges it with genlab's shipped MNIST classifier (``genlab.metrics.features``,
"mnist"; its test accuracy is in ``weights/feature_nets.json``):

* reconstruction class agreement: the share of 2,000 test images x whose
  reconstruction G(E(x)) the classifier puts in x's true class (and in the class it
  gives x itself); for a 2-level model through z2 (the default) and through z1;
* samples: the share of each digit among 2,000 samples and the mean confidence;
* features: a linear probe (multinomial logistic regression, L-BFGS) and 1-nearest-
  neighbour accuracy on the encoder's posterior means E(x), against raw pixels and the
  same encoder before training, with ``--eval-train`` training images (default 10,000; BiGAN's
  Table 1 uses all 60,000 as neighbours) and the 10,000 test images; 1-NN under the Euclidean
  and under the cosine distance.

Saves reconstructions (originals left, reconstructions right) and samples as PNGs.
Not a test.

    python benchmarks/ali_mnist.py                                   # ALI, about 8 minutes
    python benchmarks/ali_mnist.py --encoder deterministic           # BiGAN
    python benchmarks/ali_mnist.py --levels 2                        # hierarchical
    python benchmarks/ali_mnist.py --cycle-weight 1 --eval-train 60000   # ALI + ALICE's cycle term (preset alice)
    python benchmarks/ali_mnist.py --minutes 0.3 --eval-train 2000   # smoke run
"""

from __future__ import annotations

import copy
import sys
import time

import torch
import torch.nn.functional as F

import harness
from genlab import registry
from genlab.metrics.features import get_feature_net
from genlab.train.trainer import Trainer
from genlab.viz.images import make_grid, save_png


def codes(model, x01: torch.Tensor, level: int | None = None) -> torch.Tensor:
    """Posterior means E(x) of images in [0, 1], flattened: (N, d)."""
    return torch.cat([model.encode(model.prepare(xb), level=level).flatten(1) for xb in x01.split(500)])


def linear_probe(train_x, train_y, test_x, test_y, iters: int = 200) -> float:
    """Multinomial logistic regression (standardised inputs, L2 1e-4) by L-BFGS; test accuracy."""
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    a, b = (train_x - mean) / std, (test_x - mean) / std
    w = torch.zeros(a.shape[1], 10, requires_grad=True)
    bias = torch.zeros(10, requires_grad=True)
    opt = torch.optim.LBFGS([w, bias], max_iter=iters, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(a @ w + bias, train_y) + 1e-4 * (w**2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return float(((b @ w + bias).argmax(1) == test_y).float().mean())


def nearest_neighbour(train_x, train_y, test_x, test_y, metric: str = "euclidean") -> float:
    """1-NN accuracy under the Euclidean or the cosine distance (1 - cosine similarity)."""
    if metric == "cosine":
        train_x, test_x = F.normalize(train_x, dim=1), F.normalize(test_x, dim=1)
        pred = torch.cat([train_y[(q @ train_x.T).argmax(1)] for q in test_x.split(1000)])
    else:
        pred = torch.cat([train_y[torch.cdist(q, train_x).argmin(1)] for q in test_x.split(1000)])
    return float((pred == test_y).float().mean())


def build_parser():
    ap = harness.parser(
        __doc__, data_dir=harness.default_data_dir(), minutes=6.5, threads=1, seed=0, device="cpu", out=None
    )
    ap.add_argument("--levels", type=int, default=1)
    ap.add_argument("--encoder", default="stochastic", choices=["stochastic", "deterministic"])
    ap.add_argument("--objective", default="non-saturating")
    ap.add_argument("--latent-dim", type=int, default=64)
    ap.add_argument("--channels", type=int, default=32)
    ap.add_argument("--hidden", type=int, default=256, help="width of D's MLPs")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--dropout", type=float, default=0.2, help="D's dropout (model.dropout)")
    ap.add_argument(
        "--cycle-weight",
        type=float,
        default=0.0,
        help="ALICE's explicit cycle term, weight of mean (x - G(E(x)))^2 in (G, E)'s loss "
        "(model.cycle_weight); 0: plain ALI/BiGAN",
    )
    ap.add_argument(
        "--lr", type=float, default=None, help="Adam's rate for every player (default: the registry's, 2e-4)"
    )
    ap.add_argument(
        "--betas", type=float, nargs=2, default=None, help="Adam's betas (default: the registry's, 0.5 0.999)"
    )
    ap.add_argument(
        "--eval-train", type=int, default=10000, help="training images for the probes (the neighbours of 1-NN)"
    )
    return ap


def main(argv=None) -> int:
    args, machine = harness.start(build_parser(), argv)
    train, test = harness.splits("mnist", args)
    out = harness.out_dir(args, "ali-mnist-")
    name = (
        {1: "ALI", 2: "hierarchical ALI"}[args.levels]
        if args.encoder == "stochastic"
        else {1: "BiGAN", 2: "hierarchical BiGAN"}[args.levels]
    )
    if args.cycle_weight > 0:
        name = f"{name} + cycle {args.cycle_weight:g}"
    optim = {k: v for k, v in (("lr", args.lr), ("betas", tuple(args.betas) if args.betas else None)) if v is not None}
    print(
        f"# {name} on MNIST: levels {args.levels}, encoder {args.encoder}, {args.objective}, latent {args.latent_dim}, "
        f"channels {args.channels}, hidden {args.hidden}, dropout {args.dropout:g}, cycle weight "
        f"{args.cycle_weight:g}, batch {args.batch_size}, {optim or 'registry Adam'}, budget "
        f"{args.minutes:g} {args.clock} min, seed {args.seed}",
        flush=True,
    )

    torch.manual_seed(args.seed)
    model = registry.build(
        "ali",
        image_shape=(1, 28, 28),
        latent_levels=args.levels,
        encoder=args.encoder,
        objective=args.objective,
        latent_dim=args.latent_dim,
        channels=args.channels,
        hidden_dim=args.hidden,
        dropout=args.dropout,
        cycle_weight=args.cycle_weight,
    )
    untrained = copy.deepcopy(model).eval()  # control: the same encoder before training
    tcfg = harness.train_config(
        args, "ali", seconds=args.minutes * 60, batch_size=args.batch_size, log_every=100, **optim
    )
    trainer = Trainer(model, train, tcfg, out / "run")
    t0 = time.perf_counter()
    trainer.fit()
    train_s = time.perf_counter() - t0
    print(
        f"trained {trainer.step} iterations in {train_s / 60:.1f} min of wall clock "
        f"({trainer.step / train_s:.2f} it/s), load average {harness.load_average()}",
        flush=True,
    )

    model.eval().cpu()
    clf = get_feature_net("mnist")
    g = torch.Generator().manual_seed(args.seed)
    idx = torch.randperm(len(test), generator=g)[:2000]
    x01, y = test.images[idx].float() / 255, test.labels[idx]
    pred_x = clf.logits(x01).argmax(1)
    rec_table = harness.Table(
        ["through", "true class %", "class of x %", "pixel L1"],
        title=f"{name}: reconstructions of 2,000 test images, judged by genlab's MNIST classifier "
        f"(its class for the originals: {100 * float((pred_x == y).float().mean()):.1f}% correct)",
    )
    for level in range(args.levels, 0, -1):
        rec = torch.cat([model.reconstruct(model.prepare(xb), level=level) for xb in x01.split(500)])
        pred = clf.logits(rec).argmax(1)
        l1 = float((rec - x01).abs().mean())
        rec_table.add(
            "z" if args.levels == 1 else f"z{level}",
            f"{100 * float((pred == y).float().mean()):.1f}",
            f"{100 * float((pred == pred_x).float().mean()):.1f}",
            f"{l1:.3f}",
        )
        pairs = torch.stack([x01[:32], rec[:32]], 1).flatten(0, 1)
        save_png(
            make_grid(pairs, nrow=8), out / f"reconstructions-{'z' if args.levels == 1 else f'z{level}'}.png", scale=2
        )

    samples = torch.cat([model.sample(500, generator=torch.Generator().manual_seed(args.seed + i)) for i in range(4)])
    probs = torch.softmax(clf.logits(samples), 1)
    shares = torch.bincount(probs.argmax(1), minlength=10).float() / len(samples)
    save_png(samples[:100], out / "samples.png", scale=2)
    share_table = harness.Table(
        ["digit", *map(str, range(10))], title="samples (2,000): share of each digit, by the classifier"
    )
    share_table.add("share %", *(f"{100 * s:.1f}" for s in shares.tolist()))
    share_table.finish(
        None,
        f"digits present: {int((shares > 0).sum())}/10, smallest share {100 * float(shares.min()):.1f}%, "
        f"mean classifier confidence {float(probs.max(1).values.mean()):.3f}",
    )

    n = args.eval_train
    tr_idx = torch.randperm(len(train), generator=g)[:n]
    tr01, tr_y = train.images[tr_idx].float() / 255, train.labels[tr_idx]
    te01, te_y = test.images.float() / 255, test.labels
    feats = {"raw pixels (784)": (tr01.flatten(1), te01.flatten(1))}
    for level in range(args.levels, 0, -1):
        a, b = codes(model, tr01, level), codes(model, te01, level)
        feats[f"E(x) {'z' if args.levels == 1 else f'z{level}'} ({a.shape[1]})"] = (a, b)
    a, b = codes(untrained, tr01), codes(untrained, te01)
    feats[f"untrained E(x) ({a.shape[1]})"] = (a, b)
    probe_table = harness.Table(
        ["features", "linear probe %", "1-NN % (Euclidean)", "1-NN % (cosine)"],
        title=f"features: {n} training images, the 10,000 test images",
    )
    for k, (a, b) in feats.items():
        probe_table.add(
            k,
            f"{100 * linear_probe(a, tr_y, b, te_y):.2f}",
            f"{100 * nearest_neighbour(a, tr_y, b, te_y):.2f}",
            f"{100 * nearest_neighbour(a, tr_y, b, te_y, 'cosine'):.2f}",
        )
    probe_table.finish(
        machine,
        f"files: {out}/reconstructions-*.png, {out}/samples.png; total {(time.perf_counter() - t0) / 60:.1f} min",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
