"""Benchmark: the VAE with a diagonal Gaussian posterior vs the same VAE with an
inverse autoregressive flow posterior (Kingma et al. 2016, arXiv:1606.04934),
on binarised MNIST, each trained for the same budget of CPU minutes.

Not a test: it prints a table. Each arm is ``benchmarks/vae_mnist.py``'s run
(the same data, preset, ``--set`` overrides, budget-fitted cosine schedule and
scoring); the IAF arm adds ``model.posterior=iaf`` with ``--iaf-steps`` steps
(AR-NN width ``--iaf-hidden``, context ``--iaf-context``). Reported on the
first ``--test-images`` test images (all 10,000 by default, binarised once with
the seed of ``vae_mnist.py``, so a run of one arm here and one there score the
same images):

* -ELBO, one sample per image (for the IAF the KL term is the one-sample
  estimate log q(z|x) - log p(z)), an upper bound on the NLL in expectation;
* the IWAE NLL with k = ``--k`` importance samples drawn from each model's own
  posterior (the flow density for the IAF), a tighter upper bound.

Paper anchor (context only): with a ResNet VAE on *statically* binarised MNIST,
IAF improved the test NLL from about 81.1 nats (diagonal Gaussian) to
79.1-79.9 nats.

    python benchmarks/vae_iaf_mnist.py --data-dir ../shared/data --preset mnist-10min --minutes 10 --posteriors iaf
    # both arms, a quick look:
    python benchmarks/vae_iaf_mnist.py --data-dir ../shared/data --minutes 1 --k 10 --test-images 500
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

import genlab
import harness
import vae_mnist
from vae_mnist import build_parser as vae_parser


def build_parser():
    ap = vae_parser(__doc__, minutes=10.0)
    ap.add_argument("--posteriors", default="gaussian,iaf", help="comma-separated arms: gaussian, iaf")
    ap.add_argument("--iaf-steps", type=int, default=2)
    ap.add_argument("--iaf-hidden", type=int, default=256)
    ap.add_argument("--iaf-context", type=int, default=64)
    return ap


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    arms = [a.strip() for a in args.posteriors.split(",") if a.strip()]
    if not arms or set(arms) - {"gaussian", "iaf"}:
        raise SystemExit(f"--posteriors must list 'gaussian' and/or 'iaf', got {args.posteriors!r}")
    machine = harness.setup(args)
    train_set = None if args.load else harness.load("mnist", "train", args)
    xt = vae_mnist.test_set(args)
    work = harness.out_dir(args, "vae_iaf_mnist_")
    iaf = [
        "model.posterior=iaf",
        f"model.iaf_steps={args.iaf_steps}",
        f"model.iaf_hidden_dim={args.iaf_hidden}",
        f"model.iaf_context={args.iaf_context}",
    ]
    rows = []
    for arm in arms:
        if args.load:  # the arms saved by an earlier --save run, scored again
            model = genlab.load(Path(args.load) / arm).eval()
            facts = json.loads((Path(args.load) / arm / "facts.json").read_text())
        else:
            model, facts = vae_mnist.train(args, train_set, work / arm, iaf if arm == "iaf" else ())
            facts = {
                **{k: v for k, v in facts.items() if k != "config"},
                "epochs": facts["images"] / len(train_set.images),
            }
            if args.save:
                model.save(Path(args.save) / arm)
                (Path(args.save) / arm / "facts.json").write_text(json.dumps(facts))
        r = vae_mnist.score(model, xt, args.k, torch.Generator().manual_seed(4321))
        name = (
            "diagonal Gaussian"
            if arm == "gaussian"
            else f"IAF, {args.iaf_steps} steps (AR-NN {args.iaf_hidden}x2, context {args.iaf_context})"
        )
        rows.append({**facts, **r, "posterior": name, "params": sum(p.numel() for p in model.parameters())})
        print(
            f"{arm}: {facts['minutes']:.1f} {args.clock}-min training + {r['eval_cpu_min']:.1f} CPU-min IWAE",
            flush=True,
        )

    se = vae_mnist.se
    table = harness.Table(
        ["posterior", "parameters", "training", "test -ELBO (nats)", f"test NLL, IWAE k={args.k} (nats)", "IWAE time"]
    )
    for r in rows:
        table.add(
            r["posterior"],
            f"{r['params'] / 1e6:.2f} M",
            f"{r['minutes']:.1f} {args.clock.upper()}-min ({r['wall_minutes']:.1f} wall), "
            f"{r['steps']} steps ({r['epochs']:.1f} epochs)",
            f"{r['neg_elbo'].mean().item():.2f} +- {se(r['neg_elbo']):.2f}",
            f"{r['nll'].mean().item():.2f} +- {se(r['nll']):.2f}",
            f"{r['eval_cpu_min']:.1f} CPU-min",
        )
    notes = [
        f"data: MNIST, dynamic binarisation; test: first {xt.shape[0]} test images, binarised once (seed 1234); "
        f"preset {args.preset or '(defaults)'} {' '.join(args.set)}"
    ]
    if len(rows) == 2:
        gap = rows[0]["nll"] - rows[1]["nll"]  # paired over the same test images
        notes.append(f"NLL gaussian - IAF, paired over the same images: {gap.mean().item():.2f} +- {se(gap):.2f} nats")
    table.finish(machine, *notes)


if __name__ == "__main__":
    main()
