"""Benchmark: mode coverage of the GAN objectives on ring8 (or grid25).

For each objective, the same MLP GAN, seed and step budget; reports the modes
covered (a mode counts when it holds >= 1/4 of its fair share of samples as
high-quality samples) and the fraction of high-quality samples (within 3 std of a
mode; real data scores 0.989 in 2-D). Prints a table with the machine. Not a test.

    python benchmarks/gan_ring8.py                 # ~ a few CPU minutes
    python benchmarks/gan_ring8.py --data grid25 --steps 8000 --plots runs/ring8-bench

The loop mimics the genlab Trainer (each step: freeze the other player, zero
grads, loss, backward, Adam step with the step's own lr/betas and optimiser)
because the Trainer reads uint8 images; it will switch to the Trainer once that
accepts float point data.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import torch

from genlab import registry
from genlab.data.toy2d import Toy2D, mode_stats

OBJECTIVES = ("minimax", "non-saturating", "least-squares", "hinge")


def minimal_fit(model, data: torch.Tensor, steps: int, batch_size: int, seed: int = 0) -> None:
    """Run ``steps`` iterations of ``model.train_steps()`` on rows of ``data`` like the Trainer."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    plan = model.train_steps()
    opts = {s.name: torch.optim.Adam(s.parameters(), lr=s.lr, betas=s.betas) for s in plan}
    owned = {s.name: {id(p) for p in s.parameters()} for s in plan}
    model.train()
    for _ in range(steps):
        batch = None
        for s in plan:
            if batch is None or s.new_batch:
                batch = {"x": model.prepare(data[torch.randint(len(data), (batch_size,), generator=g)]), "y": None}
            for p in model.parameters():
                p.requires_grad_(id(p) in owned[s.name])
            opts[s.name].zero_grad(set_to_none=True)
            s.loss(batch)["loss"].backward()
            opts[s.name].step()
    for p in model.parameters():
        p.requires_grad_(True)


def machine() -> str:
    return f"{platform.platform()}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs (torch threads {torch.get_num_threads()}), torch {torch.__version__}, python {platform.python_version()}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="ring8", choices=["ring8", "grid25"])
    ap.add_argument("--objectives", default=",".join(OBJECTIVES))
    ap.add_argument("--steps", type=int, default=6000)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--depth", type=int, default=3)
    ap.add_argument("--latent-dim", type=int, default=8)
    ap.add_argument("--samples", type=int, default=2500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--plots", default=None, help="folder for real-vs-generated PNGs with D's surface")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    data = Toy2D(args.data).images
    print(f"# GAN objectives on {args.data}: MLP {args.depth}x{args.hidden}, z dim {args.latent_dim}, "
          f"{args.steps} iterations of 1 D + 1 G step, batch {args.batch_size}, Adam lr {args.lr} betas (0.5, 0.999), seed {args.seed}")
    print(f"# machine: {machine()}")
    print(f"{'objective':<16}{'modes':>8}{'high-quality':>14}{'seconds':>10}")
    for objective in args.objectives.split(","):
        torch.manual_seed(args.seed)
        model = registry.build("gan", image_shape=(2,), objective=objective, hidden=args.hidden, depth=args.depth,
                               latent_dim=args.latent_dim, lr_g=args.lr, lr_d=args.lr, collapse_patience=0)
        t0 = time.perf_counter()
        minimal_fit(model, data, args.steps, args.batch_size, args.seed)
        secs = time.perf_counter() - t0
        pts = model.sample(args.samples, generator=torch.Generator().manual_seed(args.seed + 1))
        st = mode_stats(pts, args.data)
        print(f"{objective:<16}{st['modes']:>5}/{st['num_modes']:<2}{st['high_quality']:>14.3f}{secs:>10.0f}", flush=True)
        if args.plots:
            from genlab.viz.toy2d import plot_gan_toy2d

            plot_gan_toy2d(model, os.path.join(args.plots, f"{args.data}-{objective}.png"), data=args.data,
                           generator=torch.Generator().manual_seed(args.seed + 1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
