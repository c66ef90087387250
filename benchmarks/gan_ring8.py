"""Benchmark: mode coverage of the GAN objectives on ring8 (or grid25).

For each objective and seed, the same MLP GAN and step budget, trained by the real
genlab Trainer (``genlab.train.train("gan", data="ring8", overrides=...)``, exactly what
``genlab train gan --data ring8 --set ...`` runs) with the point-data preset
:data:`genlab.models.gan.POINT_PRESET` that the registry applies to ring8 and grid25.
Reports the modes covered (a mode counts when it holds >= 1/4 of its fair share of
samples as high-quality samples) and the fraction of high-quality samples (within 3
std of a mode; real data scores 0.989 in 2-D), per seed. Prints a table with the
machine. Not a test.

    python benchmarks/gan_ring8.py                          # 4 objectives x 1 seed, ~ a few CPU minutes each
    python benchmarks/gan_ring8.py --seeds 0,1,2            # the 3-seed table
    python benchmarks/gan_ring8.py --objectives hinge --set model.penalty=none --plots runs/ring8-bench

The same run from the command line (one objective; the preset comes with the data)::

    genlab train gan --data ring8 --set model.objective=least-squares
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time

import torch

import genlab
import harness
from genlab.config import RunConfig
from genlab.data.toy2d import Toy2D, mode_stats
from genlab.models.gan import POINT_PRESET
from genlab.registry import build_run_config
from genlab.train import train

OBJECTIVES = ("minimax", "non-saturating", "least-squares", "hinge")


def run_config(data: str, objective: str, seed: int, steps: int | None, extra: list[str]) -> RunConfig:
    sets = [
        f'model.objective="{objective}"',
        f"train.seed={seed}",
        'train.device="cpu"',
        "train.progress=false",
        "train.log_every=0",
        "train.sample_every=0",
        "train.checkpoint_every=0",
    ]
    if steps is not None:  # the cosine schedule ends with the run
        sets += [f"train.steps={steps}", f"train.schedule_steps={steps}"]
    return build_run_config("gan", data=data, overrides=sets + list(extra))  # the point preset first


def build_parser():
    ap = harness.parser(__doc__, threads=1)
    ap.add_argument("--data", default="ring8", choices=["ring8", "grid25"])
    ap.add_argument("--objectives", default=",".join(OBJECTIVES))
    ap.add_argument("--seeds", default="0", help="comma-separated training seeds, e.g. 0,1,2")
    ap.add_argument("--steps", type=int, default=None, help="iterations (default: the preset's train.steps)")
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra config override after the preset (repeatable)",
    )
    ap.add_argument("--samples", type=int, default=2500)
    ap.add_argument("--plots", default=None, help="folder for real-vs-generated PNGs with D's surface")
    return ap


def main(argv=None) -> int:
    args, machine = harness.start(build_parser(), argv)
    dataset = Toy2D(args.data)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    probe = run_config(args.data, OBJECTIVES[0], seeds[0], args.steps, args.set)
    m, t = probe.model, probe.train
    print(
        f"# GAN objectives on {args.data} with the genlab Trainer: MLP "
        f"{m.hidden_layers}x{m.hidden_dim} (G ReLU, D LeakyReLU 0.2), z dim {m.latent_dim}, {t.steps} "
        f"iterations of {m.d_steps} D + 1 G step, batch {t.batch_size}, "
        f"Adam lr G {t.lr_of('generator'):g} / D {t.lr_of('discriminator'):g} betas {t.betas_of('discriminator')} "
        f"({t.lr_schedule} schedule), penalty {m.penalty} ({m.penalty_weight:g}), "
        f"spectral norm {m.spectral_norm}, EMA {t.ema_decay:g}"
    )
    print(
        f"# preset: {' '.join(f'--set {k}={json.dumps(v)}' for k, v in POINT_PRESET.items())} "
        f"{' '.join('--set ' + s for s in args.set)}"
    )
    table = harness.Table(["objective", "seed", "modes", "high-quality", "seconds"])
    for objective in args.objectives.split(","):
        for seed in seeds:
            cfg = run_config(args.data, objective, seed, args.steps, args.set)
            with tempfile.TemporaryDirectory() as tmp:
                t0 = time.perf_counter()
                run = train(cfg, out_dir=os.path.join(tmp, "run"), dataset=dataset)
                secs = time.perf_counter() - t0
                model = genlab.load(run)  # the final weights (the EMA copy when train.ema_decay > 0)
            pts = model.sample(args.samples, generator=torch.Generator().manual_seed(seed + 1))
            st = mode_stats(pts, args.data)
            table.add(objective, seed, f"{st['modes']}/{st['num_modes']}", f"{st['high_quality']:.3f}", f"{secs:.0f}")
            if args.plots:
                from genlab.viz.plots import plot_gan_toy2d

                plot_gan_toy2d(
                    model,
                    os.path.join(args.plots, f"{args.data}-{objective}-seed{seed}.png"),
                    data=args.data,
                    generator=torch.Generator().manual_seed(seed + 1),
                )
    table.finish(machine)
    return 0


if __name__ == "__main__":
    sys.exit(main())
