"""The web explorer's engine: each feature of the page is one method of
:class:`Explorer` that takes a JSON object (a dict of plain values) and returns
a JSON-ready dict. Images come back as base64 PNG text at the model's own pixel
size (the page scales them up); pixel values are the model's [0, 1] output
rounded to 8 bits, exactly as :func:`genlab.viz.images.to_pil` writes them.

Features are chosen by the model's contract (``model.capabilities``,
``data_kind``, ``likelihood_kind``, ``config.num_classes``), never by its name,
so a new model gets every view its methods allow (see :func:`capabilities`):

* ``sample``: a grid of samples for a seed (a scatter plot over the
  discriminator's surface for points, a waveform for sequences);
* ``latent`` + ``decode``: sliders over the first flattened code entries and
  interpolation strips (lerp / slerp over flattened codes, :mod:`genlab.viz.latent`)
  for codes of any ``latent_shape``; the 2-D manifold figure for vectors of at most
  ``MAX_MANIFOLD_LATENT`` entries (not Glow's or VQ-VAE's image-sized codes);
* ``reconstruct``: the reconstruction of an uploaded image;
* ``log_prob``: its log-likelihood in nats and bits/dim, and where it falls
  among the run's own held-out images (:mod:`genlab.ood` scores), each number
  labelled with the estimator that produced it. A costly estimator is replaced by
  the model's cheaper one where it has one (:func:`interactive_settings`: DDPM's
  bound from 50 stratified terms instead of all T), and the reference images are
  cut to what the estimator scores in about ``REFERENCE_SECONDS``;
* ``translate(x, direction)`` with direction ``"a2b"`` / ``"b2a"`` on images in
  [0, 1] of one domain (``model.domain_channels`` channels: a translator's
  ``image_shape`` stacks two domains): image to image translation.

Bad input raises :class:`RequestError` (the server answers HTTP 400 with its
message). Every model call holds one lock: the server's threads share one model.
Nothing here writes files into the run directory.
"""

from __future__ import annotations

import math
import sys
import threading
import time
from contextlib import contextmanager
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
from ..viz.samples import domain_shape, render_samples
from .requests import (  # noqa: F401  (RequestError, MAX_IMAGE_SIDE and decode_upload are public here too)
    MAX_IMAGE_SIDE,
    RequestError,
    _get_floats,
    _get_int,
    _image_reply,
    _pil_reply,
    _short,
    decode_upload,
    finite,
    png_base64,
)

MAX_SAMPLES = 64  # images per sample grid
MAX_POINTS = 5000  # points per scatter plot of a point model
MAX_FRAMES = 32  # images per interpolation strip
MAX_MANIFOLD = 30  # manifold grid points per axis
MAX_MANIFOLD_LATENT = 128  # latent vectors longer than this get no 2-D manifold (a slice through 2 of them is blank)
MAX_IW_SAMPLES = 1000  # importance samples per likelihood estimate
MAX_SEED = 2**63 - 1
DEFAULT_IW_SAMPLES = 100
DIRECTIONS = ("a2b", "b2a")
INTERACTIVE_BOUND_TERMS = 50  # terms of DDPM's bound in an interactive estimate (of T = 1000 by default)
REFERENCE_SECONDS = 20.0  # about the time the reference images of the outlier scores may take
MIN_REFERENCE_EXAMPLES = 10


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
    caps["analyze"] = caps["reconstruct"] or caps["log_prob"]  # what /api/analyze can do with an image
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


# ----------------------------------------------------------------------------- the explorer


class Explorer:
    """One loaded model and the answers of the web page's requests.

    ``run_dir`` (optional) is only read: ``config.json`` (the run's data set, for the
    outlier reference), ``metrics.jsonl`` and ``eval.json`` (the model card).
    ``reference_examples``: held-out images of the run's data set that an uploaded
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
        self._reference_count: int | None = None  # fixed by the first upload's scoring time

    @classmethod
    def from_run(cls, run: str | Path, device: str = "cpu", **kwargs) -> "Explorer":
        """Load ``run`` (a run directory, a ``model.save`` folder or ``pretrained:<name>``) with
        :func:`genlab.load`."""
        opened = Run(run, device=device)
        return cls(opened.model, opened.path, **kwargs)

    # ------------------------------------------------------------------ the card
    def card(self, body: dict | None = None) -> dict:
        """Name, paper line, config, parameter count, capabilities and the training summary."""
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
        import json

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

    def _seed(self, body: dict, key: str = "seed", default: int = 0) -> int:
        return _get_int(body, key, default, 0, MAX_SEED)

    def _label(self, body: dict) -> int | None:
        """The request's "label" for a class-conditional model (default 0); None otherwise."""
        k = self.caps["num_classes"]
        if k == 0:
            if body.get("label") is not None:
                raise RequestError("'label' was given, but this model is unconditional (num_classes=0)")
            return None
        return _get_int(body, "label", 0, 0, k - 1)

    def _labels(self, body: dict, n: int) -> Tensor | None:
        """n labels from "labels" (a list, repeated to fill n) or "label"; default 0, 1, ..., k-1, 0, ..."""
        k = self.caps["num_classes"]
        values = body.get("labels")
        if values is None:
            if k and body.get("label") is not None:
                return torch.full((n,), self._label(body), dtype=torch.long)
            self._label(body)  # an unconditional model given a "label" is an error
            return torch.arange(n) % k if k else None
        if k == 0:
            raise RequestError("'labels' were given, but this model is unconditional (num_classes=0)")
        if (
            not isinstance(values, list)
            or not values
            or any(isinstance(v, bool) or not isinstance(v, int) for v in values)
        ):
            raise RequestError(f"'labels' must be a non-empty list of integers in 0..{k - 1}, got {_short(values)}")
        bad = [v for v in values if not 0 <= v < k]
        if bad:
            raise RequestError(f"label {bad[0]} is out of range: this model has {k} classes (0..{k - 1})")
        return torch.tensor([values[i % len(values)] for i in range(n)])

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
        with the request's label and a generator seeded with ``seed`` (for decoders that
        sample). Call with the lock held."""
        labels = None if label is None else torch.full((z.shape[0],), label, dtype=torch.long, device=self.model.device)
        z = z.reshape(len(z), *self.model.latent_shape)
        with torch.inference_mode():
            return self.model.decode(
                z.to(self.model.device), labels=labels, generator=torch.Generator().manual_seed(seed)
            )

    # ------------------------------------------------------------------ endpoints
    def samples(self, body: dict) -> dict:
        """{"n", "seed", "labels" | "label"} -> :func:`genlab.viz.samples.render_samples`: a grid
        of n samples (sequences: waveforms; points: a scatter plot over the run's data)."""
        self._need("sample", "sample")
        kind = self.caps["kind"]
        n = _get_int(body, "n", 1000 if kind == "points" else 16, 1, MAX_POINTS if kind == "points" else MAX_SAMPLES)
        seed = self._seed(body)
        labels = self._labels(body, n)
        real = (self._doc.get("data") or {}).get("name")
        with self.lock, torch.inference_mode():
            try:
                shown = render_samples(
                    self.model, n, generator=torch.Generator().manual_seed(seed), labels=labels, real=real, size=384
                )
            except GenlabError as e:
                raise RequestError(str(e)) from None
        extra = {"nrow": shown.nrow} if shown.nrow is not None else {}
        return _pil_reply(shown.image, n=n, **extra, seed=seed, labels=labels.tolist() if labels is not None else None)

    def latent(self, body: dict) -> dict:
        """{"seed", "values" (the first k entries) | "z" (all of them), "label"} -> decode(z) and
        z, flattened (latent_dim values; decode sees (1, *latent_shape)).

        z starts as the prior draw for ``seed``; "values" overwrite its first entries,
        "z" replaces it whole.
        """
        self._need("latent", "decode latent codes")
        d = self.caps["latent_dim"]
        seed = self._seed(body)
        label = self._label(body)
        z = self.prior(1, seed)[0]
        full = _get_floats(body, "z", d, exact=True)
        if full is not None:
            z = torch.tensor(full, dtype=torch.float32)
        values = _get_floats(body, "values", d)
        if values:
            z[: len(values)] = torch.tensor(values, dtype=torch.float32)
        with self.lock:
            image = self._decode(z.unsqueeze(0), label, seed)[0].float().cpu()
        return _image_reply(image, z=z.tolist(), seed=seed, label=label)

    def interpolate(self, body: dict) -> dict:
        """{"seed_a", "seed_b", "steps", "method": "slerp" | "lerp", "label"} -> a strip of
        ``steps`` images from the prior draw of seed_a to that of seed_b (both included)."""
        self._need("latent", "interpolate in latent space")
        a, b = self._seed(body, "seed_a", 0), self._seed(body, "seed_b", 1)
        steps = _get_int(body, "steps", 10, 2, MAX_FRAMES)
        method = body.get("method", "slerp")
        if method not in ("slerp", "lerp"):
            raise RequestError(f"'method' must be 'slerp' or 'lerp', got {_short(method)}")
        label = self._label(body)
        za, zb = self.prior(1, a)[0], self.prior(1, b)[0]
        with self.lock:
            frames = latent_viz.z_interpolation_frames(
                self.model, za, zb, steps, method, labels=label, generator=torch.Generator().manual_seed(a)
            )
        return _image_reply(
            make_grid(torch.stack(frames), nrow=steps), steps=steps, method=method, z_a=za.tolist(), z_b=zb.tolist()
        )

    def manifold(self, body: dict) -> dict:
        """{"n", "dims": [i, j], "label"} -> the n x n manifold figure over latent dims i, j
        (Kingma & Welling 2014, Fig. 4; other dims at 0: a slice when latent_dim > 2)."""
        self._need("manifold", "draw a 2-D manifold (needs decode and latent_dim >= 2)")
        d = self.caps["latent_dim"]
        n = _get_int(body, "n", 15, 2, MAX_MANIFOLD)
        dims = body.get("dims", [0, 1])
        if (
            not isinstance(dims, list)
            or len(dims) != 2
            or any(isinstance(v, bool) or not isinstance(v, int) for v in dims)
            or dims[0] == dims[1]
            or not all(0 <= v < d for v in dims)
        ):
            raise RequestError(f"'dims' must be two different latent dimensions in 0..{d - 1}, got {_short(dims)}")
        label = self._label(body)
        with self.lock:
            image = latent_viz.manifold_grid(
                self.model, n=n, dims=tuple(dims), padding=0, labels=label, generator=torch.Generator().manual_seed(0)
            )
        return _image_reply(image, n=n, dims=dims)

    def analyze(self, body: dict) -> dict:
        """{"image", "fit", "seed", "label", "iw_samples"} -> the image as the model sees it, its
        reconstruction (reconstruct), log-likelihood (log_prob) and outlier scores, with the
        cheaper estimator of :attr:`interactive` (named in the answer's "estimator").

        Randomness (binarization / dequantization, importance samples) comes from one
        generator seeded with "seed", in this order: ``x = model.prepare(x01, g)``, then
        ``model.log_prob(x, labels=..., iw_samples=k, generator=g)`` (k None unless importance-sampled).
        """
        self._need("analyze", "score or reconstruct an image (needs reconstruct or log_prob)")
        model = self.model
        x01 = decode_upload(body.get("image"), tuple(model.config.image_shape), bool(body.get("fit", False)))
        seed = self._seed(body)
        label = self._label(body)
        k = (
            _get_int(body, "iw_samples", DEFAULT_IW_SAMPLES, 1, MAX_IW_SAMPLES)
            if self.caps["importance_sampled"]
            else None
        )
        out: dict[str, Any] = {"input": png_base64(x01[0]), "seed": seed, "label": label}
        g = torch.Generator().manual_seed(seed)
        with self._scoring(), torch.random.fork_rng(devices=[]), torch.inference_mode():
            torch.manual_seed(seed)  # for models that draw from the global RNG
            x = model.prepare(x01, generator=g).to(model.device)
            if model.input_mode == "binary":
                out["model_input"] = png_base64(x[0].float().cpu())
            if self.caps["log_prob"]:
                labels = torch.tensor([label], device=model.device) if label is not None else None
                lp = float(model.log_prob(x, labels=labels, iw_samples=k, generator=g)[0])
                offset = log_prob_offset(model)
                nll = -(lp + offset)
                out["likelihood"] = {
                    "log_prob_nats": lp,
                    "offset_nats": offset,
                    "nll_nats": nll,
                    "bits_per_dim": bits_per_dim(nll, model.num_dims),
                    "estimator": model.likelihood_description(k),
                    "conditional_on_label": label,
                }
            if self.caps["reconstruct"]:
                out["reconstruction"] = png_base64(
                    model.reconstruct(x)[0].float().cpu()
                )  # sampling decoders: the seeded global RNG
        if "likelihood" in out and label is None and self.reference_examples > 0:
            out["outlier"] = self._outlier(x01, seed)
        return out

    def translate(self, body: dict) -> dict:
        """{"image", "fit", "direction": "a2b" | "b2a"} -> ``model.translate(x01, direction)``:
        the uploaded image in [0, 1] of one domain's shape (:func:`domain_shape`) and its
        translation, in [0, 1]."""
        self._need("translate", "translate images (needs translate(x, direction))")
        direction = body.get("direction", "a2b")
        if direction not in DIRECTIONS:
            raise RequestError(f"'direction' must be 'a2b' or 'b2a', got {_short(direction)}")
        x01 = decode_upload(body.get("image"), domain_shape(self.model), bool(body.get("fit", False)))
        with self.lock, torch.inference_mode():
            y = self.model.translate(x01.to(self.model.device), direction)
        return {"input": png_base64(x01[0]), "direction": direction, **_image_reply(y[0].float().cpu().clamp(0, 1))}

    # ------------------------------------------------------------------ outlier scores
    def _outlier(self, x01: Tensor, seed: int) -> dict:
        """Where an image's scores fall among the run's held-out images (higher = more unusual):
        the NLL in bits/dim and the input-complexity score of Serra et al. (2020), both as
        :mod:`genlab.ood` computes them (latent-variable models with its cheaper
        ``DEFAULT_OOD_IW_SAMPLES`` importance samples, on both sides), as the percentage of
        reference images scoring lower. The reference images are the first of the test split,
        as many as the estimator scores in about ``REFERENCE_SECONDS`` (timed on the first
        upload; at least ``MIN_REFERENCE_EXAMPLES``, at most ``reference_examples``)."""
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
