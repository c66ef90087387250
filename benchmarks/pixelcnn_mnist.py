"""Benchmark: PixelCNN (or Gated PixelCNN) on dynamically binarised MNIST for a
fixed wall-clock budget; exact test NLL in nats.

Not a test: it prints a table. Data: the 60,000 MNIST training images,
dynamically binarised (a fresh Bernoulli draw per pixel each time an image is
used). The test NLL is exact (-log p(x) summed over the 784 autoregressive
factors), on the first ``--test-images`` test images binarised once with a fixed
seed. Published anchor: PixelCNN 81.30 nats (van den Oord et al. 2016, *static*
binarisation, days of GPU training) -- not directly comparable. Reference
measured on these machines: a plain PixelCNN (7x7 type-A, 6 residual blocks of 64
channels, Adam 1e-3, batch 128) reaches 92.9 +- 0.2 nats after 30 CPU minutes.

Training goes through genlab's Trainer. The wall-clock budget becomes a step
count during the run itself: the throughput measured so far is re-read at 10%,
30%, 60% and 85% of the steps and the schedule (linear warm-up over ``--warmup``
steps, cosine decay to 0 at the last step) is stretched to the new end, so the
whole budget is used even when the first guess is off. With a GPU, the
same schedule is run again on it ("GPU schedule", its own calibration).

    python benchmarks/pixelcnn_mnist.py --data-dir ../shared/data --minutes 30 --amp   # README's run
    python benchmarks/pixelcnn_mnist.py --data-dir ../shared/data --minutes 30         # float32
    python benchmarks/pixelcnn_mnist.py --data-dir ../shared/data --minutes 0.5 --test-images 200   # smoke run
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import torch

import genlab
import harness
from genlab import registry
from genlab.data import transforms
from genlab.distributions import bits_per_dim
from genlab.train.trainer import Trainer

#: Settings of the script without a preset; a registry preset (``--preset``) replaces them and
#: explicit flags replace both.
DEFAULTS = {
    "model.hidden_channels": 64,
    "model.num_blocks": 6,
    "train.batch_size": 128,
    "train.lr": 2e-3,
    "train.warmup_steps": 100,
    "train.betas": (0.9, 0.999),
    "train.ema_decay": 0.0,
}
FLAGS = {
    "channels": "model.hidden_channels",
    "depth": "model.num_blocks",
    "batch_size": "train.batch_size",
    "lr": "train.lr",
    "warmup": "train.warmup_steps",
    "betas": "train.betas",
    "ema_decay": "train.ema_decay",
}


def settings(args) -> dict:
    """``"section.field" -> value`` of this run: :data:`DEFAULTS`, then the preset's values, then the flags given."""
    values = dict(DEFAULTS)
    if args.preset:
        values.update(registry.entry(args.model).presets[args.preset].values)
    values.update(
        {
            key: tuple(v) if isinstance(v, list) else v
            for flag, key in FLAGS.items()
            if (v := getattr(args, flag)) is not None
        }
    )
    return values


def run(args, device: str, train_set, test_bin: torch.Tensor, work: Path) -> dict:
    shape = tuple(train_set.images.shape[1:])
    values = settings(args)
    torch.manual_seed(args.seed)
    model = registry.build(
        args.model,
        image_shape=shape,
        **{k[6:]: v for k, v in values.items() if k.startswith("model.") and k != "model.image_shape"},
    )
    # The schedule needs a step count, the budget is wall-clock time: the harness
    # re-reads the throughput during the run and stretches the cosine schedule.
    train_values = {k[6:]: v for k, v in values.items() if k.startswith("train.")}
    tcfg = harness.train_config(
        args,
        args.model,
        **{
            "steps": 10**6,
            "lr_schedule": "cosine",
            "schedule_steps": 10**6,
            "log_every": 200,
            **train_values,
            "device": device,
            "amp": args.amp,
        },
    )
    trainer = Trainer(model, train_set, tcfg, work / f"run-{device}")
    load_before = harness.load_average()
    t0 = time.perf_counter()
    steps = harness.fit_schedule_to_budget(
        trainer,
        args.minutes * 60,
        first=args.calib_steps,
        warm=10,
        log=lambda text: print(f"[{device}] {text}", flush=True),
    )
    train_time = time.perf_counter() - t0
    model.eval()
    t1 = time.perf_counter()

    def test_nll():
        with torch.inference_mode():
            return torch.cat([-model.log_prob(xb.to(model.device)).cpu() for xb in test_bin.split(500)])

    nll, nll_ema = test_nll(), None
    if trainer.ema is not None:  # the weights' moving average, evaluated too (and saved)
        model.load_state_dict(trainer.ema.weights_like(model))
        nll_ema = test_nll()
    eval_time = time.perf_counter() - t1
    if args.save:
        model.save(Path(args.save) / device.replace(":", "-"))
    batch = tcfg.batch_size
    return dict(
        device=device,
        model=model,
        steps=steps,
        train_time=train_time,
        eval_time=eval_time,
        nll=nll,
        nll_ema=nll_ema,
        tcfg=tcfg,
        throughput=steps * batch / train_time,
        epochs=steps * batch / train_set.images.shape[0],
        load=(load_before, harness.load_average()),
    )


def build_parser():
    ap = harness.parser(
        __doc__,
        data_dir=harness.default_data_dir(),
        minutes=30.0,
        threads=os.cpu_count() or 1,
        seed=0,
        device="cpu",
        out=None,
    )
    ap.add_argument("--model", default="pixelcnn", choices=["pixelcnn", "gated-pixelcnn"])
    ap.add_argument(
        "--preset",
        default=None,
        help="a registry preset of the model (genlab models pixelcnn lists them), e.g. mnist-cpu",
    )
    ap.add_argument("--channels", type=int, default=None, help="hidden channels (default 64)")
    ap.add_argument("--depth", type=int, default=None, help="residual blocks (pixelcnn) or gated layers (default 6)")
    ap.add_argument("--batch-size", type=int, default=None, help="default 128")
    ap.add_argument("--lr", type=float, default=None, help="Adam's peak rate (default 2e-3)")
    ap.add_argument("--betas", type=float, nargs=2, default=None, help="Adam's betas (default 0.9 0.999)")
    ap.add_argument(
        "--ema-decay",
        type=float,
        default=None,
        help="train.ema_decay; > 0 evaluates the moving average too (default 0)",
    )
    ap.add_argument("--test-images", type=int, default=10000)
    ap.add_argument("--calib-steps", type=int, default=30, help="steps before the first estimate of the throughput")
    ap.add_argument("--warmup", type=int, default=None, help="linear learning-rate warm-up steps (default 100)")
    ap.add_argument(
        "--amp",
        action="store_true",
        help="bfloat16 autocast for training (train.amp); the test NLL is always computed in float32",
    )
    ap.add_argument(
        "--no-gpu",
        action="store_true",
        help="with --device cpu, skip the second schedule on the GPU even when one is present",
    )
    ap.add_argument("--save", default=None, help="save the trained model(s) under this directory")
    return ap


def main(argv=None) -> None:
    args, machine = harness.start(build_parser(), argv)
    train_set = harness.load("mnist", "train", args)
    test = harness.test_images("mnist", args, args.test_images)
    test_bin = transforms.binarize(test, generator=torch.Generator().manual_seed(1234))
    work = harness.out_dir(args, "pixelcnn_mnist_")
    devices = [args.device] + (
        ["cuda"] if args.device == "cpu" and torch.cuda.is_available() and not args.no_gpu else []
    )
    results = [run(args, d, train_set, test_bin, work) for d in devices]

    se = lambda v: v.std().item() / math.sqrt(v.numel())  # noqa: E731
    table = harness.Table(["quantity"] + [f"{r['device']} schedule" for r in results])
    row = lambda name, f: table.add(name, *(f(r) for r in results))  # noqa: E731
    row(
        "model",
        lambda r: (
            f"{args.model}: {r['model'].config}, "
            f"{sum(p.numel() for p in r['model'].parameters()) / 1e6:.3f} M parameters"
        ),
    )
    row(
        "training",
        lambda r: (
            f"{r['train_time'] / 60:.1f} min of wall clock, {r['steps']} steps of {r['tcfg'].batch_size}, "
            f"{r['epochs']:.2f} epochs, Adam lr {r['tcfg'].lr:g} betas {tuple(r['tcfg'].betas)}, "
            f"{r['tcfg'].warmup_steps} warm-up steps + cosine, EMA {r['tcfg'].ema_decay:g}, "
            f"{'bfloat16 autocast' if args.amp else 'float32'}"
        ),
    )
    row(
        "budget",
        lambda r: (
            f"{args.minutes:g} {args.clock} min, {args.threads} thread(s)"
            + (f", preset {args.preset}" if args.preset else "")
        ),
    )
    row("load average before / after", lambda r: " / ".join("n/a" if v is None else f"{v:.1f}" for v in r["load"]))
    row("training throughput", lambda r: f"{r['throughput']:.0f} images/s")
    row(
        f"exact test NLL, {test_bin.shape[0]} test images",
        lambda r: (
            f"**{r['nll'].mean().item():.2f} +- {se(r['nll']):.2f} nats** "
            f"({bits_per_dim(r['nll'].mean().item(), 784):.4f} bits/dim)"
        ),
    )
    row(
        "same, EMA of the weights",
        lambda r: (
            "no EMA" if r["nll_ema"] is None else f"**{r['nll_ema'].mean().item():.2f} +- {se(r['nll_ema']):.2f} nats**"
        ),
    )
    row("evaluation time", lambda r: f"{r['eval_time']:.1f} s")
    row("genlab", lambda r: genlab.__version__)
    table.finish(
        machine,
        "anchors: PixelCNN 81.30 nats (paper, static binarisation); measured plain PixelCNN 92.9 "
        "+- 0.2 nats in 30 CPU min; target <= 90",
    )


if __name__ == "__main__":
    main()
