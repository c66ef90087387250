"""Reproduce a paper: train a model (its ``paper`` preset or its CPU-sized defaults) for a
budget of CPU (``--clock cpu``, the default) or wall-clock minutes and print its learning
curve and one row beside the published number.

    python benchmarks/reproduce.py vae --preset paper --minutes 5 --data-dir ../shared/data
    python benchmarks/reproduce.py pixelcnn --data mnist --minutes 5 --data-dir ../shared/data
    python benchmarks/reproduce.py progan --preset paper --device cuda --minutes 60

The run config is ``genlab.registry.build_run_config(MODEL, --data, --preset, --set ...)``,
exactly what ``genlab train`` would train, made quiet (no progress bar, sample grids or
periodic checkpoints). Training goes through genlab's Trainer; the budget counts training
time only: at ``--evals`` equally spaced points of it the run pauses and is evaluated on
the first ``--eval-examples`` test images, with genlab's metrics:

* likelihood models: the test NLL in nats and bits/dim (``genlab.metrics.likelihood``;
  an importance-sampled bound with ``--iw-samples`` samples for latent-variable models);
* sample models: FID and KID of ``--samples`` samples in the shipped feature network of
  the data set (``genlab.metrics.quality``; not Inception features, so not comparable with
  published FIDs).

The published numbers come from the preset (``genlab.presets``: each with its paper,
table and a note on how comparable it is). A budget of minutes on a CPU trains a paper's
network for a sliver of its schedule: the curve shows where a run is heading, not what
the paper reached.
"""

from __future__ import annotations

import math
import warnings

import torch

import harness
from genlab import registry
from genlab.config import apply_overrides
from genlab.metrics.likelihood import evaluate_likelihood
from genlab.metrics.quality import evaluate
from genlab.train.runs import build_model, fit_model_to_data
from genlab.train.trainer import Trainer


def build_parser():
    ap = harness.parser(
        __doc__, data_dir=harness.default_data_dir(), threads=1, minutes=5.0, seed=0, device="cpu", out=None
    )
    ap.add_argument("model", help="registry name, e.g. vae (genlab models)")
    ap.add_argument("--preset", default=None, help="a preset of the model, e.g. paper (genlab models MODEL lists them)")
    ap.add_argument("--data", default=None, help="data set (default: the preset's, else the model's)")
    ap.add_argument(
        "--set", action="append", default=[], metavar="SECTION.FIELD=VALUE", help="config overrides, as genlab train"
    )
    ap.add_argument("--evals", type=int, default=4, help="evaluations during the run, equally spaced in training time")
    ap.add_argument("--eval-examples", type=int, default=500, help="test images per evaluation (the first N)")
    ap.add_argument("--iw-samples", type=int, default=100, help="importance samples for latent-variable likelihoods")
    ap.add_argument("--samples", type=int, default=1000, help="samples per FID/KID evaluation")
    return ap


def run_config(args):
    """The run's RunConfig: build_run_config with the user's overrides, then quiet, on --device,
    and with the budget as ``train.max_seconds`` (the Trainer stops there whatever step it is at), counted
    in ``--clock`` (``train.budget_clock``: CPU seconds of this process by default, or wall-clock seconds)."""
    sets = list(args.set) + ([f"data.data_dir={args.data_dir}"] if args.data_dir else [])
    cfg = registry.build_run_config(args.model, data=args.data, preset=args.preset, overrides=sets)
    quiet = {
        "train.progress": False,
        "train.sample_every": 0,
        "train.checkpoint_every": 0,
        "train.log_every": 0,
        "train.device": args.device,
        "train.seed": args.seed,
        "train.max_seconds": args.minutes * 60,
        "train.budget_clock": args.clock,
    }
    return apply_overrides(cfg, quiet)


def measure(model, test, args) -> dict:
    """genlab's metrics of ``model`` on the test images: {"nll": nats, "bpd": bits/dim} or {"fid", "kid"};
    {} when none applies."""
    model.eval()
    try:
        if model.likelihood_kind != "none":
            k = args.iw_samples if model.likelihood_kind == "bound" else None
            r = evaluate_likelihood(
                model, test, iw_samples=k, max_examples=args.eval_examples, seed=args.seed, progress=False
            )
            return {"nll": r["nll_nats"], "bpd": r["bits_per_dim"]}
        if "sample" in model.capabilities:
            with warnings.catch_warnings(record=True):
                warnings.simplefilter("always")
                r = evaluate(
                    model,
                    test,
                    n_samples=args.samples,
                    max_examples=args.eval_examples,
                    seed=args.seed,
                    split="test",
                    progress=False,
                )
            if r["quality"]:
                return {"fid": r["quality"]["fid"], "kid": r["quality"]["kid"]}
        return {}
    finally:
        model.train()


def train_with_curve(trainer: Trainer, seconds: float, marks: int, on_mark, clock=None) -> float:
    """Train until ``seconds`` of training time (in ``clock``; default the clock of the trainer's own
    budget, ``train.budget_clock``: CPU or wall-clock seconds, :func:`harness.clock_of`), calling
    ``on_mark(train_seconds)`` at each of ``marks`` equally spaced points (the last at the end, or
    where the Trainer's own budget ``train.max_seconds`` stops it, whichever comes first). Chunks
    of steps are sized from the measured time per step (half the steps left, then the rest once
    fewer than 20 are left), so a mark is passed by about one step's time even on a machine whose
    speed drifts. Returns the training seconds."""
    clock = harness.clock_of(trainer.config) if clock is None else clock
    spent, per_step = 0.0, None
    for i in range(1, marks + 1):
        mark = seconds * i / marks
        while spent < mark and not trainer.out_of_time:
            left = math.inf if per_step is None else (mark - spent) / per_step  # steps to the mark at the last rate
            n = 1 if per_step is None else max(1, math.ceil(left if left < 20 else left / 2))  # halve: rates drift
            t0 = clock()
            trainer.fit(trainer.step + n)
            dt = clock() - t0
            spent += dt
            per_step = dt / n
        on_mark(spent)
        if trainer.out_of_time:
            break
    return spent


def fmt(v, digits=2) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def main(argv=None) -> None:
    args, machine = harness.start(build_parser(), argv)
    cfg = run_config(args)
    name = cfg.data.name
    train_set, test = harness.load(name, "train", args), harness.load(name, "test", args)
    cfg = fit_model_to_data(cfg, train_set)
    torch.manual_seed(args.seed)
    model = build_model(cfg)
    params = sum(p.numel() for p in model.parameters())
    out = harness.out_dir(args, f"reproduce_{args.model}_")
    trainer = Trainer(model, train_set, cfg.train, out, cfg)
    trainer.save_checkpoint = lambda: None  # a benchmark keeps no checkpoints: writing one would count as training time
    label = f"{args.model} {args.preset or 'defaults'}"
    curve = harness.Table(
        ["minutes", "step", "images seen", "test NLL nats", "bits/dim", "FID", "KID"],
        title=f"{label} on {name}: learning curve ({params:,} parameters, batch {cfg.train.batch_size})",
    )
    last: dict = {}

    def on_mark(spent: float) -> None:
        last.clear()
        last.update(measure(model, test, args))
        curve.add(
            f"{spent / 60:.2f}",
            trainer.step,
            trainer.step * cfg.train.batch_size,
            fmt(last.get("nll")),
            fmt(last.get("bpd"), 3),
            fmt(last.get("fid")),
            fmt(last.get("kid"), 4),
        )

    spent = train_with_curve(trainer, args.minutes * 60, args.evals, on_mark)
    curve.finish(
        None,
        f"test: the first {min(args.eval_examples, len(test))} test images; "
        f"{'k = %d importance samples' % args.iw_samples if model.likelihood_kind == 'bound' else ''}".rstrip("; "),
    )
    preset = registry.entry(args.model).presets.get(args.preset or "paper")
    published = preset.published if preset is not None else ()
    row = harness.Table(["model", "data", "parameters", "minutes", "steps", "genlab", "published", "published source"])
    ours = (
        f"{last['nll']:.2f} nats ({last['bpd']:.3f} bits/dim)"
        if "nll" in last
        else f"FID {last['fid']:.2f}, KID {last['kid']:.4f}"
        if "fid" in last
        else "no genlab metric applies"
    )
    for r in published or [None]:
        pub = "none reported" if r is None else f"{r.metric} {r.value:g}" + (f" ({r.note})" if r.note else "")
        row.add(
            label, name, f"{params:,}", f"{spent / 60:.2f}", trainer.step, ours, pub, "-" if r is None else r.source
        )
    row.finish(
        machine,
        *([] if args.preset else [f"published: the numbers of the {args.model} paper preset, not of these defaults"]),
    )


if __name__ == "__main__":
    main()
