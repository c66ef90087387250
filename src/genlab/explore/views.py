"""What the Gradio page shows, computed without Gradio: each function takes an
:class:`~genlab.explore.explorer.Explorer` (the layer that talks to the model) and
returns tensors, Pillow images, matplotlib figures, arrays or plain text.

Views beyond :class:`Explorer`'s methods: single samples with their class label
(for a gallery), WaveNet audio, the manifold and 2-D point plots with axes,
autoregressive completion of an image, a PCA projection of encoded test images
coloured by class, and translation with its cycle reconstruction. Model calls
hold ``explorer.lock``; slow ones run inside :class:`Watch`, which reports
progress and stops the call when asked to.
"""

from __future__ import annotations

import io
import math
import threading
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from ..errors import GenlabError
from ..run import parse_labels as run_labels
from ..viz import plots
from ..viz.images import make_grid, to_pil
from .explorer import Analysis, Explorer, RequestError, check_image, domain_shape

MAX_PROJECTION = 2000  # test images encoded for the PCA view
AUDIO_RATE = 8000  # Hz of WaveNet clips played back


class Cancelled(GenlabError):
    """A slow model call stopped because the user pressed Cancel."""


# ----------------------------------------------------------------------------- progress and cancel


class Watch:
    """Progress and cancellation for one model call in the calling thread.

    Every ``nn.Module`` call made by this thread while the ``with`` block runs counts
    as one step (an autoregressive sampler calls its network once per pixel);
    ``report(done, total)`` is called at most every ``interval`` seconds, ``total``
    being the count of the last finished call with the same ``key`` (None the first
    time). When ``cancel`` is set, the next module call raises :class:`Cancelled`; so does
    one after ``gone()`` (asked with each report) turned true: the client went away.
    """

    _totals: dict = {}

    def __init__(
        self,
        key,
        cancel: threading.Event,
        report: Callable[[int, int | None], None] | None = None,
        interval: float = 0.25,
        gone: Callable[[], bool] | None = None,
    ):
        self.key, self.cancel, self.report, self.interval, self.gone = key, cancel, report, interval, gone
        self.count = 0

    def __enter__(self) -> "Watch":
        thread, last = threading.get_ident(), [time.monotonic()]
        total = self._totals.get(self.key)

        def hook(module, args):
            if threading.get_ident() != thread:
                return None
            if self.cancel.is_set():
                raise Cancelled("cancelled")
            self.count += 1
            now = time.monotonic()
            if now - last[0] >= self.interval:
                last[0] = now
                if self.gone is not None and self.gone():
                    raise Cancelled("the page that asked is gone")
                if self.report is not None:
                    self.report(self.count, total if total and total >= self.count else None)
            return None

        self.cancel.clear()
        self._handle = torch.nn.modules.module.register_module_forward_pre_hook(hook)
        return self

    def __exit__(self, kind, value, tb) -> None:
        self._handle.remove()
        if kind is None:
            self._totals[self.key] = self.count


# ----------------------------------------------------------------------------- display


def display_scale(height: int, target: int = 112) -> int:
    """The whole-number upscaling that shows an image of ``height`` pixels at about ``target``."""
    return max(1, target // max(1, height))


# ----------------------------------------------------------------------------- samples


def parse_labels(text: str | None, num_classes: int) -> list[int] | None:
    """The labels box: '3' or '0,1,2' -> [3] / [0, 1, 2]; empty -> None (:func:`genlab.run.parse_labels`)."""
    labels = run_labels(text, num_classes)
    return None if labels is None else labels.tolist()


def sample_images(explorer: Explorer, n: int, seed: int, labels: list[int] | None, watch: Watch | None = None):
    """n image samples for ``seed`` (:meth:`Explorer.samples`) -> (their grid (C, H', W'),
    the single images [(C, H, W)], their captions). Labels default to 0, 1, ..., k-1, 0, ...
    (cycled to n); a translator's paired samples are split into one-domain images."""
    caps = explorer.caps
    if caps["kind"] != "image":
        raise RequestError("image samples are for image models; this one makes " + caps["kind"])
    with watch or nullcontext():
        shown = explorer.samples(n, seed, labels)
    x, lab, n = shown.samples, shown.labels, len(shown.samples)
    c = domain_shape(explorer.model)[0]
    per = x.shape[1] // c
    images = x.reshape(n * per, c, *x.shape[2:]).clamp(0, 1)
    nrow = shown.nrow
    names = ("F(b): B -> A", "G(a): A -> B") if per == 2 else ("",)
    captions = []
    for i in range(n):
        for j in range(per):
            parts = [f"#{i}"] + ([f"label {int(lab[i])}"] if lab is not None else []) + ([names[j]] if per == 2 else [])
            captions.append("  ".join(parts))
    return make_grid(images, nrow=nrow), list(images), captions


def audio_samples(explorer: Explorer, n: int, seed: int, labels: list[int] | None, watch: Watch | None = None):
    """Sequence models (WaveNet): n clips for ``seed`` -> ((rate, int16 samples) for an audio
    player, the waveform picture, the WAV file bytes). Clips play one after another."""
    from ..data.audio import save_wav

    with watch or nullcontext():
        shown = explorer.samples(n, seed, labels)
    x = shown.samples
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = save_wav(x, Path(tmp) / "samples.wav", rate=AUDIO_RATE)
        raw = path.read_bytes()
    import wave

    with wave.open(io.BytesIO(raw)) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return (AUDIO_RATE, pcm), shown.image, raw


def points_plot(explorer: Explorer, n: int, seed: int):
    """A point model's n samples over the run's toy data and D's surface, with axes."""
    from ..data.toy2d import sample_toy
    from ..viz.plots import discriminator_surface

    g = torch.Generator().manual_seed(int(seed))
    with explorer.lock, torch.inference_mode():
        fake = explorer.model.sample(int(n), generator=g).float().cpu()
    if fake.dim() != 2 or fake.shape[1] != 2:
        raise RequestError(f"only 2-D point models are plotted; this one makes points of shape {tuple(fake.shape[1:])}")
    name = (explorer._doc.get("data") or {}).get("name")
    real = sample_toy(name, int(n), generator=torch.Generator().manual_seed(0)) if name in ("ring8", "grid25") else None
    model = explorer.model
    surface = None
    if "discriminate" in model.capabilities:
        inner = discriminator_surface(model)

        def surface(pts):
            with explorer.lock:
                return inner(pts)

    return plots.points_figure(real, fake, surface, title=name or "")


# ----------------------------------------------------------------------------- latent space


def manifold_plot(explorer: Explorer, n: int, dims: tuple[int, int], label: int | None):
    """The n x n manifold (:meth:`Explorer.manifold`) as a figure with the z values on its axes."""
    grid = explorer.manifold(n, dims, label)
    c, h, w = explorer.model.config.image_shape
    return plots.manifold_figure(grid, plots.quantile_axis(int(n)), (int(dims[0]), int(dims[1])), (h, w))


def projection_plot(explorer: Explorer, n: int = 500, seed: int = 0):
    """PCA of the codes ``encode`` gives for n test images of the run's data set, one
    colour per class: the Embedding Projector's first view, in 2-D."""
    ds = explorer.test_split()
    n = int(min(max(n, 10), MAX_PROJECTION, len(ds)))
    idx = torch.randperm(len(ds), generator=torch.Generator().manual_seed(int(seed)))[:n]
    x01 = ds.images[idx].float() / 255
    g = torch.Generator().manual_seed(int(seed))
    with explorer.lock, torch.inference_mode():
        x = explorer.model.prepare(x01, generator=g).to(explorer.model.device)
        codes = torch.cat([explorer.model.encode(xb).float().cpu() for xb in x.split(256)])
    proj, var = plots.pca_2d(codes.reshape(n, -1))
    labels = ds.labels[idx] if ds.labels is not None else None
    name = explorer._doc["data"]["name"]
    return plots.projection_figure(
        proj, labels, var, title=f"{n} {name} test images, codes of dimension {codes[0].numel()}"
    )


# ----------------------------------------------------------------------------- images in, images out


def can_complete(explorer: Explorer) -> bool:
    """Autoregressive image models that fill in missing pixels (``complete(x, mask)``)."""
    return explorer.caps["kind"] == "image" and "complete" in explorer.model.capabilities


def complete(
    explorer: Explorer, x01: Tensor, rows: int, n: int, seed: int, label: int | None, watch: Watch | None = None
) -> tuple[Tensor, Tensor]:
    """Keep the top ``rows`` rows of an image (C, H, W) in [0, 1] of the model's shape and let
    the model draw the rest, n times -> (the observed part, rows below grey, (C, H, W);
    a grid of the n completions (C, H', W'))."""
    c, h, w = explorer.model.config.image_shape
    if not 0 < rows < h:
        raise RequestError(f"observed rows must be in 1..{h - 1}, got {rows}")
    x01 = check_image("x01", x01, (c, h, w))[None]
    mask = torch.zeros(h, w)
    mask[:rows] = 1
    k = explorer.caps["num_classes"]
    lab = torch.full((n,), int(label or 0), dtype=torch.long) if k else None
    g = torch.Generator().manual_seed(int(seed))
    with explorer.lock, watch or nullcontext():
        out = (
            explorer.model.complete(x01.expand(n, -1, -1, -1).contiguous(), mask, generator=g, labels=lab).float().cpu()
        )
    shown = x01[0].clone()
    shown[:, rows:] = 0.5
    return shown, make_grid(out.clamp(0, 1), nrow=max(1, math.ceil(math.sqrt(n))))


def translate_cycle(explorer: Explorer, x01: Tensor, direction: str) -> tuple[Tensor, Tensor, Tensor]:
    """Translate an image (C, H, W) in [0, 1] with ``direction`` and back -> (the input, its
    translation, the cycle reconstruction), each (C, H, W) in [0, 1]."""
    there = explorer.translate(x01, direction)
    back = explorer.translate(there, "b2a" if direction == "a2b" else "a2b")
    return x01, there, back


def example_images(explorer: Explorer, folder: Path, count: int = 8) -> list[str]:
    """Write the first ``count`` test images of the run's data set (one per class where it
    has labels) as PNG files in ``folder``; their paths (none when there is no data)."""
    if explorer.caps["kind"] != "image":
        return []
    try:
        ds = explorer.test_split()
    except RequestError:
        return []
    c = domain_shape(explorer.model)[0]
    stacked = explorer.model.config.image_shape[0] != c  # a translator's two domains along channels
    picked: list[int] = []
    if ds.labels is not None:
        seen = set()
        for i, y in enumerate(ds.labels[:2000].tolist()):
            if y not in seen:
                seen.add(y)
                picked.append(i)
            if len(picked) == count:
                break
    picked = picked or list(range(min(count, len(ds))))
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, i in enumerate(picked):
        domain = k % 2 if stacked else 0  # translators: domain A and B in turn
        img = ds.images[i][domain * c : (domain + 1) * c].float() / 255
        path = folder / f"example-{i}{'ab'[domain] if stacked else ''}.png"
        to_pil(img).save(path)
        paths.append(str(path))
    return paths


def analysis_markdown(analysis: Analysis) -> str:
    """:meth:`Explorer.analyze`'s answer as text, one field a line: log p(x) in nats and bits/dim,
    and the outlier percentiles, each number with the estimator that produced it."""
    lines = []
    lik = analysis.likelihood
    if lik:
        offset = f" (discrete-data offset {lik.offset_nats:.2f})" if lik.offset_nats else ""
        lines += [
            f"- **log p(x)** = {lik.log_prob_nats:.2f} nats{offset}",
            f"- **NLL** = {lik.nll_nats:.2f} nats = **{lik.bits_per_dim:.4f} bits/dim**",
            f"- estimator: {lik.estimator}",
        ]
    out = analysis.outlier
    if out and out.get("available"):
        nll, cx = out["nll_bits_per_dim"], out["complexity"]
        lines += [
            "",
            f"**Outlier scores** against {out['reference']} (higher = more unusual):",
            "",
            f"- NLL: {nll['value']:.3f} bits/dim, above {nll['percentile']:.0f}% of them "
            f"(their mean {nll['reference_mean']:.3f} +- {nll['reference_std']:.3f})",
            f"- input complexity (NLL - PNG bits, Serra et al. 2020): {cx['value']:.3f}, "
            f"above {cx['percentile']:.0f}% of them",
            f"- estimator of these NLLs: {out['estimator']}",
        ]
    elif out:
        lines += ["", f"outlier scores: {out['reason']}"]
    if analysis.reconstruction is not None and not lik:
        lines.append("reconstruction = decode(encode(x))")
    return "\n".join(lines) or "done"
