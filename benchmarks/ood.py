"""Benchmark: the known failure of likelihood-based outlier detection, and its fixes.

A generative model trained on Fashion-MNIST gives MNIST digits a *higher*
likelihood than its own test set (Nalisnick et al. 2019), so the plain
likelihood score detects MNIST with an AUROC well under 0.5. This script trains
the models genlab has (the VAE; a PixelCNN when the registry has one) on the
Fashion-MNIST training split with the one Trainer, then scores the Fashion-MNIST
test split against outlier sets (MNIST test, uniform noise, constant images,
inverted and upside-down Fashion-MNIST) with

* likelihood (NLL in bits/dim),
* likelihood-ratio against a background model of the same kind trained on
  inputs with a fraction ``--mutation-rate`` of pixels replaced by noise
  (Ren et al. 2019),
* typicality (batch test with ``--typicality-batch`` inputs; Nalisnick et al. 2019),
* complexity (NLL minus PNG code length, bits/dim; Serra et al. 2020),

and prints AUROC / AUPR / FPR@95%TPR (outliers = positive class). Not a test.

    python benchmarks/ood.py --data-dir ../shared/data --steps 5000           # the full run
    python benchmarks/ood.py --data-dir ../shared/data --steps 20 --bg-steps 20 --n-test 200   # smoke test

Files (tables, JSON, ROC plots, the trained runs) go to ``--out``.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import genlab
import harness
from genlab import ood, registry
from genlab.config import RunConfig, TrainConfig
from genlab.metrics.likelihood import is_importance_sampled


def model_config(name: str, likelihood: str):
    config_cls, _ = registry.get(name)
    fields = {"image_shape": (1, 28, 28)}
    names = {f.name for f in dataclasses.fields(config_cls)}
    if "likelihood" in names:
        if name == "vae":
            fields["likelihood"] = likelihood
        else:  # autoregressive models: the 8-bit counterpart of the VAE's choice
            fields["likelihood"] = {
                "logistic": "logistic-mixture",
                "bernoulli": "bernoulli",
                "gaussian": "categorical",
            }[likelihood]
    return config_cls(**fields)


def build_parser():
    ap = harness.parser(
        __doc__, data_dir=harness.default_data_dir(), threads=0, seed=0, device="auto", out="runs/ood-benchmark"
    )
    ap.add_argument(
        "--models", nargs="+", default=None, help="registry names (default: vae, and pixelcnn if registered)"
    )
    ap.add_argument(
        "--likelihood", default="logistic", help="VAE likelihood: logistic (8-bit, default), bernoulli or gaussian"
    )
    ap.add_argument("--steps", type=int, default=5000, help="training steps of each model")
    ap.add_argument(
        "--bg-steps", type=int, default=None, help="training steps of each background model (default: --steps)"
    )
    ap.add_argument("--mutation-rate", type=float, default=0.2)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--n-test", type=int, default=2000, help="inputs per set (first ones of each test split)")
    ap.add_argument("--iw", type=int, default=10, help="importance samples for latent-variable models")
    ap.add_argument("--typicality-batch", type=int, default=5)
    return ap


def main(argv=None) -> None:
    args, machine = harness.start(build_parser(), argv)
    names = args.models or [n for n in ("vae", "pixelcnn") if n in registry.MODELS]
    out = Path(args.out)
    train, test = harness.splits("fashion-mnist", args)
    outliers = {
        "mnist": ood.outlier_set("mnist", test, args.n_test, args.data_dir),
        "noise": ood.outlier_set("noise", test, args.n_test, seed=args.seed),
        "constant": ood.outlier_set("constant", test, args.n_test, seed=args.seed),
        "inverted": ood.outlier_set("inverted", test, args.n_test),
        "flipped": ood.outlier_set("flipped", test, args.n_test),
    }
    print(
        f"in-distribution: fashion-mnist test (first {args.n_test}); trained on fashion-mnist train "
        f"({len(train):,}); genlab {genlab.__version__}\n"
    )
    summary = {}
    for name in names:
        t0 = time.time()
        cfg = model_config(name, args.likelihood)
        tc = TrainConfig(
            steps=args.steps,
            batch_size=args.batch_size,
            seed=args.seed,
            sample_every=0,
            checkpoint_every=args.steps,
            progress=False,
            device=args.device,
        )
        run_dir = (
            genlab.train.train(
                RunConfig(model_name=name, model=cfg, train=tc),
                out_dir=str(out / f"{name}-fashion-mnist"),
                dataset=train,
            )
            if not (out / f"{name}-fashion-mnist" / "model.safetensors").exists()
            else out / f"{name}-fashion-mnist"
        )
        model = genlab.load(run_dir)
        t_model = time.time() - t0
        bg = (
            ood.train_background(
                RunConfig(model_name=name, model=cfg, train=tc),
                train,
                mutation_rate=args.mutation_rate,
                steps=args.bg_steps or args.steps,
                seed=args.seed + 1,
                batch_size=args.batch_size,
                out_dir=out / f"{name}-background-{args.mutation_rate}",
                progress=False,
            )
            if not (out / f"{name}-background-{args.mutation_rate}" / "model.safetensors").exists()
            else genlab.load(out / f"{name}-background-{args.mutation_rate}")
        )
        t_bg = time.time() - t0 - t_model
        iw = args.iw if is_importance_sampled(model) else None
        r = ood.evaluate_ood(
            model,
            test,
            outliers,
            methods=ood.METHODS,
            background=bg,
            train_data=train.subset(range(min(2000, len(train)))),
            typicality_batch=args.typicality_batch,
            iw_samples=iw,
            max_examples=args.n_test,
            seed=args.seed,
            out_dir=out / f"{name}-results",
        )
        t_eval = time.time() - t0 - t_model - t_bg
        print(
            f"## {name} (input_mode {model.input_mode}, {getattr(model.config, 'likelihood', '?')} likelihood; "
            f"{args.steps} steps; background {args.bg_steps or args.steps} steps, mutation rate {args.mutation_rate}; "
            + (f"k = {iw} importance samples; " if iw else "exact log-likelihood; ")
            + f"typicality M = {args.typicality_batch})"
        )
        print("\nmean NLL (bits/dim): " + ", ".join(f"{k}: {v['likelihood']:.3f}" for k, v in r["mean_scores"].items()))
        print(f"training-set entropy estimate: {r['settings']['train_entropy_bits_per_dim']:.3f} bits/dim\n")
        print(r["markdown"])
        print(
            f"time: model {t_model:.0f}s, background {t_bg:.0f}s, scoring {t_eval:.0f}s; "
            f"files in {out / (name + '-results')}\n"
        )
        summary[name] = {"results": r["results"], "mean_scores": r["mean_scores"], "settings": r["settings"]}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(machine.line())


if __name__ == "__main__":
    main()
