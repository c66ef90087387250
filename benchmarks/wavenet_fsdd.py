"""Benchmark: a digit-conditional WaveNet on real speech (the Free Spoken Digit Dataset).

Not a test: it prints a table with the machine line of :mod:`harness` (flags,
threads, data and the load average come from there). Steps:

1. Trains ``genlab train wavenet --data fsdd`` (the registry's ``fsdd`` preset:
   10 dilated layers, receptive field 1,024 samples, 16 random 1,024-sample
   windows per step, conditional on the digit) through genlab's Trainer for
   ``--minutes`` of wall-clock time (``train.max_seconds``: it stops at the first
   step boundary past the budget; constant learning rate).
2. Test NLL in bits per sample, exact, on the 300 official test recordings
   whole and unpadded (every sample of every recording, 8-bit mu-law codes; the
   model's left context starts as zeros), beside two baselines on the same
   codes: a uniform model (8 bits) and the mu-law marginal (unigram histogram of
   the training recordings, add-one smoothed).
3. ``--per-digit`` samples per digit, 4,096 samples (0.512 s) each, written as
   ``<out>/samples/digit<d>.wav`` (clips separated by 0.1 s of silence).
4. A digit classifier (a small CNN on log-mel spectrograms computed with torch)
   trained on the real training clips, evaluated on the real test clips and on
   the generated samples (is the digit recognised?).
5. ``<out>/spectrograms.png``: per digit, a real test clip above a generated one.

    OMP_NUM_THREADS=1 python benchmarks/wavenet_fsdd.py --data-dir ../shared/data --minutes 12
"""

from __future__ import annotations

import dataclasses
import io
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

import harness
from genlab.data import audio, fsdd
from genlab.registry import build, build_run_config
from genlab.train.trainer import Trainer

N_FFT, HOP, N_MELS = 256, 64, 40  # 32 ms windows, 8 ms hop at 8 kHz


def mel_filters(n_fft: int = N_FFT, n_mels: int = N_MELS, rate: int = fsdd.SAMPLE_RATE) -> torch.Tensor:
    """Triangular mel filterbank (n_mels, n_fft // 2 + 1), HTK mel scale, 0 Hz .. rate / 2."""
    mel = lambda f: 2595 * np.log10(1 + f / 700)  # noqa: E731
    hz = lambda m: 700 * (10 ** (m / 2595) - 1)  # noqa: E731
    edges = hz(np.linspace(mel(0), mel(rate / 2), n_mels + 2))
    freqs = np.linspace(0, rate / 2, n_fft // 2 + 1)
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    w = np.maximum(0, np.minimum((freqs - lo) / (mid - lo), (hi - freqs) / (hi - mid)))
    return torch.tensor(w, dtype=torch.float32)


def log_mel(wave: torch.Tensor, fb: torch.Tensor) -> torch.Tensor:
    """Waveforms (N, T) in [-1, 1] -> log-mel spectrograms (N, 1, n_mels, frames)."""
    spec = torch.stft(wave, N_FFT, HOP, window=torch.hann_window(N_FFT), return_complex=True).abs() ** 2
    return torch.log(fb @ spec + 1e-6)[:, None]


def waveforms(x01: torch.Tensor) -> torch.Tensor:
    """Clips (N, 1, 1, L) of mu-law codes / 255 -> waveforms (N, L) in [-1, 1]."""
    return torch.from_numpy(audio.mu_law_decode(np.round(x01[:, 0, 0].numpy() * 255)))


class DigitNet(nn.Module):
    """Log-mel (N, 1, 40, F) -> 10 logits: three conv blocks, then mean and max over time."""

    def __init__(self):
        super().__init__()
        ch = [1, 16, 32, 64]
        self.convs = nn.ModuleList(nn.Conv2d(a, b, 3, padding=1) for a, b in zip(ch, ch[1:]))
        self.norms = nn.ModuleList(nn.BatchNorm2d(b) for b in ch[1:])
        self.fc = nn.Linear(2 * 64, 10)

    def forward(self, x):
        for conv, norm in zip(self.convs, self.norms):
            x = F.max_pool2d(F.relu(norm(conv(x))), 2)
        x = x.mean(2)  # over frequency -> (N, 64, frames)
        return self.fc(torch.cat([x.mean(2), x.amax(2)], 1))


def train_classifier(feats, labels, epochs: int, seed: int) -> DigitNet:
    torch.manual_seed(seed)
    net, mu, sd = DigitNet(), feats.mean(), feats.std()
    net.norm_stats = (mu, sd)
    opt = torch.optim.Adam(net.parameters(), 2e-3)
    for _ in range(epochs):
        net.train()
        for idx in torch.randperm(len(feats)).split(64):
            loss = F.cross_entropy(net((feats[idx] - mu) / sd), labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net.eval()


@torch.no_grad()
def predict(net: DigitNet, feats) -> torch.Tensor:
    mu, sd = net.norm_stats
    return torch.cat([net((f - mu) / sd).argmax(1) for f in feats.split(256)])


def recording_codes(folder: Path, test: bool) -> list[tuple[torch.Tensor, int]]:
    """Whole recordings of one split as (int64 mu-law codes (T,), digit)."""
    out = []
    for path, digit, _speaker, index in fsdd.recordings(folder):
        if (index in fsdd.TEST_INDICES) == test:
            wav, rate = audio.read_wav(path)
            out.append(
                (
                    torch.from_numpy(audio.mu_law_encode(audio.resample(wav, rate, fsdd.SAMPLE_RATE)).astype(np.int64)),
                    digit,
                )
            )
    return out


@torch.no_grad()
def test_bits(model, recs) -> float:
    """Exact NLL of whole recordings in bits per sample (total over all samples)."""
    model.eval()
    total, count = 0.0, 0
    for codes, digit in recs:
        x = (codes.float() / 255)[None, None, None, :]
        total -= model.sample_log_probs(x, torch.tensor([digit])).sum().item()
        count += len(codes)
    return total / count / math.log(2)


def unigram_bits(train_recs, test_recs) -> float:
    counts = torch.bincount(torch.cat([c for c, _ in train_recs]), minlength=256).double() + 1
    logp = torch.log2(counts / counts.sum())
    test = torch.cat([c for c, _ in test_recs])
    return float(-logp[test].mean())


def voiced_fraction(wave: torch.Tensor, frame: int = 256) -> float:
    """Share of the non-silent 32 ms frames (RMS > 0.01) of waveforms (N, T) that are voiced: the
    normalised autocorrelation peaks above 0.5 at a lag of 20-133 samples (a pitch of 60-400 Hz)."""
    frames = wave.unfold(1, frame, frame).reshape(-1, frame)
    frames = frames[frames.pow(2).mean(1).sqrt() > 0.01]
    if len(frames) == 0:
        return 0.0
    frames = frames - frames.mean(1, keepdim=True)
    spec = torch.fft.rfft(frames, 2 * frame)
    ac = torch.fft.irfft(spec.abs() ** 2)[:, :frame]
    peak = (ac[:, 20:134] / ac[:, :1].clamp_min(1e-12)).amax(1)
    return float((peak > 0.5).float().mean())


def spectrogram_figure(real, fake, path: Path) -> None:
    """real, fake: waveforms (10, L), one per digit -> a 2 x 10 grid of log spectrograms."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 10, figsize=(15, 3.6), sharex=True, sharey=True)
    for row, (clips, name) in enumerate([(real, "real"), (fake, "WaveNet")]):
        for d in range(10):
            spec = torch.stft(clips[d], N_FFT, HOP, window=torch.hann_window(N_FFT), return_complex=True).abs()
            db = 20 * torch.log10(spec + 1e-4)
            ax = axes[row, d]
            ax.imshow(
                db.numpy(),
                origin="lower",
                aspect="auto",
                cmap="magma",
                vmin=-60,
                vmax=float(db.max()),
                extent=(0, clips.shape[1] / fsdd.SAMPLE_RATE, 0, fsdd.SAMPLE_RATE / 2000),
            )
            ax.set_title(f"{name} '{d}'", fontsize=8)
            ax.tick_params(labelsize=6)
    axes[0, 0].set_ylabel("kHz", fontsize=7)
    axes[1, 0].set_ylabel("kHz", fontsize=7)
    fig.supxlabel("seconds", fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, dpi=64)
    plt.close(fig)
    buf.seek(0)
    Image.open(buf).convert("RGB").quantize(64).save(path, optimize=True)  # a 64-colour palette: < 200 KB


def build_parser():
    ap = harness.parser(
        __doc__, data_dir=harness.default_data_dir(), threads=1, minutes=12.0, seed=0, out="runs/wavenet_fsdd"
    )
    ap.add_argument("--per-digit", type=int, default=3, help="generated samples per digit")
    ap.add_argument("--classifier-epochs", type=int, default=8)
    ap.add_argument("--figure", default=None, help="also copy the spectrogram figure here (e.g. docs/...png)")
    return ap


def main(argv=None) -> None:
    args, machine = harness.start(build_parser(), argv)
    out = harness.out_dir(args, "wavenet_fsdd")
    train, test = harness.splits("fsdd", args)
    rc = build_run_config(
        "wavenet",
        data="fsdd",
        overrides={
            "train.seed": args.seed,
            "train.progress": False,
            "train.steps": 10**9,
            "train.max_seconds": args.minutes * 60,
        },
    )
    rc = dataclasses.replace(rc, model=dataclasses.replace(rc.model, image_shape=train.shape))
    torch.manual_seed(args.seed)
    model = build("wavenet", rc.model)
    trainer = Trainer(model, train, rc.train, out / "run", run_config=rc)
    t0 = time.perf_counter()
    trainer.fit()
    train_s = time.perf_counter() - t0
    steps = trainer.step
    model.eval()

    folder = fsdd.find_recordings(args.data_dir)
    train_recs, test_recs = recording_codes(folder, False), recording_codes(folder, True)
    t = time.perf_counter()
    nll = test_bits(model, test_recs)
    eval_s = time.perf_counter() - t
    uni = unigram_bits(train_recs, test_recs)

    t = time.perf_counter()
    labels = torch.arange(10).repeat_interleave(args.per_digit)
    gen = torch.Generator().manual_seed(args.seed)
    fake = model.sample(len(labels), labels=labels, generator=gen)
    sample_s = time.perf_counter() - t
    for d in range(10):
        audio.save_wav(fake[labels == d], out / "samples" / f"digit{d}.wav", rate=fsdd.SAMPLE_RATE)

    fb = mel_filters()
    t = time.perf_counter()
    clf = train_classifier(
        log_mel(waveforms(train.images.float() / 255), fb), train.labels, args.classifier_epochs, args.seed
    )
    clf_s = time.perf_counter() - t
    acc_real = (predict(clf, log_mel(waveforms(test.images.float() / 255), fb)) == test.labels).float().mean().item()
    fake_wave = waveforms(fake)
    pred_fake = predict(clf, log_mel(fake_wave, fb))
    acc_fake = (pred_fake == labels).float().mean().item()

    real_wave = waveforms(test.images.float() / 255)
    first = torch.tensor([int(torch.nonzero(test.labels == d)[0]) for d in range(10)])
    spectrogram_figure(real_wave[first], fake_wave[:: args.per_digit], out / "spectrograms.png")
    if args.figure:
        Path(args.figure).parent.mkdir(parents=True, exist_ok=True)
        Path(args.figure).write_bytes((out / "spectrograms.png").read_bytes())
    rms = lambda w: float(w.pow(2).mean().sqrt())  # noqa: E731

    print(
        f"wavenet: {sum(p.numel() for p in model.parameters()):,} parameters, receptive field {model.receptive_field} "
        f"samples; {steps} steps in {train_s / 60:.1f} min ({train_s / steps:.2f} s/step), batch "
        f"{rc.train.batch_size} x {rc.model.train_crop} samples"
    )
    print(
        f"test recordings: {len(test_recs)}, {sum(len(c) for c, _ in test_recs):,} samples (scored in {eval_s:.0f} s)"
    )
    table = harness.Table(["model", "test NLL (bits/sample)"])
    table.add("uniform over 256 mu-law codes", "8.000")
    table.add("mu-law marginal (unigram of the training set)", f"{uni:.3f}")
    table.add("WaveNet, digit-conditional", f"{nll:.3f}")
    table.finish()
    print(
        f"samples: {len(labels)} x {fake.shape[-1]} samples in {sample_s:.0f} s -> {out / 'samples'}/digit<d>.wav; "
        f"RMS real test clips {rms(real_wave):.3f}, generated {rms(fake_wave):.3f}"
    )
    print(
        f"voiced share of non-silent 32 ms frames: real test clips {voiced_fraction(real_wave):.2f}, "
        f"generated {voiced_fraction(fake_wave):.2f}"
    )
    print(
        f"digit classifier (log-mel CNN, {args.classifier_epochs} epochs, {clf_s:.0f} s): real test clips "
        f"{100 * acc_real:.1f}%, generated samples {100 * acc_fake:.1f}% (chance 10%)"
    )
    print(
        "predicted digit of the samples, per conditioning digit: "
        + "; ".join(f"{d}: {pred_fake[labels == d].tolist()}" for d in range(10))
    )
    print(f"figure: {out / 'spectrograms.png'}")
    print(machine.line())


if __name__ == "__main__":
    main()
