"""The Free Spoken Digit Dataset (FSDD) as mu-law clips for WaveNet.

Jackson et al., "Free Spoken Digit Dataset" (CC BY-SA 4.0): 3,000 recordings of
the digits 0-9 spoken by six speakers, 50 per digit and speaker, 8 kHz 16-bit
mono PCM, 0.14-2.3 s long (median 0.42 s).

Layout read: ``<data_dir>/fsdd/recordings/{digit}_{speaker}_{index}.wav`` (or
``$GENLAB_DATA/fsdd/recordings``, default ``~/.cache/genlab/fsdd/recordings``).
Nothing is downloaded: the data set's own repository publishes no checksummed
archive, so a missing folder is a :class:`DataError` saying where to put the files.

* Split: the official one, ``index`` 0-4 is test (300 clips), 5-49 train (2,700).
* Label: the spoken digit (0-9).
* Clips: ONE clip of ``clip_length`` samples (default 4,096 = 0.512 s at 8 kHz)
  per recording, deterministic (no seed): a shorter recording is kept from its
  first sample and padded at the end with digital silence (mu-law code 128); a
  longer one (24% of them at 4,096) is cut to the window of ``clip_length``
  samples with the most energy (the earliest such window on ties), so the spoken
  digit is kept. The start of a recording is its own quiet lead-in, as in the
  recordings, so a WaveNet sampled from silence starts like a recording does.
  Random crops for training are the model's business (``model.train_crop`` of
  WaveNet), drawn from the Trainer's seeded generator.
* Values: uint8 mu-law codes ``(N, 1, 1, clip_length)`` (see :mod:`genlab.data.audio`).

:func:`listing_md5` checks the folder against the published md5 of
``cd recordings && ls | sort | xargs md5sum`` (every file's content and name).
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import numpy as np

from . import download as dl
from .audio import mu_law_encode, read_wav, resample
from .dataset import ImageDataset
from .errors import DataError

__all__ = [
    "SAMPLE_RATE",
    "CLIP_LENGTH",
    "LISTING_MD5",
    "parse_name",
    "find_recordings",
    "listing_md5",
    "fit_clip",
    "load_fsdd",
    "recordings",
]

SAMPLE_RATE = 8000  # Hz
CLIP_LENGTH = 4096  # samples (0.512 s); the 90th percentile of the recordings' lengths is 4,836
LISTING_MD5 = "bdbabe32fa657162edfdcdbd292aecd5"  # md5 of `ls | sort | xargs md5sum` in recordings/
N_RECORDINGS = 3000
TEST_INDICES = range(0, 5)  # official split: index 0-4 test, 5-49 train
DIGIT_NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]

_NAME = re.compile(r"^([0-9])_([A-Za-z]+)_([0-9]+)\.wav$")


def parse_name(name: str) -> tuple[int, str, int] | None:
    """``"7_theo_12.wav"`` -> ``(7, "theo", 12)``; None for a name not of that form."""
    m = _NAME.match(name)
    return (int(m.group(1)), m.group(2), int(m.group(3))) if m else None


def find_recordings(data_dir: str | os.PathLike | None) -> Path:
    """The first ``fsdd/recordings`` folder holding FSDD WAV files, or a DataError saying where to put them."""
    tried = [d / "recordings" for d in dl.search_dirs("fsdd", data_dir)]
    for folder in tried:
        if folder.is_dir() and any(parse_name(p.name) for p in folder.iterdir()):
            return folder
    raise DataError(
        f"fsdd: no recordings found in {', '.join(repr(str(t)) for t in tried)}; put the Free Spoken Digit Dataset's "
        "recordings/*.wav (files {digit}_{speaker}_{index}.wav, from the data set's GitHub repository "
        "Jakobovski/free-spoken-digit-dataset) in <data_dir>/fsdd/recordings and pass data_dir (--data-dir); "
        "genlab does not download it"
    )


def listing_md5(folder: str | os.PathLike) -> str:
    """md5 of the output of ``ls | sort | xargs md5sum`` run in ``folder`` (every regular file, byte order)."""
    folder = Path(folder)
    lines = []
    for name in sorted(p.name for p in folder.iterdir() if p.is_file()):
        lines.append(f"{dl.md5_of((folder / name).read_bytes())}  {name}\n")
    return hashlib.md5("".join(lines).encode()).hexdigest()


def fit_clip(audio: np.ndarray, length: int) -> np.ndarray:
    """A waveform (T,) -> exactly ``length`` samples: zero-padded at the end when T < length,
    else the window of ``length`` samples with the largest energy (sum of squares; earliest on ties)."""
    audio = np.asarray(audio, dtype=np.float32)
    if len(audio) <= length:
        return np.concatenate([audio, np.zeros(length - len(audio), dtype=np.float32)])
    energy = np.concatenate([[0.0], np.cumsum(audio.astype(np.float64) ** 2)])
    window = energy[length:] - energy[:-length]  # window[s] = energy of audio[s:s+length]
    start = int(np.argmax(window >= window.max() - 1e-9 * max(window.max(), 1.0)))
    return audio[start : start + length]


def recordings(folder: Path) -> list[tuple[Path, int, str, int]]:
    """Every FSDD file of ``folder`` as ``(path, digit, speaker, index)``, sorted by name."""
    out = []
    for p in sorted(folder.iterdir(), key=lambda p: p.name):
        parsed = parse_name(p.name)
        if parsed is not None and p.is_file():
            out.append((p, *parsed))
    return out


def load_fsdd(split: str, data_dir=None, clip_length: int = CLIP_LENGTH, verify: bool = True) -> ImageDataset:
    """The ``split`` ("train", "test" or "all") of FSDD as an :class:`ImageDataset` named ``"fsdd"``:
    uint8 mu-law codes ``(N, 1, 1, clip_length)`` at 8 kHz, labels the digits 0-9 (class names "0".."9").

    ``verify``: check :func:`listing_md5` against the published value (a DataError when it differs,
    e.g. a partial copy); turn it off only for a folder of your own recordings named like FSDD's.
    """
    if split not in ("train", "test", "all"):
        raise DataError(f"unknown split {split!r} for 'fsdd'; choose train, test or all")
    if clip_length < 2:
        raise DataError(f"fsdd: clip_length must be >= 2 samples, got {clip_length}")
    folder = find_recordings(data_dir)
    if verify:
        got = listing_md5(folder)
        if got != LISTING_MD5:
            n = len(recordings(folder))
            raise DataError(
                f"fsdd: {str(folder)!r} is not the published FSDD ({n} of {N_RECORDINGS} recordings; md5 of "
                f"`ls | sort | xargs md5sum` is {got}, expected {LISTING_MD5}); replace it with "
                "the full, unchanged recordings/ folder"
            )
    clips, labels = [], []
    for path, digit, _speaker, index in recordings(folder):
        if split != "all" and (index in TEST_INDICES) != (split == "test"):
            continue
        audio, rate = read_wav(path)
        clips.append(mu_law_encode(fit_clip(resample(audio, rate, SAMPLE_RATE), clip_length)))
        labels.append(digit)
    if not clips:
        raise DataError(
            f"fsdd: {str(folder)!r} has no recordings of the {split!r} split (index 0-4 is test, 5-49 train)"
        )
    images = np.stack(clips).reshape(-1, 1, 1, clip_length)
    return ImageDataset(
        images, np.asarray(labels), num_classes=10, name="fsdd", class_names=[str(d) for d in range(10)]
    )
