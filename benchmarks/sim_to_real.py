"""Benchmark: sim-to-real with CycleGAN (CyCADA-style pixel-level adaptation), MNIST -> MNIST-M.

"Simulation" = clean MNIST digits with labels; "real" = MNIST-M-style digits
(:mod:`genlab.data.mnistm`: each digit blended with a natural-image patch from the
CIFAR-10 test JPEGs, ``|patch - digit|`` per RGB channel), whose labels the adapted
pipeline never sees. The MNIST training set is split into disjoint halves
(``unpaired:mnist,mnist+mnistm``): A = 30,000 clean digits (labelled), B = the other
30,000 as real-style digits (unlabelled for the adaptation). Every accuracy is
measured on the 10,000 real-style **test** digits (MNIST's test digits, with patches
from CIFAR files that no training digit used).

Steps, all in one process, each with its share of one ``--minutes`` budget (CPU time
by default, ``--clock``):

1. **clean only**: a small CNN (``genlab.metrics.features.SmallConvNet``) trained on the
   clean digits A, measured on the real-style test digits (the domain gap).
2. **CycleGAN** between A and B (genlab's ``cyclegan`` through the Trainer).
3. The adaptation, ``--method``:
   ``to-real`` (CyCADA): translate the clean training digits into the real style with
   G: A -> B and train the same CNN, for the same budget, on ``G(a)`` with A's labels;
   ``to-clean``: translate the real-style test digits into the clean style with
   F: B -> A and classify them with the clean-only CNN of step 1. Both are measured;
   the ``gain`` line uses ``--method``.
4. **upper bound**: the same CNN, same budget, trained on B with its labels.

The CNN sees every domain through the same input (``--channels 1``: luma, the default,
or 3: RGB) and is trained the same way (Adam, batch 128, ``--classifier-minutes`` of
the budget each, random 2-pixel shifts); only its training images differ. Prints a
table and a figure of translations (rows: real-style test digits in RGB, as the
pipeline sees them, F of them; clean training digits, G of them). The last line is
``gain: +X.X points`` (adapted minus clean-only accuracy on the real-style test
digits). Not a test.

    # in colour, 3 seeds, 1 thread:
    python benchmarks/sim_to_real.py --data-dir ../shared/data --minutes 30 --channels 3 --seeds 3
    python benchmarks/sim_to_real.py --data-dir ../shared/data --minutes 1 --eval 500    # smoke run
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

import harness
from genlab import registry
from genlab.config import DataConfig, RunConfig, from_dict, to_dict
from genlab.data import ImageDataset
from genlab.data.unpaired import load_domain, load_unpaired
from genlab.metrics.features import SmallConvNet
from genlab.train.trainer import Trainer
from genlab.viz.images import make_grid, save_png

#: the CycleGAN of the demo (genlab's defaults but these; --set overrides)
CYCLEGAN = {"g_channels": 16, "g_blocks": 3, "lambda_id": 0.5}


def build_parser():
    ap = harness.parser(
        __doc__, data_dir=harness.default_data_dir(), minutes=30.0, threads=1, seed=0, device="cpu", out=None
    )
    ap.add_argument(
        "--method",
        choices=("to-real", "to-clean"),
        default="to-real",
        help="the adaptation the gain line reports (default %(default)s)",
    )
    ap.add_argument(
        "--channels",
        type=int,
        choices=(1, 3),
        default=1,
        help="1: every domain as luma (grey), 3: RGB (default %(default)s)",
    )
    ap.add_argument(
        "--classifier-minutes",
        type=float,
        default=None,
        help="budget of each classifier (default: 8%% of --minutes); the CycleGAN gets what is left",
    )
    ap.add_argument("--batch-size", type=int, default=32, help="CycleGAN batch (default %(default)s)")
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help=f"CycleGAN config field (defaults here: {CYCLEGAN})",
    )
    ap.add_argument(
        "--figure", default=None, help="also copy the translation figure here (e.g. docs/sim-to-real-mnistm.png)"
    )
    ap.add_argument(
        "--seeds",
        type=int,
        default=1,
        help="runs with seeds --seed, --seed + 1, ...; the gain line is their mean (default %(default)s)",
    )
    ap.add_argument(
        "--eval", type=int, default=10000, help="real-style test digits measured (default: all %(default)s)"
    )
    return ap


def to_input(images: torch.Tensor, channels: int) -> torch.Tensor:
    """uint8 or [0, 1] float images (N, C, H, W) -> float (N, channels, H, W) in [0, 1] (luma for 1 channel)."""
    x = images.float() / 255 if images.dtype == torch.uint8 else images.float()
    if x.shape[1] == channels:
        return x
    if channels == 3:
        return x.expand(-1, 3, -1, -1)
    return (x * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)


def shift(x: torch.Tensor, generator: torch.Generator, pixels: int = 2) -> torch.Tensor:
    """Each image moved by a random offset in ``-pixels..pixels`` (zero-filled): (N, C, H, W) -> same."""
    n, _, h, w = x.shape
    pad = F.pad(x, (pixels,) * 4)
    dy, dx = torch.randint(0, 2 * pixels + 1, (2, n), generator=generator)
    rows = (dy[:, None] + torch.arange(h))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w))[:, None, None, :]
    return pad[torch.arange(n)[:, None, None, None], torch.arange(x.shape[1])[None, :, None, None], rows, cols]


def train_classifier(
    x01: torch.Tensor, labels: torch.Tensor, seconds: float, clock, seed: int, batch: int = 128
) -> tuple[SmallConvNet, int]:
    """SmallConvNet trained on ``x01`` (N, C, H, W) in [0, 1] with ``labels`` for ``seconds`` of ``clock``:
    (net in eval mode, steps)."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    net = SmallConvNet(in_channels=x01.shape[1])
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    steps = 0
    for steps in harness.until(seconds, clock):
        idx = torch.randint(0, len(x01), (batch,), generator=g)
        loss = F.cross_entropy(net(shift(x01[idx], g)), labels[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return net.eval(), steps + 1


@torch.no_grad()
def accuracy(net: SmallConvNet, x01: torch.Tensor, labels: torch.Tensor, batch: int = 1000) -> float:
    hits = sum(
        int((net(x01[i : i + batch]).argmax(1) == labels[i : i + batch]).sum()) for i in range(0, len(x01), batch)
    )
    return hits / len(x01)


def translate(model, x01: torch.Tensor, direction: str, batch: int = 500) -> torch.Tensor:
    return torch.cat([model.translate(x01[i : i + batch], direction) for i in range(0, len(x01), batch)])


def run_seed(args, machine, seed: int, out: Path) -> dict:
    """One whole sim-to-real run with ``seed`` (data order, networks, CycleGAN), its files in ``out``:
    the accuracies (fractions), the CycleGAN's iterations and the run's budget-clock minutes."""
    clock = harness.clock_of(args)
    t_start = clock()
    budget = args.minutes * 60
    cls_s = (args.classifier_minutes * 60) if args.classifier_minutes is not None else 0.08 * budget
    c = args.channels

    train = load_unpaired(
        "mnist", "mnist+mnistm", "train", args.data_dir, seed=seed
    )  # disjoint halves: A clean, B real-style
    test = load_domain("mnist+mnistm", "test", args.data_dir, seed=seed)
    n_eval = min(args.eval, len(test))
    x_test, y_test = to_input(test.images[:n_eval], c), test.labels[:n_eval]
    x_a, y_a = to_input(train.a.images, c), train.a.labels
    x_b, y_b = to_input(train.b.images, c), train.b.labels
    print(
        f"# sim-to-real: A = {len(train)} clean MNIST digits, B = the other {len(train)} as MNIST-M-style digits "
        f"(patches: CIFAR-10 test JPEGs), test = {n_eval} real-style test digits; {c} channel(s); budget "
        f"{args.minutes:g} {args.clock}-minutes, classifiers {cls_s / 60:.2f} min each; seed {seed}",
        flush=True,
    )

    table = harness.Table(
        ["classifier trained on", "labels used", "accuracy on real-style test digits", "classifier steps"]
    )
    clean, steps = train_classifier(x_a, y_a, cls_s, clock, seed)
    acc_clean = accuracy(clean, x_test, y_test)
    table.add("clean digits (A) only", "A", f"{100 * acc_clean:.1f}%", steps)

    # the CycleGAN gets what is left after the two classifiers still to train and the translations
    # (estimated 5% of the budget)
    gan_s = budget - (clock() - t_start) - 2 * cls_s - 0.05 * budget
    gan_data = train
    if c == 1:  # both domains as luma, uint8 (N, 1 + 1, H, W)
        grey = [
            ImageDataset((x * 255).round().to(torch.uint8), d.labels, name=d.name)
            for x, d in ((x_a, train.a), (x_b, train.b))
        ]
        gan_data = dataclasses.replace(
            train, images=torch.cat([grey[0].images, grey[1].images], 1), a=grey[0], b=grey[1]
        )
    config_cls = registry.get("cyclegan")[0]
    fields = {**CYCLEGAN, **{k: json.loads(v) for k, v in (item.split("=", 1) for item in args.set)}}
    config = from_dict(config_cls, {**to_dict(config_cls()), **fields, "image_shape": list(gan_data.shape)}, "model")
    torch.manual_seed(seed)
    model = registry.build("cyclegan", config)
    train_cfg = harness.train_config(
        args, "cyclegan", seconds=max(gan_s, 1.0), batch_size=args.batch_size, log_every=200, seed=seed
    )
    run_cfg = RunConfig("cyclegan", config, train_cfg, DataConfig(name="unpaired:mnist,mnist+mnistm", channels=c))
    trainer = Trainer(model, gan_data, train_cfg, out / "run", run_config=run_cfg)
    t0 = clock()
    trainer.fit()
    print(
        f"CycleGAN ({sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters, {model.config}): "
        f"{trainer.step} iterations of {args.batch_size} in {(clock() - t0) / 60:.1f} {args.clock}-min",
        flush=True,
    )
    model.eval().cpu()

    g_a = translate(model, x_a, "a2b")  # clean training digits in the real style (CyCADA)
    adapted, steps = train_classifier(g_a, y_a, cls_s, clock, seed)
    acc_real = accuracy(adapted, x_test, y_test)
    table.add("G(A): clean digits translated to the real style", "A", f"{100 * acc_real:.1f}%", steps)
    f_test = translate(model, x_test, "b2a")  # real-style test digits in the clean style
    acc_clean_f = accuracy(clean, f_test, y_test)
    table.add("clean digits (A) only, tested on F(test)", "A", f"{100 * acc_clean_f:.1f}%", "(the first one)")
    upper, steps = train_classifier(x_b, y_b, cls_s, clock, seed)
    acc_upper = accuracy(upper, x_test, y_test)
    table.add("real-style digits (B) with their labels: upper bound", "B", f"{100 * acc_upper:.1f}%", steps)

    k = 12
    rgb = test.images[:k].float() / 255  # the real-style digits as made (RGB), above what the pipeline saw of them
    rows = torch.cat([rgb] + [to_input(r, 3) for r in (x_test[:k], f_test[:k], x_a[:k], g_a[:k])])
    fig = save_png(make_grid(rows, nrow=k, padding=2), out / "translations.png", scale=2)
    used = clock() - t_start
    table.finish(
        machine,
        f"CycleGAN {trainer.step} iterations; whole run {used / 60:.1f} {args.clock}-minutes",
        f"figure (rows: real-style test digits (RGB), as the pipeline sees them ({c} channel(s)), F of them; "
        f"clean training digits, G of them): {fig}",
    )
    acc = acc_real if args.method == "to-real" else acc_clean_f
    print(f"seed {seed} gain: {100 * (acc - acc_clean):+.1f} points", flush=True)
    return {
        "seed": seed,
        "clean_only": acc_clean,
        "to_real": acc_real,
        "to_clean": acc_clean_f,
        "upper_bound": acc_upper,
        "gain": acc - acc_clean,
        "cyclegan_iterations": trainer.step,
        "minutes": used / 60,
        "figure": str(fig),
    }


def summarize(results: list[dict]) -> dict:
    """Mean and sample standard deviation (0 for one seed) of each accuracy and the gain over ``results``."""
    keys = ("clean_only", "to_real", "to_clean", "upper_bound", "gain")
    out = {}
    for key in keys:
        v = torch.tensor([r[key] for r in results], dtype=torch.float64)
        out[key] = {"mean": float(v.mean()), "std": float(v.std()) if len(v) > 1 else 0.0}
    return out


def main(argv=None) -> int:
    args, machine = harness.start(build_parser(), argv)
    out = harness.out_dir(args, "sim-to-real-")
    results = [run_seed(args, machine, args.seed + i, out / f"seed-{args.seed + i}") for i in range(args.seeds)]
    summary = summarize(results)
    if args.figure:
        Path(args.figure).write_bytes(Path(results[0]["figure"]).read_bytes())
    table = harness.Table(
        ["seed", "clean only", f"adapted ({args.method})", "upper bound", "gain (points)", "CycleGAN iterations"]
    )
    for r in results:
        acc = r["to_real"] if args.method == "to-real" else r["to_clean"]
        table.add(
            r["seed"],
            f"{100 * r['clean_only']:.1f}%",
            f"{100 * acc:.1f}%",
            f"{100 * r['upper_bound']:.1f}%",
            f"{100 * r['gain']:+.1f}",
            r["cyclegan_iterations"],
        )
    g = summary["gain"]
    table.finish(
        machine, f"{args.seeds} seed(s), {args.minutes:g} {args.clock}-minutes each, {args.channels} channel(s)"
    )
    doc = {
        "method": args.method,
        "channels": args.channels,
        "minutes_per_seed": args.minutes,
        "clock": args.clock,
        "seeds": results,
        "summary": summary,
    }
    (out / "summary.json").write_text(json.dumps(doc, indent=2))
    print(
        f"gain: {100 * g['mean']:+.1f} points"
        + (f" (sd {100 * g['std']:.1f} over {args.seeds} seeds)" if args.seeds > 1 else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
