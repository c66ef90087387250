"""The web explorer's engine: each feature of the page is one method of
:class:`Explorer` that takes typed keyword arguments and returns Python objects:
tensors (images (C, H, W) in [0, 1] at the model's own pixel size; the page
scales them up), :class:`~genlab.viz.samples.RenderedSamples`, :class:`Analysis`
and the card as a dict.

Features are chosen by the model's contract (``model.capabilities``,
``data_kind``, ``likelihood_kind``, ``config.num_classes``), never by its name,
so a new model gets every view its methods allow (see :func:`capabilities`):

* ``sample``: a grid of samples for a seed (a scatter plot over the
  discriminator's surface for points, a waveform for sequences);
* ``latent`` + ``decode``: sliders over the first flattened code entries and
  interpolation strips (lerp / slerp over flattened codes, :mod:`genlab.viz.latent`)
  for codes of any ``latent_shape``; the 2-D manifold figure for vectors of at most
  ``MAX_MANIFOLD_LATENT`` entries (not Glow's or VQ-VAE's image-sized codes);
* ``reconstruct``: the reconstruction of an image;
* ``log_prob``: its log-likelihood in nats and bits/dim, and where it falls
  among the run's own held-out images (:mod:`genlab.ood` scores), each number
  labelled with the estimator that produced it. A costly estimator is replaced by
  the model's cheaper one where it has one (:func:`interactive_settings`: DDPM's
  bound from 50 stratified terms instead of all T), and the reference images are
  cut to what the estimator scores in about ``REFERENCE_SECONDS``;
* ``translate(x, direction)`` with direction ``"a2b"`` / ``"b2a"`` on images in
  [0, 1] of one domain (``model.domain_channels`` channels: a translator's
  ``image_shape`` stacks two domains): image to image translation.

Images come in as tensors: turning an uploaded file into one is the page's job
(:mod:`genlab.app.uploads`). An argument out of range raises :class:`RequestError`,
whose message names the argument and what it accepts. Every model call holds one
lock: the page's threads share one model. Nothing here writes files into the run
directory.
"""

from __future__ import annotations

import json
import math
import numbers
import sys
import threading
import time
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..config import to_dict
from ..distributions import bits_per_dim
from ..errors import GenlabError
from ..io import read_json
from ..metrics.likelihood import is_importance_sampled, log_prob_offset
from ..run import Run
from ..viz import latent as latent_viz
from ..viz.images import make_grid
from ..viz.samples import RenderedSamples, check_picture, domain_shape, render_samples

MAX_SAMPLES = 64  # images per sample grid
MAX_POINTS = 5000  # points per scatter plot of a point model
MAX_FRAMES = 32  # images per interpolation strip
MAX_MANIFOLD = 30  # manifold grid points per axis
MAX_MANIFOLD_LATENT = 128  # latent vectors longer than this get no 2-D manifold (a slice through 2 of them is blank)
MAX_IW_SAMPLES = 1000  # importance samples per likelihood estimate
MAX_SEED = 2**63 - 1
MAX_LATENT_VALUE = 100.0  # |z_j| accepted
DEFAULT_IW_SAMPLES = 100
DIRECTIONS = ("a2b", "b2a")
INTERACTIVE_BOUND_TERMS = 50  # terms of DDPM's bound in an interactive estimate (of T = 1000 by default)
REFERENCE_SECONDS = 20.0  # about the time the reference images of the outlier scores may take
MIN_REFERENCE_EXAMPLES = 10


class RequestError(GenlabError, ValueError):
    """An argument the explorer cannot answer as given; the message says what would be right."""


# ----------------------------------------------------------------------------- argument checks


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_int(name: str, value: Any, lo: int, hi: int) -> int:
    """``value`` as an int in lo..hi, else RequestError naming ``name`` and the range."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise RequestError(f"{name!r} must be an integer in {lo}..{hi}, got {_short(value)}")
    if not lo <= value <= hi:
        raise RequestError(f"{name!r} must be in {lo}..{hi}, got {value}")
    return int(value)


def check_floats(name: str, value: Any, max_len: int, exact: bool = False) -> Tensor | None:
    """A sequence of at most (``exact``: exactly) ``max_len`` finite numbers within
    +-``MAX_LATENT_VALUE`` (a list, a tuple or a 1-D tensor) -> float32 (len,); None stays None."""
    if value is None:
        return None
    what = f"exactly {max_len}" if exact else f"at most {max_len}"
    numbers_only = isinstance(value, Tensor) or (
        isinstance(value, (list, tuple)) and all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in value)
    )
    t = torch.as_tensor(value, dtype=torch.float64) if numbers_only else None
    if t is None or t.dim() != 1 or not (len(t) == max_len if exact else len(t) <= max_len):
        raise RequestError(f"{name!r} must be a list of {what} numbers, got {_short(value)}")
    bad = ~torch.isfinite(t) | (t.abs() > MAX_LATENT_VALUE)
    if bad.any():
        raise RequestError(f"{name!r} must hold finite numbers within +-{MAX_LATENT_VALUE:g}, got {float(t[bad][0])!r}")
    return t.float()


def check_image(name: str, x: Any, shape: Sequence[int]) -> Tensor:
    """One image, a float tensor of ``shape`` (C, H, W) with values in [0, 1] -> float32 on the CPU."""
    shape = tuple(int(s) for s in shape)
    if not isinstance(x, Tensor) or not x.is_floating_point():
        got = f"a {x.dtype} tensor" if isinstance(x, Tensor) else _short(x)
        raise RequestError(f"{name!r} must be one image, a float tensor {shape} (C, H, W) in [0, 1], got {got}")
    if tuple(x.shape) != shape:
        raise RequestError(
            f"{name!r} has shape {tuple(x.shape)}, this model takes one image of shape {shape} (C, H, W) "
            "(genlab.app.uploads.image_tensor fits a Pillow image to it)"
        )
    x = x.detach().float().cpu()
    if not torch.isfinite(x).all() or x.min() < 0 or x.max() > 1:
        raise RequestError(f"{name!r} must hold values in [0, 1], got {float(x.min()):g}..{float(x.max()):g}")
    return x


def finite(value: Any) -> Any:
    """NaN and infinities -> None, recursively, so that the card is strict JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


# ----------------------------------------------------------------------------- what the model offers


def latent_dim(model) -> int | None:
    """The number of entries of one flattened code (prod(latent_shape)) where the model
    draws codes from a prior, else None."""
    if "latent" not in model.capabilities:
        return None
    return math.prod(int(s) for s in model.latent_shape)


def capabilities(model) -> dict[str, Any]:
    """What the explorer can show for ``model``, from its contract alone."""
    kind = model.data_kind
    image = kind == "image"
    has = model.capabilities
    d = latent_dim(model)
    latent = image and d is not None and "decode" in has
    caps = {
        "kind": kind,
        "sample": "sample" in has,
        "num_classes": int(model.config.num_classes),
        "latent_dim": d,
        "latent_shape": list(model.latent_shape) if d is not None else None,
        "latent": latent,
        "manifold": latent and len(model.latent_shape) == 1 and 2 <= d <= MAX_MANIFOLD_LATENT,
        "reconstruct": image and "reconstruct" in has,
        "log_prob": image and model.likelihood_kind != "none",
        "importance_sampled": image and is_importance_sampled(model),
        "translate": image and "translate" in has,
    }
    caps["analyze"] = caps["reconstruct"] or caps["log_prob"]  # what Explorer.analyze can do with an image
    return caps


def interactive_settings(model) -> dict[str, Any]:
    """Config changes ({field: value}) that give ``model.log_prob`` a cheaper estimator of the
    same quantity for a page: DDPM's bound over all T terms (about 15 s an image on a CPU
    core at T = 1000) becomes its unbiased stratified estimate from ``INTERACTIVE_BOUND_TERMS``
    terms (``config.bound_timesteps``). Empty for every other model."""
    config = model.config
    terms = getattr(config, "bound_timesteps", None)
    if terms is None or (terms or config.timesteps) <= INTERACTIVE_BOUND_TERMS:
        return {}
    return {"bound_timesteps": INTERACTIVE_BOUND_TERMS}


@dataclass(frozen=True)
class Likelihood:
    """log p(x) of one image: ``log_prob_nats`` as the model gives it, ``offset_nats`` its
    discrete-data offset, ``nll_nats`` = -(log_prob + offset) and its ``bits_per_dim``; the
    ``estimator`` that produced them, and the class it is conditional on (None: unconditional)."""

    log_prob_nats: float
    offset_nats: float
    nll_nats: float
    bits_per_dim: float
    estimator: str
    conditional_on_label: int | None


@dataclass
class Analysis:
    """What :meth:`Explorer.analyze` finds in one image. Images are (C, H, W) in [0, 1]:
    ``input`` as given, ``model_input`` the binarized draw the model scores (binary models
    only, else None), ``reconstruction`` (None without ``reconstruct``). ``likelihood``: None
    without ``log_prob``. ``outlier``: where the image's scores fall among the run's held-out
    images ({"available": False, "reason"} when there are none; None when not computed)."""

    input: Tensor
    seed: int
    label: int | None
    model_input: Tensor | None = None
    reconstruction: Tensor | None = None
    likelihood: Likelihood | None = None
    outlier: dict | None = None


# ----------------------------------------------------------------------------- the explorer


class Explorer:
    """One loaded model and the answers of the web page's views.

    ``run_dir`` (optional) is only read: ``config.json`` (the run's data set, for the
    outlier reference), ``metrics.jsonl`` and ``eval.json`` (the model card).
    ``reference_examples``: held-out images of the run's data set that an analysed
    image is compared with (0: no outlier scores). ``data_dir``: where the run's data set
    is (``<name>/<files>``, as ``shared/data``), before the run's own ``data.data_dir``
    and genlab's cache; nothing is downloaded.
    """

    def __init__(
        self,
        model,
        run_dir: str | Path | None = None,
        *,
        reference_examples: int = 100,
        data_dir: str | Path | None = None,
    ):
        self.model = model.eval()
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.reference_examples = int(reference_examples)
        self.data_dir = data_dir
        self.lock = threading.Lock()
        self.caps = capabilities(model)
        self.interactive = interactive_settings(model)
        self.run = Run(self.run_dir, model=self.model) if self.run_dir is not None else None
        self._doc = self.run.doc if self.run is not None else {}
        self._data_lock = threading.Lock()
        self._test_split = None  # the data set's test split, or why there is none (loaded once)
        self._references: dict[int, dict] = {}  # outlier scores of the reference images, per seed
        self._reference_count: int | None = None  # fixed by the first analysis's scoring time

    @classmethod
    def from_run(cls, run: str | Path, device: str = "cpu", **kwargs) -> "Explorer":
        """Load ``run`` (a run directory, a ``model.save`` folder or ``pretrained:<name>``) with
        :func:`genlab.load`."""
        opened = Run(run, device=device)
        return cls(opened.model, opened.path, **kwargs)

    # ------------------------------------------------------------------ the card
    def card(self) -> dict:
        """Name, paper line, config, parameter count, capabilities and the training summary
        (no NaN or infinity: strict JSON)."""
        model = self.model
        doc = sys.modules[type(model).__module__].__doc__ or ""
        name = self._doc.get("model_name")
        if name is None:
            from ..registry import name_of

            try:
                name = name_of(model)
            except GenlabError:
                name = type(model).__name__
        return finite(
            {
                "name": name,
                "class": type(model).__name__,
                "summary": " ".join(doc.strip().split("\n\n")[0].split()),
                "run": str(self.run_dir) if self.run_dir is not None else None,
                "config": to_dict(model.config),
                "data": self._doc.get("data"),
                "train": self._doc.get("train"),
                "parameters": sum(p.numel() for p in model.parameters()),
                "input_mode": model.input_mode,
                "capabilities": self.caps,
                "limits": {
                    "samples": MAX_SAMPLES,
                    "points": MAX_POINTS,
                    "frames": MAX_FRAMES,
                    "manifold": MAX_MANIFOLD,
                    "iw_samples": MAX_IW_SAMPLES,
                },
                "metrics": self._metrics(),
                "eval": self._read_optional_json("eval.json"),
                "model_card": self._read_optional_json("card.json"),  # a shipped model's measurements
            }
        )

    def _read_optional_json(self, name: str):
        path = self.run_dir / name if self.run_dir is not None else None
        if path is None or not path.is_file():
            return None
        try:
            return read_json(path)
        except GenlabError:
            return None

    def _metrics(self, max_points: int = 200) -> dict | None:
        """Summary of ``metrics.jsonl``: records, last step, the last record, and each
        numeric series thinned to about ``max_points`` (step, value) pairs (every k-th
        record, plus the last)."""
        path = self.run_dir / "metrics.jsonl" if self.run_dir is not None else None
        if path is None or not path.is_file():
            return None
        records = []
        for line in path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a crash
            if isinstance(rec, dict) and isinstance(rec.get("step"), int):
                records.append(rec)
        if not records:
            return None
        keep = records[:: max(1, math.ceil(len(records) / max_points))]
        if keep[-1] is not records[-1]:
            keep.append(records[-1])
        keys = [
            k for k, v in records[-1].items() if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool)
        ]
        series = {
            k: [[r["step"], r[k]] for r in keep if isinstance(r.get(k), (int, float)) and math.isfinite(r[k])]
            for k in keys
        }
        return {"records": len(records), "last_step": records[-1]["step"], "last": records[-1], "series": series}

    # ------------------------------------------------------------------ helpers
    def _need(self, capability: str, what: str) -> None:
        if not self.caps.get(capability):
            raise RequestError(
                f"{type(self.model).__name__} cannot {what} (capabilities: "
                f"{', '.join(k for k, v in self.caps.items() if v is True) or 'none'})"
            )

    def _label(self, label: int | None) -> int | None:
        """``label`` for a class-conditional model (None: 0); None for an unconditional one."""
        k = self.caps["num_classes"]
        if k == 0:
            if label is not None:
                raise RequestError("'label' was given, but this model is unconditional (num_classes=0)")
            return None
        return check_int("label", 0 if label is None else label, 0, k - 1)

    def _labels(self, labels: Sequence[int] | Tensor | None, n: int) -> Tensor | None:
        """n labels from ``labels`` (repeated to fill n); None: 0, 1, ..., k-1, 0, ...; None for
        an unconditional model."""
        k = self.caps["num_classes"]
        if labels is None:
            return torch.arange(n) % k if k else None
        if k == 0:
            raise RequestError("'labels' were given, but this model is unconditional (num_classes=0)")
        values = labels.tolist() if isinstance(labels, Tensor) and labels.dim() == 1 else labels
        if (
            not isinstance(values, (list, tuple))
            or not values
            or any(isinstance(v, bool) or not isinstance(v, numbers.Integral) for v in values)
        ):
            raise RequestError(f"'labels' must be a non-empty list of integers in 0..{k - 1}, got {_short(labels)}")
        bad = [v for v in values if not 0 <= v < k]
        if bad:
            raise RequestError(f"label {bad[0]} is out of range: this model has {k} classes (0..{k - 1})")
        return torch.tensor([int(values[i % len(values)]) for i in range(n)])

    @contextmanager
    def _scoring(self):
        """The model lock, with :attr:`interactive` (the cheaper likelihood estimator) in force."""
        config = self.model.config
        with self.lock:
            saved = {key: getattr(config, key) for key in self.interactive}
            try:
                for key, value in self.interactive.items():
                    setattr(config, key, value)
                yield
            finally:
                for key, value in saved.items():
                    setattr(config, key, value)

    def prior(self, n: int, seed: int) -> Tensor:
        """n flattened latent codes (n, latent_dim) for ``seed``: ``model.latent(n, generator=g)``."""
        return self.model.latent(n, generator=torch.Generator().manual_seed(seed)).float().cpu().reshape(n, -1)

    def _decode(self, z: Tensor, label: int | None, seed: int) -> Tensor:
        """decode(z) in [0, 1] of flattened codes z (N, latent_dim), reshaped to (N, *latent_shape),
        with ``label`` and a generator seeded with ``seed`` (for decoders that sample). Call with
        the lock held."""
        labels = None if label is None else torch.full((z.shape[0],), label, dtype=torch.long, device=self.model.device)
        z = z.reshape(len(z), *self.model.latent_shape)
        with torch.inference_mode():
            return self.model.decode(
                z.to(self.model.device), labels=labels, generator=torch.Generator().manual_seed(seed)
            )

    # ------------------------------------------------------------------ views
    def samples(
        self, n: int | None = None, seed: int = 0, labels: Sequence[int] | Tensor | None = None
    ) -> RenderedSamples:
        """n samples for ``seed`` as :func:`genlab.viz.samples.render_samples` draws and pictures
        them: a grid of images (sequences: waveforms; points: a scatter plot over the run's
        data). ``n`` defaults to 1000 points or 16 images. ``labels`` (class-conditional models):
        repeated to fill n; by default 0, 1, ..., k-1, 0, ..."""
        self._need("sample", "sample")
        points = self.caps["kind"] == "points"
        n = check_int("n", (1000 if points else 16) if n is None else n, 1, MAX_POINTS if points else MAX_SAMPLES)
        seed = check_int("seed", seed, 0, MAX_SEED)
        lab = self._labels(labels, n)
        try:
            check_picture(self.model, n)
        except GenlabError as e:
            raise RequestError(str(e)) from None
        real = (self._doc.get("data") or {}).get("name")
        with self.lock, torch.inference_mode():
            return render_samples(
                self.model, n, generator=torch.Generator().manual_seed(seed), labels=lab, real=real, size=384
            )

    def latent(
        self,
        seed: int = 0,
        values: Sequence[float] | Tensor | None = None,
        z: Sequence[float] | Tensor | None = None,
        label: int | None = None,
    ) -> tuple[Tensor, Tensor]:
        """(decode(z) (C, H, W) in [0, 1], z (latent_dim,) flattened; decode sees (1, *latent_shape)).

        z starts as the prior draw for ``seed``; ``z`` (all latent_dim entries) replaces it
        whole, then ``values`` overwrite its first entries.
        """
        self._need("latent", "decode latent codes")
        d = self.caps["latent_dim"]
        seed = check_int("seed", seed, 0, MAX_SEED)
        label = self._label(label)
        full = check_floats("z", z, d, exact=True)
        values = check_floats("values", values, d)
        code = self.prior(1, seed)[0] if full is None else full
        if values is not None:
            code[: len(values)] = values
        with self.lock:
            image = self._decode(code.unsqueeze(0), label, seed)[0].float().cpu()
        return image.clamp(0, 1), code

    def interpolate(
        self, seed_a: int = 0, seed_b: int = 1, steps: int = 10, method: str = "slerp", label: int | None = None
    ) -> Tensor:
        """A strip (C, H', W') in [0, 1] of ``steps`` images from the prior draw of seed_a to that
        of seed_b (both included; ``prior(1, seed)``), along ``method``: "slerp" or "lerp"."""
        self._need("latent", "interpolate in latent space")
        a, b = check_int("seed_a", seed_a, 0, MAX_SEED), check_int("seed_b", seed_b, 0, MAX_SEED)
        steps = check_int("steps", steps, 2, MAX_FRAMES)
        if method not in ("slerp", "lerp"):
            raise RequestError(f"'method' must be 'slerp' or 'lerp', got {_short(method)}")
        label = self._label(label)
        za, zb = self.prior(1, a)[0], self.prior(1, b)[0]
        with self.lock:
            frames = latent_viz.z_interpolation_frames(
                self.model, za, zb, steps, method, labels=label, generator=torch.Generator().manual_seed(a)
            )
        return make_grid(torch.stack(frames), nrow=steps).clamp(0, 1)

    def manifold(self, n: int = 15, dims: Sequence[int] = (0, 1), label: int | None = None) -> Tensor:
        """The n x n manifold image (C, n*H, n*W) in [0, 1] over latent dims (i, j) (Kingma &
        Welling 2014, Fig. 4; other dims at 0: a slice when latent_dim > 2)."""
        self._need("manifold", "draw a 2-D manifold (needs decode and latent_dim >= 2)")
        d = self.caps["latent_dim"]
        n = check_int("n", n, 2, MAX_MANIFOLD)
        if (
            not isinstance(dims, (list, tuple))
            or len(dims) != 2
            or any(isinstance(v, bool) or not isinstance(v, numbers.Integral) for v in dims)
            or dims[0] == dims[1]
            or not all(0 <= v < d for v in dims)
        ):
            raise RequestError(f"'dims' must be two different latent dimensions in 0..{d - 1}, got {_short(dims)}")
        label = self._label(label)
        with self.lock:
            image = latent_viz.manifold_grid(
                self.model,
                n=n,
                dims=(int(dims[0]), int(dims[1])),
                padding=0,
                labels=label,
                generator=torch.Generator().manual_seed(0),
            )
        return image.float().cpu().clamp(0, 1)

    def analyze(self, x01: Tensor, seed: int = 0, label: int | None = None, iw_samples: int | None = None) -> Analysis:
        """One image (C, H, W) in [0, 1] of the model's ``image_shape`` -> the image as the model
        sees it, its reconstruction (reconstruct), log-likelihood (log_prob) and outlier scores
        (unconditional scores, with ``reference_examples``), with the cheaper estimator of
        :attr:`interactive` (named in ``likelihood.estimator``). ``iw_samples``: importance
        samples of an importance-sampled model (default ``DEFAULT_IW_SAMPLES``; ignored by others).

        Randomness (binarization / dequantization, importance samples) comes from one
        generator seeded with ``seed``, in this order: ``x = model.prepare(x01, g)``, then
        ``model.log_prob(x, labels=..., iw_samples=k, generator=g)`` (k None unless importance-sampled).
        """
        self._need("analyze", "score or reconstruct an image (needs reconstruct or log_prob)")
        model = self.model
        x01 = check_image("x01", x01, model.config.image_shape)[None]
        seed = check_int("seed", seed, 0, MAX_SEED)
        label = self._label(label)
        k = None
        if self.caps["importance_sampled"]:
            k = check_int("iw_samples", DEFAULT_IW_SAMPLES if iw_samples is None else iw_samples, 1, MAX_IW_SAMPLES)
        out = Analysis(input=x01[0], seed=seed, label=label)
        g = torch.Generator().manual_seed(seed)
        with self._scoring(), torch.random.fork_rng(devices=[]), torch.inference_mode():
            torch.manual_seed(seed)  # for models that draw from the global RNG
            x = model.prepare(x01, generator=g).to(model.device)
            if model.input_mode == "binary":
                out.model_input = x[0].float().cpu()
            if self.caps["log_prob"]:
                labels = torch.tensor([label], device=model.device) if label is not None else None
                lp = float(model.log_prob(x, labels=labels, iw_samples=k, generator=g)[0])
                offset = log_prob_offset(model)
                nll = -(lp + offset)
                out.likelihood = Likelihood(
                    log_prob_nats=lp,
                    offset_nats=offset,
                    nll_nats=nll,
                    bits_per_dim=bits_per_dim(nll, model.num_dims),
                    estimator=model.likelihood_description(k),
                    conditional_on_label=label,
                )
            if self.caps["reconstruct"]:  # sampling decoders: the seeded global RNG
                out.reconstruction = model.reconstruct(x)[0].float().cpu().clamp(0, 1)
        if out.likelihood is not None and label is None and self.reference_examples > 0:
            out.outlier = self._outlier(x01, seed)
        return out

    def translate(self, x01: Tensor, direction: str = "a2b") -> Tensor:
        """``model.translate(x01, direction)`` of one image (C, H, W) in [0, 1] of one domain's
        shape (:func:`domain_shape`), direction "a2b" or "b2a": its translation (C, H, W) in [0, 1]."""
        self._need("translate", "translate images (needs translate(x, direction))")
        if direction not in DIRECTIONS:
            raise RequestError(f"'direction' must be 'a2b' or 'b2a', got {_short(direction)}")
        x01 = check_image("x01", x01, domain_shape(self.model))
        with self.lock, torch.inference_mode():
            y = self.model.translate(x01[None].to(self.model.device), direction)
        return y[0].float().cpu().clamp(0, 1)

    # ------------------------------------------------------------------ outlier scores
    def _outlier(self, x01: Tensor, seed: int) -> dict:
        """Where an image's scores fall among the run's held-out images (higher = more unusual):
        the NLL in bits/dim and the input-complexity score of Serra et al. (2020), both as
        :mod:`genlab.ood` computes them (latent-variable models with its cheaper
        ``DEFAULT_OOD_IW_SAMPLES`` importance samples, on both sides), as the percentage of
        reference images scoring lower. The reference images are the first of the test split,
        as many as the estimator scores in about ``REFERENCE_SECONDS`` (timed on the first
        analysis; at least ``MIN_REFERENCE_EXAMPLES``, at most ``reference_examples``)."""
        from .. import ood

        images = self._reference_images()
        if isinstance(images, str):
            return {"available": False, "reason": images}
        methods = ["likelihood", "complexity"]
        k = ood.DEFAULT_OOD_IW_SAMPLES if self.caps["importance_sampled"] else None
        with self._scoring():
            start = time.perf_counter()
            mine = ood.scores(self.model, x01, methods, seed=seed)
            if self._reference_count is None:
                affordable = int(REFERENCE_SECONDS / max(time.perf_counter() - start, 1e-6))
                self._reference_count = min(len(images), max(MIN_REFERENCE_EXAMPLES, affordable))
            if seed not in self._references:
                s = ood.scores(self.model, images[: self._reference_count], methods, seed=seed)
                self._references[seed] = {"nll_bits_per_dim": s["likelihood"], "complexity": s["complexity"]}
            ref = self._references[seed]
            estimator = self.model.likelihood_description(k)
        result = {
            "available": True,
            "reference": f"{self._doc['data']['name']} test split, first {self._reference_count} images",
            "iw_samples": k,
            "estimator": estimator,
            "higher_is_more_unusual": True,
        }
        for key, value in (
            ("nll_bits_per_dim", float(mine["likelihood"][0])),
            ("complexity", float(mine["complexity"][0])),
        ):
            scores = ref[key]
            result[key] = {
                "value": value,
                "percentile": 100.0 * float((scores < value).double().mean()),
                "reference_mean": float(scores.mean()),
                "reference_std": float(scores.std()) if len(scores) > 1 else 0.0,
            }
        return result

    def test_split(self):
        """The test split of the run's data set at the model's image size (a translator's two
        domains stacked along channels), loaded once; RequestError saying why when there is none."""
        with self._data_lock:
            if self._test_split is None:
                name = (self._doc.get("data") or {}).get("name")
                self._test_split = "the run's config.json names no data set"
                try:
                    if name:
                        self._test_split = self.run.dataset("test", data_dir=self.data_dir, download=False)
                except (GenlabError, OSError, ValueError) as e:  # the page cannot download: say where to point it
                    reason = str(e).split(" (or pass download=True")[0]
                    self._test_split = f"{reason} (genlab serve --data-dir FOLDER names the folder of the data sets)"
            if isinstance(self._test_split, str):
                raise RequestError(self._test_split)
            return self._test_split

    def _reference_images(self) -> Tensor | str:
        """The first ``reference_examples`` test images of the run's data set (uint8), or the
        reason there are none."""
        try:
            return self.test_split().images[: self.reference_examples]
        except RequestError as e:
            return f"no reference images: {e}"
