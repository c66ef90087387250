"""Benchmark: the same priors in pixel space and over an autoencoder's codes, on MNIST.

Not a test: it measures finished runs (run folders or ``pretrained:NAME``) and prints one table,
a row per run:

* training CPU-minutes: the run's own budget clock (``train.budget_clock = "cpu"``), plus, for a
  ``latent`` run, the autoencoder's (its card's, or its run's): the total cost of the two stages;
* the likelihood: the run's test NLL in nats and bits/dim on the first ``--likelihood-examples``
  test digits, exact or a lower bound as the model states (``--iw-samples`` importance samples for
  the VAE-based ones); the data column says which MNIST it is (binarised or 8-bit), since nats on
  one are not nats on the other. For ``pretrained:NAME`` the card's figures are used (measured by
  ``scripts/train_pretrained.py`` with the same estimator) unless ``--remeasure LABEL``;
* FID and KID in genlab's MNIST features: 2,000 samples (seed 0) against the 10,000 test digits,
  the shipped cards' protocol (card figures for ``pretrained:NAME`` unless ``--remeasure LABEL``);
* the judge of ``scripts/check_pretrained.py`` (a classifier no model was trained with): the share of
  ``--judge-samples`` samples (``genlab sample --seed 0``) it reads as a digit with confidence >= 0.9;
* sampling: wall-clock seconds per image at batch ``--speed-batch`` on this machine's threads
  (after one warm-up batch of 2), every row timed in this run so they compare.

The runs of the table in benchmarks/README.md were trained with the commands listed there, then::

    python benchmarks/latent_priors.py --data-dir ../shared/data \\
        --run pixel-fm=pretrained:flow-matching-mnist --run latent-fm=runs/latent-fm-vae ...
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

import genlab
import harness
from genlab.train.checkpoint import list_checkpoints, load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import check_pretrained as judging  # noqa: E402  (scripts/: the judge and what `genlab sample` shows)


def build_parser():
    ap = harness.parser(__doc__, data_dir=harness.default_data_dir(), threads=1)
    ap.add_argument("--run", action="append", required=True, metavar="LABEL=RUN", help="a row (repeatable)")
    ap.add_argument("--likelihood-examples", type=int, default=200, help="test digits for the NLL (default 200)")
    ap.add_argument("--iw-samples", type=int, default=10, help="importance samples of VAE-based bounds (default 10)")
    ap.add_argument("--samples", type=int, default=2000, help="samples for FID/KID (default 2000; 0 skips)")
    ap.add_argument("--judge-samples", type=int, default=500, help="samples the judge reads (default 500; 0 skips)")
    ap.add_argument("--speed-batch", type=int, default=64, help="batch of the sampling-time measurement")
    ap.add_argument(
        "--remeasure",
        action="append",
        default=[],
        metavar="LABEL",
        help="measure this row's pretrained model too, not its card (repeatable)",
    )
    ap.add_argument("--json", metavar="FILE", help="also write every figure to FILE")
    return ap


def training_minutes(run: genlab.Run) -> float | None:
    """CPU-minutes of a run's training: a shipped model's card, or the newest checkpoint's budget clock."""
    if run.is_pretrained:
        return run.card["training"]["cpu_minutes"]
    if run.doc.get("train", {}).get("budget_clock") != "cpu":
        return None
    _, state, _ = load_checkpoint(list_checkpoints(run.path / "checkpoints")[-1][1])
    return state["elapsed"] / 60


def total_minutes(run: genlab.Run) -> tuple[float | None, str]:
    """(the run's training CPU-minutes plus its autoencoder's, how they add up)."""
    own = training_minutes(run)
    autoencoder = getattr(run.model.config, "autoencoder", None)
    if own is None or not autoencoder:
        return own, "" if own is None else f"{own:.1f}"
    ae = training_minutes(genlab.Run(autoencoder))
    if ae is None:
        return None, f"{own:.1f} + ? (autoencoder)"
    return own + ae, f"{ae:.1f} + {own:.1f}"


def likelihood(model, card: dict | None, args, test) -> dict | None:
    """The test NLL: the card's (``card`` given), else measured on ``--likelihood-examples`` digits."""
    from genlab.metrics.likelihood import evaluate_likelihood

    if model.likelihood_kind == "none":
        return None
    got = (card or {}).get("measured", {}).get("likelihood")
    if got:
        return {**got, "source": "card"}
    iw = args.iw_samples if model.importance_sampled else None
    r = evaluate_likelihood(model, test, iw_samples=iw, max_examples=args.likelihood_examples, progress=False)
    return {**r, "source": "measured"}


def quality(model, card: dict | None, args, test) -> dict | None:
    """FID/KID of ``--samples`` samples: the card's (``card`` given, same sample count), else measured."""
    if not args.samples or "sample" not in model.capabilities:
        return None
    got = (card or {}).get("measured", {}).get("sample_quality")
    if got and got.get("samples") == args.samples:
        return {"fid": got["fid"], "kid": got["kid"], "source": "card"}
    q = harness.sample_quality(model, test, samples=args.samples, seed=0)
    return {"fid": q["fid"], "kid": q["kid"], "source": "measured"}


def seconds_per_image(model, batch: int) -> float:
    g = torch.Generator().manual_seed(0)
    with torch.inference_mode():
        model.sample(2, generator=g)  # warm-up: caches, lazy buffers
        t = time.perf_counter()
        model.sample(batch, generator=g)
    return (time.perf_counter() - t) / batch


def estimator_kind(text: str) -> str:
    """ "exact", "bound" or "estimate" (unbiased, neither: flow matching with Hutchinson's divergence) of an
    estimator's description."""
    if text.startswith("the model's exact"):
        return "exact"
    return "estimate" if "neither exact nor a bound" in text or "bound" not in text else "bound"


def data_kind(model) -> str:
    """Which MNIST its likelihood is of: binarised digits, or the 8-bit grey levels (dequantised)."""
    return "binarised" if getattr(model, "input_mode", "") == "binary" else "8-bit"


def main(argv=None) -> None:
    args, machine = harness.start(build_parser(), argv)
    test = harness.load("mnist", "test", args)
    judge = judging.get_judge(args.data_dir)[0] if args.judge_samples else None
    table = harness.Table(
        [
            "run",
            "model",
            "training CPU-min (autoencoder + prior)",
            "data",
            "test NLL nats (bits/dim)",
            "FID / KID",
            "judge: confident",
            "ms per sample",
        ]
    )
    results = {}
    for item in args.run:
        label, _, spec = item.partition("=")
        if not spec:
            raise SystemExit(f"--run wants LABEL=RUN (a run folder or pretrained:NAME), got {item!r}")
        run = genlab.Run(spec)
        model = run.model
        minutes, how = total_minutes(run)
        card = run.card if label not in args.remeasure else None
        nll = likelihood(model, card, args, test)
        q = quality(model, card, args, test)
        shares = None
        if judge is not None and "sample" in model.capabilities:
            shown, _ = judging.shown_samples(model, args.judge_samples)
            shares = judging.confident_shares(judging.judge_probs(judge, shown))
        speed = seconds_per_image(model, args.speed_batch)
        what = run.name if run.is_pretrained else run.model_name
        if hasattr(model.config, "prior"):
            what = f"{model.config.prior} over {model.config.autoencoder.split(':')[-1]}"
        bound = "" if nll is None else f" ({estimator_kind(nll.get('estimator', ''))})"
        table.add(
            label,
            what,
            how if minutes is None else f"{minutes:.1f} ({how})" if "+" in how else f"{minutes:.1f}",
            data_kind(model),
            "-" if nll is None else f"{nll['nll_nats']:.2f} ({nll['bits_per_dim']:.3f}){bound}",
            "-" if q is None else f"{q['fid']:.2f} / {q['kid']:.4f}",
            "-" if shares is None else f"{100 * shares['confident']:.1f}%",
            f"{1000 * speed:.3g}",
        )
        results[label] = {
            "run": spec,
            "model": what,
            "cpu_minutes": minutes,
            "likelihood": nll,
            "quality": q,
            "judge": shares,
            "seconds_per_sample": speed,
            "speed_batch": args.speed_batch,
        }
    table.finish(
        machine,
        f"NLL: the first {args.likelihood_examples} test digits (card figures: as the card states), "
        f"{args.iw_samples} importance samples for VAE-based bounds; FID/KID: {args.samples} samples vs the "
        f"10,000 test digits in genlab's MNIST features; judge: {args.judge_samples} samples; sampling: "
        f"batch {args.speed_batch}, wall clock.",
    )
    if args.json:
        harness.write_json(args.json, {"machine": machine.line(), "rows": results})


if __name__ == "__main__":
    main()
