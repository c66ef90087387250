"""Audio for the WaveNet model: a folder of WAV files -> mu-law clips, and back.

Self-contained: the standard library's ``wave`` module plus numpy. Clips are
stored like images so that the Trainer (uint8 ``(N, C, H, W)``, divided by 255)
can train on them: each clip is ``(1, 1, L)``, values the 8-bit mu-law codes
0..255 of the waveform, so a model sees ``x01 = code / 255`` and recovers the
code as ``round(255 * x01)``.

* :func:`load_wav_folder` ``(path, clip_length, sample_rate)``: every ``.wav``
  under a folder, mixed to mono, resampled (linear interpolation), cut into
  non-overlapping clips, mu-law encoded -> :class:`~genlab.data.dataset.ImageDataset`.
* :func:`sines`: a built-in synthetic set of sine waves (for tests and demos).
* :func:`save_wav`: model samples (mu-law codes / 255) or a waveform -> a 16-bit WAV.
"""

from __future__ import annotations

import io
import math
import wave
from pathlib import Path

import numpy as np
import torch

from .dataset import ImageDataset
from .errors import DataError

__all__ = ["mu_law_encode", "mu_law_decode", "read_wav", "resample", "load_wav_folder", "sines", "save_wav"]


def mu_law_encode(audio, mu: int = 255) -> np.ndarray:
    """Waveform in [-1, 1] -> uint8 codes 0..mu (G.711 companding, as in WaveNet)."""
    a = np.clip(np.asarray(audio, dtype=np.float64), -1.0, 1.0)
    y = np.sign(a) * np.log1p(mu * np.abs(a)) / math.log1p(mu)
    return np.round((y + 1) / 2 * mu).astype(np.uint8)


def mu_law_decode(codes, mu: int = 255) -> np.ndarray:
    """uint8 codes 0..mu -> waveform in [-1, 1] (float32); inverse of :func:`mu_law_encode`
    up to the quantisation."""
    y = 2 * np.asarray(codes, dtype=np.float64) / mu - 1
    return (np.sign(y) * ((1 + mu) ** np.abs(y) - 1) / mu).astype(np.float32)


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """One WAV file -> (mono float32 waveform in [-1, 1], sample rate in Hz).

    Reads PCM of 8 (unsigned), 16, 24 or 32 (signed) bits; channels are averaged.
    """
    with wave.open(str(path), "rb") as f:
        channels, width, rate, frames = f.getnchannels(), f.getsampwidth(), f.getframerate(), f.getnframes()
        raw = f.readframes(frames)
    if width == 1:
        data = (np.frombuffer(raw, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
    elif width == 2:
        data = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    elif width == 3:
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        data = (np.where(v >= 1 << 23, v - (1 << 24), v)).astype(np.float32) / float(1 << 23)
    elif width == 4:
        data = np.frombuffer(raw, dtype="<i4").astype(np.float32) / float(1 << 31)
    else:
        raise DataError(f"{path}: unsupported sample width of {width} bytes")
    data = data[: len(data) // channels * channels].reshape(-1, channels).mean(axis=1)
    return data.astype(np.float32), rate


def resample(audio: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Linear-interpolation resampling (no anti-aliasing filter: fine for toy data)."""
    if rate_in == rate_out or len(audio) == 0:
        return audio.astype(np.float32)
    n_out = int(len(audio) * rate_out / rate_in)
    t_out = np.arange(n_out) * (rate_in / rate_out)
    return np.interp(t_out, np.arange(len(audio)), audio).astype(np.float32)


def load_wav_folder(path: str | Path, clip_length: int = 4096, sample_rate: int = 8000) -> ImageDataset:
    """Every ``*.wav`` under ``path`` (recursively, sorted) -> clips of ``clip_length`` samples.

    Returns an :class:`ImageDataset` named ``"wav:<path>"`` with ``images`` uint8
    ``(N, 1, 1, clip_length)``: mu-law codes at ``sample_rate`` Hz; no labels.
    Unreadable files are skipped; a folder with no readable WAV file, or whose
    files are all shorter than one clip, is a :class:`DataError` naming it.
    """
    root = Path(path)
    if not root.is_dir():
        raise DataError(f"wav folder {str(root)!r} does not exist or is not a folder")
    if clip_length < 2 or sample_rate < 1:
        raise DataError(f"clip_length must be >= 2 and sample_rate >= 1, got {clip_length} and {sample_rate}")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() == ".wav")
    clips, readable, skipped = [], 0, []
    for f in files:
        try:
            audio, rate = read_wav(f)
        except (wave.Error, EOFError, DataError, ValueError) as e:
            skipped.append(f"{f.name} ({e})")
            continue
        readable += 1
        audio = resample(audio, rate, sample_rate)
        n = len(audio) // clip_length
        if n:
            clips.append(mu_law_encode(audio[: n * clip_length]).reshape(n, 1, 1, clip_length))
    if readable == 0:
        extra = f"; unreadable: {', '.join(skipped[:5])}" if skipped else ""
        raise DataError(f"wav folder {str(root)!r} has no readable .wav files (found {len(files)} .wav files{extra})")
    if not clips:
        raise DataError(
            f"wav folder {str(root)!r}: every file is shorter than one clip of "
            f"{clip_length} samples at {sample_rate} Hz"
        )
    return ImageDataset(torch.from_numpy(np.concatenate(clips)), name=f"wav:{root}")


def sines(n: int = 512, length: int = 256, seed: int = 0) -> ImageDataset:
    """A synthetic sequence set: sine waves with random period (8..32 samples),
    phase and amplitude (0.3..0.9), mu-law encoded, ``(n, 1, 1, length)`` uint8."""
    rng = np.random.default_rng(seed)
    t = np.arange(length)[None, :]
    period = rng.uniform(8, 32, size=(n, 1))
    phase = rng.uniform(0, 2 * np.pi, size=(n, 1))
    amp = rng.uniform(0.3, 0.9, size=(n, 1))
    wav = amp * np.sin(2 * np.pi * t / period + phase)
    return ImageDataset(torch.from_numpy(mu_law_encode(wav).reshape(n, 1, 1, length)), name="sines")


def save_wav(samples, path: str | Path, rate: int = 8000, mu_law: bool = True) -> Path:
    """Write samples as a mono 16-bit PCM WAV file; returns the path.

    ``samples``: a tensor or array whose last axis is time, e.g. a WaveNet's
    ``sample(n)`` output ``(n, 1, 1, L)``; several clips are written one after
    another with 0.1 s of silence between them. With ``mu_law=True`` (default)
    the values are mu-law codes / 255 in [0, 1] (the model's space); with
    ``mu_law=False`` they are a waveform in [-1, 1].
    """
    arr = (
        samples.detach().cpu().double().numpy()
        if isinstance(samples, torch.Tensor)
        else np.asarray(samples, dtype=np.float64)
    )
    clips = arr.reshape(-1, arr.shape[-1]) if arr.ndim > 1 else arr[None]
    if mu_law:
        clips = mu_law_decode(np.round(np.clip(clips, 0, 1) * 255))
    gap = np.zeros(int(0.1 * rate), dtype=np.float32)
    parts = []
    for i, c in enumerate(clips):
        parts.extend([gap, c] if i else [c])
    pcm = (np.clip(np.concatenate(parts), -1, 1) * 32767).round().astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(int(rate))
        f.writeframes(pcm.tobytes())
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(buf.getvalue())
    tmp.replace(path)
    return path
