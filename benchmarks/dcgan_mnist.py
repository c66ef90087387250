"""Benchmark: DCGAN on MNIST under a fixed CPU budget; which digits does it make?

Trains the ``dcgan`` model through genlab's Trainer for ``--minutes`` (default 20;
stopped by ``train.max_seconds`` in the clock of ``--clock``, CPU time by default; a short
calibration run spaces the sample grids of the training movie), then judges ``--samples`` samples by the
protocol of ``ddpm_mnist.py`` and ``flow_matching_mnist.py`` (``harness.sample_quality``):
FID/KID, precision/recall and density/coverage in the features of genlab's shipped
MNIST classifier against the 10,000 test images, and the share of each digit by that
classifier. Saves a sample grid, results.json and the training movie. Target: all 10
digits present, none under 5%. Not a test.

    python benchmarks/dcgan_mnist.py --data-dir ../shared/data            # 20 minutes
    python benchmarks/dcgan_mnist.py --data-dir ../shared/data --minutes 0.5   # smoke run
"""

from __future__ import annotations

import sys
import time

import torch

import harness
from genlab import registry
from genlab.train.trainer import Trainer
from genlab.viz.gan import training_movie


def build_parser():
    ap = harness.parser(
        __doc__, data_dir=harness.default_data_dir(), minutes=20.0, threads=2, seed=0, device="cpu", out=None
    )
    ap.add_argument("--objective", default="non-saturating")
    ap.add_argument("--channels", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--samples", type=int, default=2000)
    return ap


def main(argv=None) -> int:
    args, machine = harness.start(build_parser(), argv)
    train, test = harness.splits("mnist", args)
    out = harness.out_dir(args, "dcgan-mnist-")
    print(
        f"# DCGAN on MNIST: {args.objective}, channels {args.channels}, batch {args.batch_size}, budget "
        f"{args.minutes:g} min, seed {args.seed}",
        flush=True,
    )

    def build():
        return registry.build("dcgan", image_shape=(1, 28, 28), channels=args.channels, objective=args.objective)

    calib = Trainer(
        build(), train, harness.train_config(args, "dcgan", steps=25, batch_size=args.batch_size), out / "calib"
    )
    per_step = harness.seconds_per_step(calib, timed=20, warm=5)
    steps = harness.steps_for(args.minutes * 60, per_step)
    print(
        f"calibration: {1 / per_step:.1f} iterations/s -> about {steps} iterations in {args.minutes:g} min", flush=True
    )

    torch.manual_seed(args.seed)
    model = build()
    # The budget (train.max_seconds, in --clock) stops the run; the calibrated step count only spaces the
    # sample grids and logs (on a busy machine a step costs more CPU time than in the calibration).
    cfg = harness.train_config(
        args,
        "dcgan",
        seconds=args.minutes * 60,
        batch_size=args.batch_size,
        sample_every=max(1, steps // 20),
        log_every=max(1, steps // 10),
    )
    t, c = time.perf_counter(), time.process_time()
    trainer = Trainer(model, train, cfg, out / "run")
    trainer.fit()
    steps = trainer.step
    train_s, train_cpu = time.perf_counter() - t, time.process_time() - c

    model.eval().cpu()
    q = harness.sample_quality(model, test, samples=args.samples, seed=args.seed, out=out)
    movie = training_movie(out / "run")
    print(
        f"trained {steps} iterations in {train_cpu / 60:.1f} CPU-min, {train_s / 60:.1f} "
        f"wall-min; samples: {q['png']}; movie: {movie}"
    )
    print(harness.quality_line(q), flush=True)
    table = harness.Table(["digit", *map(str, range(10))])
    table.add("share %", *(f"{100 * s:.1f}" for s in q["shares"]))
    ok = min(q["shares"]) >= 0.05
    table.finish(
        machine,
        f"digits present: {sum(s > 0 for s in q['shares'])}/10, smallest share {100 * min(q['shares']):.1f}%, "
        f"mean classifier confidence {q['confidence']:.3f}; target (all 10, none < 5%): {'met' if ok else 'NOT met'}",
    )
    harness.write_json(
        out / "results.json",
        {
            "model": "dcgan",
            "objective": args.objective,
            "channels": args.channels,
            "steps": steps,
            "batch_size": args.batch_size,
            "train_cpu_minutes": train_cpu / 60,
            "train_wall_minutes": train_s / 60,
            "quality": q,
            "machine": machine.line(),
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
