"""Benchmark: every likelihood model of genlab on 8-bit MNIST at one training budget (issue #11).

Not a test: it prints two Markdown tables.

1. **Likelihoods.** vae, vae with an IAF posterior, pixelvae, pixelcnn, gated-pixelcnn,
   glow, ddpm, flow-matching and vqvae, each trained with genlab's Trainer on the 60,000
   MNIST training images for ``--minutes`` of ``--clock`` (CPU time by default:
   ``train.max_seconds`` with ``train.budget_clock``), one after another, one torch
   thread each. Every model gets the 8-bit likelihood it has, so all bits/dim are
   discrete 8-bit numbers and comparable:

   * discretized 256-level likelihoods on the pixels k/255 (``input_mode="unit"``):
     vae and vae+iaf with ``model.likelihood=logistic`` (discretized logistic),
     pixelvae with a discretized logistic mixture, pixelcnn and gated-pixelcnn with a
     256-way softmax (``likelihood=categorical``), vqvae's logistic decoder;
   * ddpm's variational bound with its discretized Gaussian decoder (Ho et al. 2020),
     an unbiased stratified estimate from ``--ddpm-terms`` of the T terms per image;
   * uniformly dequantized densities (glow, flow-matching), -D log 256 included:
     in expectation an upper bound on the discrete NLL (Theis et al. 2016); flow-matching's
     ODE is solved adaptively (dopri5) at its default tolerance 1e-4.

   Test bits/dim (mean +- standard error over ``--test-examples`` test images, through
   :func:`genlab.metrics.likelihood.per_example_nll`; importance-weighted with
   ``--iw-samples`` for the latent-variable bounds), whether it is exact or a
   bound/estimate (``model.likelihood_kind``), samples per second, parameters, and the
   published 8-bit MNIST number of each paper (:data:`PUBLISHED`; "n/a" where no paper
   gives one).

2. **Sample quality** of those models and of the GANs (dcgan, lsgan, progan, ali, same
   budget): FID and KID in the feature space of genlab's shipped MNIST classifier
   (not Inception: not comparable with published FIDs) against the test images, and
   digit coverage: how many of the ten digits make up more than 1% of the samples by
   that classifier.

    python benchmarks/likelihoods.py --data-dir ../shared/data --minutes 30
    python benchmarks/likelihoods.py --data-dir ../shared/data --minutes 1 --test-examples 200 --models vae,glow,dcgan
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

import torch

import harness

#: (run name, registry model, overrides, the likelihood it is evaluated with)
LIKELIHOOD_MODELS: list[tuple[str, str, list[str], str]] = [
    ("vae", "vae", ["model.likelihood=logistic"], "discretized logistic, 256 levels"),
    ("vae-iaf", "vae", ["model.likelihood=logistic", "model.posterior=iaf"], "discretized logistic, 256 levels"),
    ("pixelvae", "pixelvae", ["model.likelihood=logistic-mixture"], "discretized logistic mixture, 256 levels"),
    ("pixelcnn", "pixelcnn", ["model.likelihood=categorical"], "256-way softmax"),
    ("gated-pixelcnn", "gated-pixelcnn", ["model.likelihood=categorical"], "256-way softmax"),
    ("glow", "glow", [], "dequantized density, -D log 256"),
    ("ddpm", "ddpm", [], "variational bound, discretized Gaussian decoder"),
    ("flow-matching", "flow-matching", [], "dequantized density (dopri5 ODE, Hutchinson divergence), -D log 256"),
    ("vqvae", "vqvae", [], "PixelCNN prior + discretized logistic decoder"),
]
GAN_MODELS: list[tuple[str, str, list[str], str]] = [(n, n, [], "none") for n in ("dcgan", "lsgan", "progan", "ali")]

#: run name -> (published test bits/dim on 8-bit MNIST or None, the source and what it says)
PUBLISHED: dict[str, tuple[float | None, str]] = {
    "vae": (None, "Kingma & Welling 2014: no 8-bit MNIST bits/dim"),
    "vae-iaf": (
        None,
        "Kingma et al. 2016: binarized MNIST in nats only (79.10 dynamic, 79.88 static binarization; section 6.1)",
    ),
    "pixelvae": (
        None,
        "Gulrajani et al. 2017: binarized MNIST in nats only "
        "(<= 80.64; gated, no upsampling: <= 79.66, ~79.02; table 1)",
    ),
    "pixelcnn": (None, "van den Oord et al. 2016 (Pixel RNN): binarized MNIST in nats only (81.30)"),
    "gated-pixelcnn": (None, "van den Oord et al. 2016 (Conditional PixelCNN): CIFAR-10 only (3.03)"),
    "glow": (
        1.05,
        "FFJORD (Grathwohl et al. 2019), table 2, its Glow row; the Glow paper (Kingma & Dhariwal 2018) "
        "reports no MNIST figure; RealNVP 1.06 there",
    ),
    "ddpm": (None, "Ho et al. 2020: CIFAR-10 only (<= 3.70, table 1)"),
    "flow-matching": (
        None,
        "Lipman et al. 2023: CIFAR-10 only (2.99, table 1); the CNF FFJORD: 0.99 on "
        "MNIST (Grathwohl et al. 2019, table 2)",
    ),
    "vqvae": (None, "van den Oord et al. 2017: CIFAR-10 only (4.67)"),
}


def train_model(
    model_name: str, overrides: list[str], dataset, seconds: float, run_dir: Path, seed: int, clock: str = "cpu"
):
    """Train ``model_name`` (registry defaults + ``overrides``) for ``seconds`` of ``clock`` ("cpu" or
    "wall"); returns (model, steps).

    vqvae's two stages share the budget: the autoencoder for the first half, then its
    PixelCNN prior (``model.prior_start`` set to the step reached)."""
    from genlab.registry import build_run_config
    from genlab.train.runs import build_model, fit_model_to_data
    from genlab.train.trainer import Trainer

    extra = [
        "train.steps=100000000",
        f"train.max_seconds={seconds}",
        "train.progress=false",
        "train.checkpoint_every=0",
        "train.sample_every=0",
        "train.device=cpu",
        f"train.seed={seed}",
        f"train.budget_clock={clock}",
    ]
    if model_name == "vqvae":
        extra.append("model.prior_start=1000000000")
    rc = fit_model_to_data(build_run_config(model_name, data="mnist", overrides=overrides + extra), dataset)
    torch.manual_seed(seed)
    model = build_model(rc)
    trainer = Trainer(model, dataset, rc.train, run_dir, rc)
    if model_name == "vqvae":
        harness.fit_until(trainer, seconds / 2)
        model.config.prior_start = trainer.step
    harness.fit_until(trainer, seconds)
    return model.eval(), trainer.step


def iw_samples_for(model, k: int) -> int | None:
    """``k`` for the importance-sampled bounds (the VAEs), None for every other likelihood
    (ddpm's and vqvae's bounds are not importance-sampled and refuse a k)."""
    from genlab.metrics.likelihood import is_importance_sampled

    return k if is_importance_sampled(model) else None


def evaluate_model(model, test, ref_features, net, args) -> dict:
    """Likelihood (if any), sampling speed, parameters and sample quality of a trained model."""
    from genlab.metrics.likelihood import impossible_likelihood, per_example_nll
    from genlab.metrics.quality import generate_samples, quality_metrics

    out: dict = {"params": sum(p.numel() for p in model.parameters()), "kind": model.likelihood_kind}
    if model.likelihood_kind != "none":
        t = time.perf_counter()
        k = iw_samples_for(model, args.iw_samples)
        nll = per_example_nll(model, test, iw_samples=k, max_examples=args.test_examples, batch_size=100, seed=1)
        bpd = nll / (model.num_dims * math.log(2))
        out.update(
            bpd=bpd.mean().item(),
            bpd_se=bpd.std().item() / math.sqrt(len(bpd)),
            n_test=len(bpd),
            eval_s=time.perf_counter() - t,
            problem=impossible_likelihood(model, nll.mean().item(), nll.std().item() / math.sqrt(len(nll)), True),
        )
    t = time.perf_counter()
    samples = generate_samples(model, args.quality_samples, batch_size=100, seed=2)
    out["samples_per_s"] = len(samples) / (time.perf_counter() - t)
    q = quality_metrics(
        ref_features, net.features(samples).numpy(), kid_subsets=50, kid_subset_size=max(2, len(samples) // 2), seed=0
    )
    probs = torch.softmax(net.logits(samples), 1)
    shares = torch.bincount(probs.argmax(1), minlength=10).float() / len(samples)
    out.update(
        fid=q["fid"],
        kid=q["kid"],
        kid_std=q.get("kid_std"),
        digits=int((shares > 0.01).sum()),
        n_samples=len(samples),
        confidence=float(probs.max(1).values.mean()),
    )
    return out


def likelihood_table(results: dict[str, dict], notes: dict[str, str], published=PUBLISHED) -> str:
    """The Markdown likelihood table: one row per run in ``results`` with a likelihood, in the given order.

    ``results[name]``: ``bpd``, ``bpd_se``, ``n_test``, ``kind`` ("exact"/"bound"),
    ``samples_per_s``, ``params``, ``steps``; ``notes[name]``: the likelihood used."""
    rows = []
    for name, r in results.items():
        if r.get("kind", "none") == "none":
            continue
        value, source = published.get(name, (None, "no published number stored"))
        pub = f"{value:.2f} ({source})" if value is not None else f"n/a ({source})"
        kind = "exact" if r["kind"] == "exact" else "bound / estimate"
        bpd = f"{r['bpd']:.3f} +- {r['bpd_se']:.3f} (n={r['n_test']})" + (
            " INVALID: below 0" if r.get("problem") else ""
        )
        rows.append(
            [name, notes.get(name, ""), bpd, kind, f"{r['samples_per_s']:.1f}", f"{r['params']:,}", r["steps"], pub]
        )
    return harness.markdown_table(
        [
            "model",
            "likelihood (8-bit)",
            "test bits/dim +- s.e.",
            "exact or bound",
            "samples/s",
            "parameters",
            "iterations",
            "published 8-bit MNIST (source)",
        ],
        rows,
    )


def quality_table(results: dict[str, dict]) -> str:
    """The Markdown sample-quality table: every run in ``results`` (``fid``, ``kid``, ``kid_std``, ``digits``,
    ``confidence``, ``n_samples``, ``samples_per_s``), in the given order."""
    rows = []
    for name, r in results.items():
        kid = f"{r['kid']:.3g}" + (f" +- {r['kid_std']:.2g}" if r.get("kid_std") is not None else "")
        rows.append(
            [
                name,
                f"{r['fid']:.1f}",
                kid,
                f"{r['digits']}/10",
                f"{r['confidence']:.2f}",
                r["n_samples"],
                f"{r['samples_per_s']:.1f}",
            ]
        )
    return harness.markdown_table(
        [
            "model",
            "FID (MNIST features)",
            "KID +- std over subsets",
            "digits above 1%",
            "classifier confidence",
            "samples",
            "samples/s",
        ],
        rows,
    )


def build_parser() -> argparse.ArgumentParser:
    """The script's flags."""
    ap = harness.parser(__doc__, data_dir=harness.default_data_dir(), minutes=30.0, seed=0, out=None)
    specs = LIKELIHOOD_MODELS + GAN_MODELS
    ap.add_argument(
        "--models",
        default=",".join(s[0] for s in specs),
        help="comma-separated subset of: " + ", ".join(s[0] for s in specs),
    )
    ap.add_argument(
        "--test-examples", type=int, default=10000, help="test images for bits/dim and the reference features"
    )
    ap.add_argument("--quality-samples", type=int, default=1000, help="samples per model for FID/KID/digits")
    ap.add_argument("--iw-samples", type=int, default=100, help="importance samples of the latent-variable bounds")
    ap.add_argument("--ddpm-terms", type=int, default=100, help="stratified terms of ddpm's bound per image (0: all T)")
    ap.add_argument(
        "--show",
        nargs="+",
        metavar="RESULTS_JSON",
        help="only print the tables of earlier runs' results.json files, joined",
    )
    return ap


def main() -> None:
    specs = LIKELIHOOD_MODELS + GAN_MODELS
    ap = build_parser()
    args = ap.parse_args()
    if args.show:
        results, notes = {}, {}
        for path in args.show:
            doc = json.loads(Path(path).read_text())
            results.update(doc["results"])
            notes.update(doc["notes"])
        order = [s[0] for s in specs if s[0] in results]
        print(
            likelihood_table({n: results[n] for n in order}, notes)
            + "\n\n"
            + quality_table({n: results[n] for n in order})
        )
        return
    torch.set_num_threads(1)
    chosen = [s.strip() for s in args.models.split(",") if s.strip()]
    unknown = sorted(set(chosen) - {s[0] for s in specs})
    if unknown:
        ap.error(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(s[0] for s in specs)}")

    from genlab import data as gdata
    from genlab.metrics.quality import reference_features

    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="likelihoods-"))
    out.mkdir(parents=True, exist_ok=True)
    where = harness.Machine.describe()
    print(
        f"# 8-bit MNIST, {args.minutes:g} {args.clock} min per model, one after another, 1 thread each; {where.line()}",
        flush=True,
    )
    train = gdata.load("mnist", split="train", data_dir=args.data_dir)
    test = gdata.load("mnist", split="test", data_dir=args.data_dir)
    ref = reference_features(test, "mnist", split="test", max_examples=args.test_examples)
    from genlab.metrics.features import get_feature_net

    net = get_feature_net("mnist")
    results, notes = {}, {}
    for name, model_name, overrides, note in [s for s in specs if s[0] in chosen]:
        if model_name == "ddpm":
            overrides = overrides + [f"model.bound_timesteps={args.ddpm_terms}"]
        t0, load0 = time.perf_counter(), harness.load_average()
        model, steps = train_model(model_name, overrides, train, args.minutes * 60, out / name, args.seed, args.clock)
        r = evaluate_model(model, test, ref["features"], net, args)
        r.update(steps=steps, load=load0)
        results[name], notes[name] = r, note
        (out / "results.json").write_text(
            json.dumps({"machine": where.line(), "minutes": args.minutes, "results": results, "notes": notes}, indent=1)
        )
        print(
            f"# {name}: {steps} iterations, {time.perf_counter() - t0:.0f} s with evaluation, load {load0}: "
            + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items()),
            flush=True,
        )
    print(f"\n# done, results in {out / 'results.json'}; {where.line()}\n")
    print(likelihood_table(results, notes))
    print()
    print(quality_table(results))


if __name__ == "__main__":
    main()
