"""Benchmark: CycleGAN between MNIST and a known transformation of MNIST; is the digit kept?

Domain A is one half of the MNIST training digits, domain B the other half with a
fixed, known transformation (``--transform invert``: 255 - x; ``rot90``: a quarter
turn; ``flip``: a mirror), so the two domains never share a source image and no
pairing is ever seen (``unpaired:mnist,mnist+<transform>``, see
:mod:`genlab.data.unpaired`). The ``cyclegan`` model trains through genlab's Trainer
for ``--minutes`` of wall clock (``train.max_seconds``, constant learning rate).

Because the transformation T is known, the translations can be judged on held-out
MNIST test digits with the shipped MNIST classifier (``genlab.metrics.features``,
99.4% test accuracy):

* a2b: ``T^-1(G(a))`` should show the digit of ``a``;
* b2a: ``F(b)`` should show the digit behind ``b = T(a')``;
* pixel error against the truth: ``|G(a) - T(a)|`` and ``|F(T(a)) - a|`` (mean per pixel, [0, 1]);
* cycle L1: ``|F(G(a)) - a|`` and ``|G(F(b)) - b|`` (mean per pixel, [0, 1]).

"No translation" rows (the input passed through unchanged) show the floor. Saves a
figure: for each direction, rows input / translation / reconstruction. Not a test.
The paper reports FCN scores and AMT studies on photo data sets (Cityscapes, maps);
those are not comparable with anything measured here.

    python benchmarks/cyclegan_mnist.py --data-dir ../shared/data                  # 8 minutes, 1 thread
    python benchmarks/cyclegan_mnist.py --data-dir ../shared/data --minutes 0.3    # smoke run
"""

from __future__ import annotations

import json
import sys
import time

import torch

import harness
from genlab import registry
from genlab.config import from_dict, to_dict
from genlab.data.unpaired import load_unpaired, transform, untransform
from genlab.metrics.features import get_feature_net
from genlab.train.trainer import Trainer
from genlab.viz.images import make_grid, save_png
from genlab.viz.translation import translation_grid


def accuracy(net, x01: torch.Tensor, labels: torch.Tensor) -> float:
    return float((net.logits(x01).argmax(1) == labels).double().mean())


def build_parser():
    ap = harness.parser(
        __doc__, data_dir=harness.default_data_dir(), minutes=8.0, threads=1, seed=0, device="cpu", out=None
    )
    ap.add_argument("--transform", default="invert", choices=["invert", "rot90", "rot270", "flip"])
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument(
        "--set", action="append", default=[], metavar="FIELD=VALUE", help="model config field, e.g. g_blocks=6"
    )
    ap.add_argument("--eval", type=int, default=2000, help="held-out test digits per direction")
    return ap


def main(argv=None) -> int:
    args, machine = harness.start(build_parser(), argv)
    t_name = args.transform
    train = load_unpaired("mnist", f"mnist+{t_name}", "train", args.data_dir, seed=args.seed)
    test = load_unpaired("mnist", f"mnist+{t_name}", "test", args.data_dir, seed=args.seed)
    out = harness.out_dir(args, "cyclegan-mnist-")
    config_cls = registry.get("cyclegan")[0]
    fields = {k: json.loads(v) for k, v in (item.split("=", 1) for item in args.set)}
    config = from_dict(config_cls, {**to_dict(config_cls()), **fields, "image_shape": list(train.shape)}, "model")
    torch.manual_seed(args.seed)
    model = registry.build("cyclegan", config)
    n_params = sum(p.numel() for p in model.parameters())
    print(
        f"# CycleGAN, MNIST <-> MNIST+{t_name} (disjoint halves of the training set, {len(train)} "
        f"each), batch {args.batch_size}, budget {args.minutes:g} min, seed {args.seed}, "
        f"{n_params / 1e6:.2f} M parameters, config {model.config}",
        flush=True,
    )

    trainer = Trainer(
        model,
        train,
        harness.train_config(args, "cyclegan", seconds=args.minutes * 60, batch_size=args.batch_size, log_every=100),
        out / "run",
    )
    t0 = time.perf_counter()
    trainer.fit()
    train_s = time.perf_counter() - t0
    steps = trainer.step
    print(
        f"trained {steps} iterations ({steps * args.batch_size / len(train):.2f} epochs) in {train_s / 60:.1f} min, "
        f"{steps * args.batch_size / train_s:.0f} image pairs/s; run: {out / 'run'}",
        flush=True,
    )

    model.eval().cpu()
    net = get_feature_net("mnist")
    n = min(args.eval, len(test))
    a, ya = test.a.images[:n].float() / 255, test.a.labels[:n]  # held-out digits (domain A half of the test set)
    b, yb = test.b.images[:n].float() / 255, test.b.labels[:n]  # held-out transformed digits (the other half)

    def undo(x01):  # T^-1 on [0, 1] images
        return untransform((x01 * 255).round().to(torch.uint8), t_name).float() / 255

    def do(x01):  # T on [0, 1] images
        return transform((x01 * 255).round().to(torch.uint8), t_name).float() / 255

    with torch.no_grad():
        g_a, f_b = model.translate(a, "a2b"), model.translate(b, "b2a")
        cyc_a = float((model.translate(g_a, "b2a") - a).abs().mean())
        cyc_b = float((model.translate(f_b, "a2b") - b).abs().mean())
        true_b = do(a)  # the transformed counterpart of each held-out a: the right answer for G(a)
        err_ab = float((g_a - true_b).abs().mean())
        err_ba = float((model.translate(true_b, "b2a") - a).abs().mean())
    rows = [
        ("real test digits (classifier)", accuracy(net, a, ya), float("nan"), float("nan")),
        ("a2b: T^-1(G(a))", accuracy(net, undo(g_a), ya), err_ab, cyc_a),
        ("b2a: F(b)", accuracy(net, f_b, yb), err_ba, cyc_b),
        ("no translation a2b: T^-1(a)", accuracy(net, undo(a), ya), float((a - true_b).abs().mean()), float("nan")),
        ("no translation b2a: b", accuracy(net, b, yb), float((true_b - a).abs().mean()), float("nan")),
    ]
    table = harness.Table(
        [f"translation (judged on {n} held-out test digits)", "class kept", "L1 to the true image", "cycle L1"]
    )
    fmt = lambda v: "-" if v != v else f"{v:.3f}"  # noqa: E731
    for name, acc, err, cyc in rows:
        table.add(name, f"{100 * acc:.1f}%", fmt(err), fmt(cyc))
    k = 12
    top, bottom = translation_grid(model, a[:k], "a2b"), translation_grid(model, b[:k], "b2a")
    fig = save_png(make_grid(torch.stack([top, bottom]), nrow=1, padding=6), out / "translations.png", scale=3)
    table.finish(machine, f"figure (a2b above b2a; rows: input, translation, reconstruction): {fig}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
