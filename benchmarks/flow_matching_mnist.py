"""Benchmark: flow matching on MNIST under a fixed CPU budget: test bits/dim, samples/s, FID, digits.

The same protocol as ``ddpm_mnist.py`` (whose ``run`` it uses): ``flow-matching``
trained through genlab's Trainer for ``--minutes`` on the 60,000 training digits
(EMA weights), then on the test split:

* bits/dim of dequantized 8-bit data, y = (k + u)/256: the ODE log-density
  (backwards from t = 1, adaptive dopri5 at ``--likelihood-tol`` by default, or
  ``--likelihood-steps`` fixed steps of ``--likelihood-solver``) with Hutchinson's
  divergence estimate (784 dimensions), plus the dequantization offset -D log 256,
  so the figure compares with glow's (an unbiased estimate of log p(y), up to the
  solver's error; a bound on the discrete likelihood in expectation over u);
* samples per second of ``model.sample`` (``--sample-steps`` ODE steps of ``--solver``);
* FID etc. in the shipped MNIST features and the digits among the samples.

    python benchmarks/flow_matching_mnist.py --data-dir ../shared/data              # 10 minutes
"""

from __future__ import annotations

import sys

import harness
from ddpm_mnist import parser, run


def build_parser():
    ap = parser(__doc__)
    ap.add_argument("--solver", default="heun", choices=["euler", "midpoint", "heun"])
    ap.add_argument("--sample-steps", type=int, default=10, help="ODE steps of model.sample")
    ap.add_argument(
        "--likelihood-solver",
        default="dopri5",
        choices=["dopri5", "euler", "midpoint", "heun"],
        help="log_prob's ODE solver: adaptive dopri5 (default) or fixed steps",
    )
    ap.add_argument("--likelihood-tol", type=float, default=1e-4, help="dopri5's tolerance (default %(default)s)")
    ap.add_argument(
        "--likelihood-steps", type=int, default=20, help="ODE steps of log_prob with a fixed-step --likelihood-solver"
    )
    return ap


def main(argv=None) -> int:
    args, machine = harness.start(build_parser(), argv)
    fields = {
        "solver": args.solver,
        "sample_steps": args.sample_steps,
        "likelihood_solver": args.likelihood_solver,
        "likelihood_steps": args.likelihood_steps,
        "likelihood_tol": args.likelihood_tol,
    }
    how = (
        f"dopri5 at tolerance {args.likelihood_tol:g}"
        if args.likelihood_solver == "dopri5"
        else f"{args.likelihood_steps} {args.likelihood_solver} steps"
    )
    note = (
        f"ODE log-density, {how}, Hutchinson divergence (one Rademacher probe per image), "
        "dequantized, offset -D log 256 included"
    )
    run("flow-matching", args, machine, fields, note)
    return 0


if __name__ == "__main__":
    sys.exit(main())
