"""Benchmark: VQ-VAE with its PixelCNN prior on 8-bit MNIST for a fixed CPU wall-clock budget.

Not a test: it prints a table. One Trainer run: the autoencoder trains for the first
``--ae-share`` of ``--minutes`` (``train.max_seconds``); then ``model.prior_start`` is
set to the current iteration (the run's second stage, decided by the clock here
instead of in advance) and the PixelCNN prior trains on the frozen encoder's codes
until the run's training time reaches ``--minutes``. Reported on
the MNIST test images:

* the bound on the NLL, -log p_prior(c(x)) - log p(x | z_q), in bits/dim with its
  standard error, and its two parts in nats (discretised-logistic decoder, exact prior);
* codebook perplexity and codes in use on the test set;
* reconstructions: how often genlab's shipped MNIST classifier gives the reconstruction
  the class it gives the original (issue target: >= 95%), and the true class;
* sampling time, parameters, and the digits of 1,000 samples drawn through the prior.

    python benchmarks/vqvae_mnist.py --data-dir ../shared/data --minutes 10
"""

from __future__ import annotations

import math
import time

import torch

import harness
from genlab import distributions as D
from genlab import registry
from genlab.metrics.features import get_feature_net
from genlab.viz.images import make_grid, save_png
from glow_mnist import digit_rows, flow_parser, sampling_rows, trainer_for, training_row


def build_parser():
    ap = flow_parser(__doc__, lr=1e-3, batch=64)
    ap.add_argument("--ae-share", type=float, default=0.75, help="share of the budget for the autoencoder stage")
    return ap


def main(argv=None) -> None:
    args, machine = harness.start(build_parser(), argv)
    out = harness.out_dir(args, "vqvae-mnist-")
    print(
        f"# VQ-VAE + PixelCNN prior on {args.data}, batch {args.batch_size}, budget {args.minutes:g} min "
        f"({100 * args.ae_share:.0f}% autoencoder), seed {args.seed}",
        flush=True,
    )

    torch.manual_seed(args.seed)
    model = registry.build("vqvae", image_shape=(1, 28, 28), prior_start=10**9)
    train_set = harness.load(args.data, "train", args)
    trainer = trainer_for(model, "vqvae", train_set, args, out)
    t0, c0 = time.perf_counter(), time.process_time()
    harness.fit_until(trainer, args.ae_share * args.minutes * 60)  # the autoencoder's share of the budget
    model.config.prior_start = trainer.step
    print(f"prior stage from iteration {trainer.step} ({(time.perf_counter() - t0) / 60:.1f} min)", flush=True)
    harness.fit_until(trainer, args.minutes * 60)  # the prior, for the rest
    rows = [training_row(trainer, args, train_set, time.process_time() - c0, time.perf_counter() - t0, out)]
    rows.append(("stages", f"autoencoder for iterations 0..{model.config.prior_start - 1}, then the prior"))
    model.eval().cpu().save(out / "model")

    test = harness.load("mnist", "test", args)
    x01, labels = test.images[: args.test_images].float() / 255, test.labels[: args.test_images]
    t = time.perf_counter()
    with torch.inference_mode():
        codes = torch.cat([model.codes(xb) for xb in x01.split(500)])
        prior_nll = torch.cat([-model.prior.log_prob(model._prior_input(c)) for c in codes.split(500)]).double()
        recon_nll = torch.cat(
            [
                -D.discretized_logistic_log_prob(xb, *model.decoder_params(model.embed(c)))
                for xb, c in zip(x01.split(500), codes.split(500))
            ]
        ).double()
        nll = prior_nll + recon_nll
        assert torch.allclose(nll[:500], -model.log_prob(x01[:500]).double(), atol=1e-2)
    bpd = D.bits_per_dim(nll, model.num_dims)
    rows.append(
        (
            f"test NLL bound, {len(x01)} test images",
            f"**{bpd.mean().item():.3f} +- {bpd.std().item() / math.sqrt(len(bpd)):.3f} bits/dim** "
            f"({nll.mean().item():.1f} nats = prior {prior_nll.mean().item():.1f} + decoder "
            f"{recon_nll.mean().item():.1f}; {time.perf_counter() - t:.0f} s)",
        )
    )
    counts = torch.bincount(codes.flatten(), minlength=model.config.num_codes).double()
    p = counts / counts.sum()
    rows.append(
        (
            "codebook on the test set",
            f"perplexity {math.exp(-(p[p > 0] * p[p > 0].log()).sum().item()):.1f} of "
            f"{model.config.num_codes} codes, {int((counts > 0).sum())} in use",
        )
    )

    clf = get_feature_net("mnist")
    rec = torch.cat([model.reconstruct(xb) for xb in x01.split(500)])
    pred_x, pred_rec = clf.logits(x01).argmax(1), clf.logits(rec).argmax(1)
    rows.append(
        (
            "reconstructions keeping the digit (classifier's class of the original)",
            f"**{100 * (pred_rec == pred_x).double().mean().item():.1f}%** "
            f"(true class {100 * (pred_rec == labels).double().mean().item():.1f}%; originals "
            f"{100 * (pred_x == labels).double().mean().item():.1f}%); pixel L1 {(rec - x01).abs().mean().item():.3f}",
        )
    )
    save_png(
        make_grid(torch.stack([x01[:32], rec[:32]], 1).flatten(0, 1), nrow=8), out / "reconstructions.png", scale=2
    )
    rows += sampling_rows(model)
    samples = torch.cat([model.sample(250, generator=torch.Generator().manual_seed(i)) for i in range(4)])
    save_png(samples[:100], out / "samples.png", scale=2)
    rows += digit_rows(samples, "1,000 samples through the prior")
    table = harness.Table(["VQ-VAE on MNIST", "value"])
    for row in rows:
        table.add(*row)
    table.finish(machine, f"samples, reconstructions and model in {out}")


if __name__ == "__main__":
    main()
