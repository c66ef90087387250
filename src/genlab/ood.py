"""Outlier (out-of-distribution) detection with generative models.

Deep generative models often give *higher* likelihood to inputs from another
data set than to their own test data (Nalisnick et al. 2019, "Do Deep
Generative Models Know What They Don't Know?": a model of Fashion-MNIST
prefers MNIST). :func:`score` implements the plain likelihood score and three
corrections, all returning one score per input, **higher = more anomalous**:

* ``"likelihood"``: negative log-likelihood in bits per dimension.
* ``"likelihood-ratio"`` (Ren et al. 2019, "Likelihood Ratios for
  Out-of-Distribution Detection"): NLL under the model minus NLL under a
  *background* model trained on randomly perturbed inputs
  (:func:`train_background`), which captures population-level statistics such
  as the number of background pixels; bits per dimension.
* ``"typicality"`` (Nalisnick et al. 2019, "Detecting Out-of-Distribution
  Inputs to Deep Generative Models Using Typicality"): a batch test,
  ``| mean NLL of a batch of M inputs - H |`` with H the model's entropy
  estimated as the mean NLL of training data; every input gets its batch's
  score (inputs are batched in the order given); bits per dimension.
* ``"complexity"`` (Serra et al. 2020, "Input Complexity and
  Out-of-Distribution Detection with Likelihood-based Generative Models"):
  NLL in bits minus the code length in bits of the 8-bit image under a
  lossless compressor (PNG via Pillow, or zlib), per dimension.

:func:`evaluate_ood` scores an in-distribution set and several outlier sets and
reports AUROC, AUPR and FPR at 95% TPR with the outliers as the positive class;
:func:`outlier_set` builds common outlier sets.
"""

from __future__ import annotations

import io
import zlib
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from .distributions import bits_per_dim
from .metrics.likelihood import as_images01, per_example_nll

METHODS = ("likelihood", "likelihood-ratio", "typicality", "complexity")
#: Importance samples for latent-variable models when scoring (cheaper than for reporting likelihoods).
DEFAULT_OOD_IW_SAMPLES = 10


# ------------------------------------------------------------------ scores


def _iw(model, iw_samples):
    from .metrics.likelihood import is_latent_variable_model

    if not is_latent_variable_model(model):
        return None
    return DEFAULT_OOD_IW_SAMPLES if iw_samples is None else iw_samples


def nll_bits_per_dim(model, x, *, iw_samples: int | None = None, batch_size: int = 256, seed: int = 0, progress: bool = False) -> Tensor:
    """Per-input discrete NLL in bits per dimension (float64, (N,))."""
    nll = per_example_nll(model, x, iw_samples=_iw(model, iw_samples), batch_size=batch_size, seed=seed, progress=progress)
    return bits_per_dim(nll, model.num_dims)


def compressed_bits(x, compressor: str = "png") -> Tensor:
    """Code length in bits of each 8-bit image under a lossless compressor ("png" or "zlib"), (N,)."""
    images, _, _ = as_images01(x)
    u8 = torch.round(images.clamp(0, 1) * 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    out = []
    for img in u8:
        if compressor == "png":
            from PIL import Image

            buf = io.BytesIO()
            Image.fromarray(img[:, :, 0] if img.shape[2] == 1 else img).save(buf, format="PNG", optimize=True, compress_level=9)
            out.append(8 * len(buf.getvalue()))
        elif compressor == "zlib":
            out.append(8 * len(zlib.compress(img.tobytes(), 9)))
        else:
            raise ValueError(f"unknown compressor {compressor!r}; use 'png' or 'zlib'")
    return torch.tensor(out, dtype=torch.float64)


def training_entropy(model, train_data, *, iw_samples: int | None = None, max_examples: int = 5000, batch_size: int = 256, seed: int = 0) -> float:
    """Entropy estimate for the typicality test: mean NLL (bits/dim) of up to ``max_examples`` training inputs."""
    images, _, _ = as_images01(train_data)
    return float(nll_bits_per_dim(model, images[:max_examples], iw_samples=iw_samples, batch_size=batch_size, seed=seed).mean())


def score(
    model,
    x,
    method: str = "likelihood",
    *,
    background=None,
    train_entropy: float | None = None,
    train_data=None,
    typicality_batch: int = 10,
    compressor: str = "png",
    iw_samples: int | None = None,
    batch_size: int = 256,
    seed: int = 0,
    progress: bool = False,
) -> Tensor:
    """Outlier scores, one per input, higher = more anomalous (float64, (N,)).

    Args:
        model: a likelihood model (``log_prob``), trained on the in-distribution data.
        x: an ImageDataset, uint8 images (N, C, H, W) or floats in [0, 1].
        method: "likelihood", "likelihood-ratio", "typicality" or "complexity".
        background: for "likelihood-ratio", the background model (see :func:`train_background`).
        train_entropy: for "typicality", the model's entropy estimate in bits/dim
            (see :func:`training_entropy`); or give ``train_data`` to compute it.
        typicality_batch: M, the batch size of the typicality test.
        compressor: for "complexity": "png" (Pillow) or "zlib".
        iw_samples: importance samples for latent-variable models (default 10).
        seed: seeds binarization / dequantization / importance samples.

    Units: bits per dimension for every method.
    """
    return _scores(
        model, x, [method], background=background, train_entropy=train_entropy, train_data=train_data,
        typicality_batch=typicality_batch, compressor=compressor, iw_samples=iw_samples, batch_size=batch_size,
        seed=seed, progress=progress,
    )[method]


def _scores(model, x, methods, *, background=None, train_entropy=None, train_data=None, typicality_batch=10,
            compressor="png", iw_samples=None, batch_size=256, seed=0, progress=False) -> dict[str, Tensor]:
    """Scores of several methods for the same inputs, computing the model's NLL once."""
    for method in methods:
        if method not in METHODS:
            raise ValueError(f"unknown OOD method {method!r}; choose one of: {', '.join(METHODS)}")
    if "likelihood-ratio" in methods:
        if background is None:
            raise ValueError("method='likelihood-ratio' needs background=<a model trained on perturbed inputs>; see genlab.ood.train_background")
        if background.num_dims != model.num_dims:
            raise ValueError(f"the background model has {background.num_dims} dimensions, the model {model.num_dims}")
    if "typicality" in methods:
        if train_entropy is None:
            if train_data is None:
                raise ValueError("method='typicality' needs train_entropy= (bits/dim) or train_data= to estimate it")
            train_entropy = training_entropy(model, train_data, iw_samples=iw_samples, batch_size=batch_size, seed=seed)
        if int(typicality_batch) < 1:
            raise ValueError(f"typicality_batch must be >= 1, got {typicality_batch}")
    nll = nll_bits_per_dim(model, x, iw_samples=iw_samples, batch_size=batch_size, seed=seed, progress=progress)
    out: dict[str, Tensor] = {}
    for method in methods:
        if method == "likelihood":
            out[method] = nll
        elif method == "likelihood-ratio":
            out[method] = nll - nll_bits_per_dim(background, x, iw_samples=iw_samples, batch_size=batch_size, seed=seed)
        elif method == "typicality":
            m = int(typicality_batch)
            t = torch.empty_like(nll)
            for start in range(0, len(nll), m):
                t[start : start + m] = (nll[start : start + m].mean() - train_entropy).abs()
            out[method] = t
        else:  # complexity
            out[method] = nll - compressed_bits(x, compressor) / model.num_dims
    return out


# ------------------------------------------------------------------ background model (Ren et al. 2019)


def perturb(images_u8: Tensor, mutation_rate: float, generator: torch.Generator | None = None) -> Tensor:
    """Replace each pixel (all channels of it) with a uniform random value in 0..255 with probability ``mutation_rate``."""
    if not 0.0 <= mutation_rate <= 1.0:
        raise ValueError(f"mutation_rate must be in [0, 1], got {mutation_rate}")
    n, c, h, w = images_u8.shape
    mask = torch.rand(n, 1, h, w, generator=generator) < mutation_rate
    noise = torch.randint(0, 256, images_u8.shape, generator=generator, dtype=torch.uint8)
    return torch.where(mask, noise, images_u8)


def train_background(
    model_name_or_config,
    dataset,
    mutation_rate: float = 0.2,
    steps: int = 2000,
    *,
    seed: int = 0,
    batch_size: int = 128,
    weight_decay: float = 0.0,
    out_dir: str | Path | None = None,
    progress: bool = True,
):
    """Train the background model of the likelihood-ratio method on perturbed inputs.

    Args:
        model_name_or_config: a registered model name ("vae"), a
            :class:`genlab.config.RunConfig`, or a model instance (a fresh model
            with the same config is trained).
        dataset: the in-distribution training set (ImageDataset, uint8 images).
        mutation_rate: probability of replacing each pixel by uniform noise
            (Ren et al. use 0.1 to 0.3; perturbed once, seeded).
        steps: optimisation steps.
        weight_decay: L2 regularisation (Ren et al. also use it).
        out_dir: the run directory (default: a temporary one).

    Returns:
        The trained background model (eval mode), loaded with ``genlab.load``.
    """
    import dataclasses
    import tempfile

    from . import registry
    from .config import DataConfig, RunConfig
    from .data import ImageDataset
    from .loading import load

    from .models.base import GenerativeModel

    spec = model_name_or_config
    if isinstance(spec, RunConfig):
        rc = spec
    elif isinstance(spec, str):
        config_cls, _ = registry.get(spec)
        rc = RunConfig(model_name=spec, model=config_cls(image_shape=tuple(dataset.shape)))
    elif isinstance(spec, GenerativeModel):
        rc = RunConfig(model_name=registry.name_of(spec), model=spec.config)
    else:
        raise TypeError("model_name_or_config must be a model name, a RunConfig or a genlab model")
    rc = dataclasses.replace(
        rc,
        train=dataclasses.replace(rc.train, steps=int(steps), seed=seed, batch_size=batch_size, weight_decay=weight_decay, progress=progress, sample_every=0, checkpoint_every=max(int(steps), 1)),
        data=DataConfig(name=f"{getattr(dataset, 'name', 'data')}-perturbed{mutation_rate}", split="train"),
    )
    noisy = ImageDataset(
        perturb(dataset.images, mutation_rate, torch.Generator().manual_seed(seed)),
        dataset.labels,
        num_classes=dataset.num_classes if dataset.labels is not None else None,
        name=rc.data.name,
    )
    from .train import train

    run_dir = Path(out_dir) if out_dir is not None else Path(tempfile.mkdtemp(prefix="genlab-background-"))
    run_dir = train(rc, out_dir=str(run_dir), dataset=noisy)
    return load(run_dir)


# ------------------------------------------------------------------ detection metrics


def detection_metrics(in_scores, out_scores) -> dict[str, float]:
    """AUROC, AUPR and FPR at 95% TPR, outliers as the positive class (higher score = outlier).

    * ``auroc``: probability that a random outlier scores higher than a random inlier (ties count half);
    * ``aupr``: average precision for finding the outliers;
    * ``fpr95``: fraction of inliers flagged at the lowest threshold that flags 95% of the outliers.
    """
    from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

    a = np.asarray(in_scores, dtype=np.float64).ravel()
    b = np.asarray(out_scores, dtype=np.float64).ravel()
    if len(a) == 0 or len(b) == 0:
        raise ValueError("need at least one inlier and one outlier score")
    y = np.r_[np.zeros(len(a)), np.ones(len(b))]
    s = np.r_[a, b]
    fpr, tpr, _ = roc_curve(y, s)
    return {
        "auroc": float(roc_auc_score(y, s)),
        "aupr": float(average_precision_score(y, s)),
        "fpr95": float(fpr[np.searchsorted(tpr, 0.95, side="left")]),
    }


def roc_points(in_scores, out_scores) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.metrics import roc_curve

    a, b = np.asarray(in_scores, np.float64).ravel(), np.asarray(out_scores, np.float64).ravel()
    fpr, tpr, _ = roc_curve(np.r_[np.zeros(len(a)), np.ones(len(b))], np.r_[a, b])
    return fpr, tpr


_COLORS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75), (227, 119, 194), (127, 127, 127)]


def plot_roc(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], path: str | Path, title: str = "ROC", size: int = 480) -> Path:
    """Draw ROC curves {label: (fpr, tpr)} into a PNG with Pillow (no plotting dependency)."""
    from PIL import Image, ImageDraw

    from .io import atomic_write_bytes

    m = 48
    img = Image.new("RGB", (size, size + 16 * len(curves)), "white")
    dr = ImageDraw.Draw(img)
    x0, y0, x1, y1 = m, 24, size - 16, size - m

    def xy(f, t):
        return x0 + f * (x1 - x0), y1 - t * (y1 - y0)

    dr.rectangle([x0, y0, x1, y1], outline="black")
    for v in (0.0, 0.25, 0.5, 0.75, 1.0):
        px, _ = xy(v, 0)
        _, py = xy(0, v)
        dr.line([px, y1, px, y1 + 4], fill="black")
        dr.line([x0 - 4, py, x0, py], fill="black")
        dr.text((px - 8, y1 + 6), f"{v:.2g}", fill="black")
        dr.text((4, py - 6), f"{v:.2g}", fill="black")
    dr.line([xy(0, 0), xy(1, 1)], fill=(180, 180, 180))
    dr.text((x0, 4), title, fill="black")
    dr.text(((x0 + x1) // 2 - 60, y1 + 20), "false positive rate", fill="black")
    dr.text((4, y0 - 16), "TPR", fill="black")
    for i, (label, (fpr, tpr)) in enumerate(curves.items()):
        color = _COLORS[i % len(_COLORS)]
        pts = [xy(float(f), float(t)) for f, t in zip(fpr, tpr)]
        if len(pts) > 1:
            dr.line(pts, fill=color, width=2)
        ly = size + 16 * i - 4
        dr.line([x0, ly + 6, x0 + 20, ly + 6], fill=color, width=3)
        dr.text((x0 + 26, ly), label, fill="black")
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def markdown_table(results: Mapping[str, Mapping[str, Mapping[str, float]]], title: str | None = None) -> str:
    """{outlier set: {method: {auroc, aupr, fpr95}}} -> a markdown table."""
    lines = [f"### {title}", ""] if title else []
    lines += ["| outlier set | method | AUROC | AUPR | FPR@95%TPR |", "|---|---|---|---|---|"]
    for name, per_method in results.items():
        for method, r in per_method.items():
            lines.append(f"| {name} | {method} | {r['auroc']:.3f} | {r['aupr']:.3f} | {r['fpr95']:.3f} |")
    return "\n".join(lines) + "\n"


def evaluate_ood(
    model,
    in_data,
    out_sets: Mapping[str, Any],
    methods: Sequence[str] = ("likelihood", "typicality", "complexity"),
    *,
    background=None,
    train_data=None,
    train_entropy: float | None = None,
    typicality_batch: int = 10,
    compressor: str = "png",
    iw_samples: int | None = None,
    max_examples: int | None = None,
    batch_size: int = 256,
    seed: int = 0,
    out_dir: str | Path | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Score in-distribution data and each outlier set with each method.

    Args:
        model: the in-distribution likelihood model.
        in_data: in-distribution test inputs (ImageDataset, uint8 or [0, 1] floats).
        out_sets: {name: inputs} of outlier sets (see :func:`outlier_set`).
        methods: any of :data:`METHODS`. "likelihood-ratio" needs ``background``;
            "typicality" needs ``train_entropy`` or ``train_data``.
        max_examples: use at most this many inputs of each set (the first ones).
        out_dir: when given, writes ``ood.json``, ``ood.md`` and one ROC PNG per outlier set.

    Returns:
        ``{"results": {set: {method: {"auroc", "aupr", "fpr95"}}}, "mean_scores":
        {set: {method: mean}}, "n_in", "n_out": {set: n}, "settings", "markdown"}``.
        Outliers are the positive class.
    """
    for mth in methods:
        if mth not in METHODS:
            raise ValueError(f"unknown OOD method {mth!r}; choose from {', '.join(METHODS)}")
    if "typicality" in methods and train_entropy is None:
        if train_data is None:
            raise ValueError("the typicality method needs train_entropy= or train_data=")
        train_entropy = training_entropy(model, train_data, iw_samples=iw_samples, batch_size=batch_size, seed=seed)

    def _cap(d):
        images, _, _ = as_images01(d)
        return images[:max_examples] if max_examples is not None else images

    kw = dict(background=background, train_entropy=train_entropy, typicality_batch=typicality_batch, compressor=compressor, iw_samples=iw_samples, batch_size=batch_size, seed=seed)
    x_in = _cap(in_data)
    in_scores = _scores(model, x_in, list(methods), **kw)
    results: dict[str, dict[str, dict[str, float]]] = {}
    means: dict[str, dict[str, float]] = {"in-distribution": {m: float(s.mean()) for m, s in in_scores.items()}}
    n_out = {}
    curves: dict[str, dict[str, tuple]] = {}
    for name, data in out_sets.items():
        x_out = _cap(data)
        if tuple(x_out.shape[1:]) != tuple(x_in.shape[1:]):
            raise ValueError(f"outlier set {name!r} has shape {tuple(x_out.shape[1:])}, the in-distribution data {tuple(x_in.shape[1:])}; use genlab.ood.outlier_set to convert it")
        n_out[name] = len(x_out)
        results[name], means[name], curves[name] = {}, {}, {}
        out_scores = _scores(model, x_out, list(methods), **kw)
        for mth in methods:
            s_out = out_scores[mth]
            results[name][mth] = detection_metrics(in_scores[mth].numpy(), s_out.numpy())
            means[name][mth] = float(s_out.mean())
            curves[name][mth] = roc_points(in_scores[mth].numpy(), s_out.numpy())
    report = {
        "results": results,
        "mean_scores": means,
        "n_in": len(x_in),
        "n_out": n_out,
        "settings": {
            "methods": list(methods),
            "positive_class": "outliers (higher score = more anomalous)",
            "units": "bits per dimension",
            "iw_samples": _iw(model, iw_samples),
            "typicality_batch": typicality_batch if "typicality" in methods else None,
            "train_entropy_bits_per_dim": train_entropy,
            "compressor": compressor if "complexity" in methods else None,
            "seed": seed,
        },
    }
    report["markdown"] = markdown_table(results)
    if out_dir is not None:
        import json

        from .io import atomic_write_bytes, atomic_write_json

        out_dir = Path(out_dir)
        atomic_write_json(out_dir / "ood.json", json.loads(json.dumps(report)))
        atomic_write_bytes(out_dir / "ood.md", report["markdown"].encode())
        report["plots"] = []
        for name, per in curves.items():
            safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)
            p = plot_roc({f"{m} (AUROC {results[name][m]['auroc']:.3f})": c for m, c in per.items()}, out_dir / f"roc-{safe}.png", title=f"ROC: in-distribution vs {name}")
            report["plots"].append(str(p))
    return report


# ------------------------------------------------------------------ outlier sets


def outlier_set(spec: str, reference_dataset, n: int | None = None, data_dir: str | None = None, *, seed: int = 0):
    """An outlier set shaped like ``reference_dataset`` (the in-distribution test split).

    ``spec``:
      * "noise": uniform random pixels; "constant": images of one random grey/colour value each;
      * "inverted": 255 - the reference images; "flipped": the reference images upside down;
        "hflipped": mirrored left-right;
      * any name :func:`genlab.data.load` accepts ("mnist", "folder:<path>", ...): its test
        split (folders: all images), resized and converted to the reference's (C, H, W).

    Returns an ImageDataset of ``n`` images (default: as many as the reference; a
    loaded data set is cut to its first ``n``).
    """
    from .data import ImageDataset
    from .data import load as load_data

    c, h, w = reference_dataset.shape
    ref = reference_dataset.images
    n = len(ref) if n is None else int(n)
    g = torch.Generator().manual_seed(seed)
    if spec == "noise":
        images = torch.randint(0, 256, (n, c, h, w), generator=g, dtype=torch.uint8)
    elif spec == "constant":
        images = torch.randint(0, 256, (n, c, 1, 1), generator=g, dtype=torch.uint8).expand(n, c, h, w).contiguous()
    elif spec in ("inverted", "flipped", "hflipped"):
        base = ref[:n]
        images = 255 - base if spec == "inverted" else base.flip(2 if spec == "flipped" else 3)
    else:
        split = "all" if spec.split(":", 1)[0] in ("folder", "npz", "npy") else "test"
        ds = load_data(spec, split, data_dir, image_size=(h, w), channels=c)
        images = ds.images[:n]
    return ImageDataset(images.contiguous(), name=spec)


__all__ = [
    "METHODS",
    "compressed_bits",
    "detection_metrics",
    "evaluate_ood",
    "markdown_table",
    "nll_bits_per_dim",
    "outlier_set",
    "perturb",
    "plot_roc",
    "score",
    "train_background",
    "training_entropy",
]
