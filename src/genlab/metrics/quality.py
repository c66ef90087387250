"""Sample quality of a model: features of real and generated images, and the report.

The estimators on feature arrays (FID, KID, precision/recall, density/coverage,
classifier score) live in :mod:`genlab.metrics.distances` and are re-exported here.

:func:`evaluate` runs everything for a model (likelihood where the model has one,
sample quality for anything with ``.sample``) and :func:`write_report` writes
``eval.json`` and ``eval.md``.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..errors import GenlabError
from .distances import (  # noqa: F401  (re-exported: the public names of genlab.metrics.quality)
    MIN_FID_SAMPLES,
    _check_pair,
    _np,
    classifier_score,
    density_coverage,
    feature_statistics,
    fid_from_features,
    frechet_distance,
    kid,
    knn_radii,
    mmd2_unbiased,
    precision_recall,
)
from .features import FeatureNet, FeatureNetError, auto_feature_net, get_feature_net

# ------------------------------------------------------------------ reference statistics


def stats_cache_dir() -> Path:
    """``$GENLAB_DATA/stats`` when GENLAB_DATA is set, else ``~/.cache/genlab/stats``."""
    root = os.environ.get("GENLAB_DATA")
    return Path(root) / "stats" if root else Path.home() / ".cache" / "genlab" / "stats"


def _resolve_net(feature_net, shape, data_name) -> FeatureNet:
    if isinstance(feature_net, FeatureNet):
        return feature_net
    name = feature_net or auto_feature_net(shape, data_name)
    return get_feature_net(name)


def _images01(data) -> Tensor:
    images = data.images if hasattr(data, "images") else data
    images = torch.as_tensor(images)
    return images.float() / 255.0 if images.dtype == torch.uint8 else images.float()


def reference_features(
    dataset, feature_net=None, *, split: str | None = None, max_examples: int | None = None, cache: bool = True
) -> dict:
    """Features (and their mean/covariance) of a data split, cached on disk.

    The cache key is the data set's name, the split, the number of images, a
    hash of the image bytes, the feature network's name and its weights'
    SHA-256; files live under :func:`stats_cache_dir`. Returns
    ``{"features": (N, d) float64 array, "mu", "sigma", "path", "cached": bool}``.
    """
    from safetensors.numpy import load_file, save_file

    images = dataset.images if hasattr(dataset, "images") else torch.as_tensor(dataset)
    if max_examples is not None:
        images = images[:max_examples]
    net = _resolve_net(feature_net, tuple(images.shape[1:]), getattr(dataset, "name", None))
    net.check_input(images)
    name = getattr(dataset, "name", "") or "tensor"
    digest = hashlib.sha256(
        images.contiguous().numpy().tobytes() if images.dtype == torch.uint8 else images.float().numpy().tobytes()
    ).hexdigest()[:16]
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)[:60]
    fname = f"{safe}-{split or 'data'}-n{len(images)}-{digest}-{net.name}-{(net.sha256 or 'nohash')[:16]}.safetensors"
    path = stats_cache_dir() / fname
    if cache and path.is_file():
        t = load_file(str(path))
        return {
            "features": t["features"].astype(np.float64),
            "mu": t["mu"],
            "sigma": t["sigma"],
            "path": str(path),
            "cached": True,
        }
    feats = net.features(_images01(images)).numpy()
    mu, sigma = feature_statistics(feats)
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        save_file({"features": feats.astype(np.float32), "mu": mu, "sigma": sigma}, str(tmp))
        os.replace(tmp, path)
    return {
        "features": feats.astype(np.float32).astype(np.float64),
        "mu": mu,
        "sigma": sigma,
        "path": str(path),
        "cached": False,
    }


# ------------------------------------------------------------------ all metrics


def quality_metrics(
    real_features,
    fake_features,
    *,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    k_pr: int = 3,
    k_dc: int = 5,
    knn_max: int = 5000,
    seed: int = 0,
) -> dict:
    """FID, KID (mean, std), precision, recall, density and coverage from two feature sets.

    The k-NN metrics use at most ``knn_max`` points of each set (a seeded subset)
    to bound the O(N^2) distance matrix.
    """
    a, b = _np(real_features), _np(fake_features)
    _check_pair(a, b)
    rng = np.random.default_rng(seed)
    an = a[rng.choice(len(a), knn_max, replace=False)] if len(a) > knn_max else a
    bn = b[rng.choice(len(b), knn_max, replace=False)] if len(b) > knn_max else b
    kid_mean, kid_std = kid(a, b, num_subsets=kid_subsets, subset_size=kid_subset_size, seed=seed)
    precision, recall = precision_recall(an, bn, k=k_pr)
    density, coverage = density_coverage(an, bn, k=k_dc)
    return {
        "fid": fid_from_features(a, b),
        "kid": kid_mean,
        "kid_std": kid_std,
        "precision": precision,
        "recall": recall,
        "density": density,
        "coverage": coverage,
    }


@torch.no_grad()
def generate_samples(model, n: int, *, batch_size: int = 500, seed: int = 0) -> Tensor:
    """``n`` samples in [0, 1], quantized to 8 bits like the real images; class-balanced labels for
    conditional models."""
    g = torch.Generator(device=model.device).manual_seed(seed)
    k = model.config.num_classes
    out = []
    for start in range(0, n, batch_size):
        m = min(batch_size, n - start)
        labels = (torch.arange(start, start + m) % k) if k > 0 else None
        out.append(model.sample(m, generator=g, labels=labels).detach().float().cpu())
    x = torch.cat(out).clamp(0, 1)
    return torch.round(x * 255) / 255


def check_measurable(model, n_samples: int) -> None:
    """A GenlabError when :func:`evaluate` would measure nothing: a model without a likelihood
    of which no samples are drawn, or whose samples are not images."""
    name = type(model).__name__
    if model.likelihood_kind != "none":
        return
    if "sample" not in model.capabilities or n_samples < 1:
        raise GenlabError(
            f"nothing to evaluate: {name} has no likelihood and no samples are drawn "
            f"(n_samples={n_samples}, genlab eval --samples)"
        )
    if model.data_kind != "image":
        raise GenlabError(
            f"nothing to evaluate: {name} has no likelihood, and the sample-quality metrics (FID, KID, "
            f"precision/recall) measure images; it makes {model.data_kind}"
        )


def evaluate(
    model,
    dataset,
    *,
    n_samples: int = 10000,
    feature_net: str | FeatureNet | None = None,
    iw_samples: int | None = None,
    likelihood_data=None,
    max_examples: int | None = None,
    batch_size: int = 256,
    seed: int = 0,
    split: str | None = None,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    knn_max: int = 5000,
    cache: bool = True,
    progress: bool = True,
) -> dict[str, Any]:
    """All metrics for one model on one data split, with the settings used.

    Args:
        model: a genlab model. Likelihood metrics are computed when it has a
            likelihood (``likelihood_kind`` not "none"); sample-quality metrics
            when it samples (``"sample" in model.capabilities``).
        dataset: the reference split (an ImageDataset), e.g. the test split.
            Its features are cached (see :func:`reference_features`).
        n_samples: samples drawn from the model for the quality metrics.
        feature_net: "mnist", "fashion-mnist", "cifar10", "inception", a
            :class:`FeatureNet`, or None to choose from the data's name/shape.
        iw_samples: importance samples for importance-sampled likelihoods (``model.importance_sampled``).
        likelihood_data: data for the likelihood (default: ``dataset``).
        max_examples: cap on examples for the likelihood and reference features.
        seed: seeds sampling, binarization/dequantization, KID subsets.
        split: the split's name ("train"/"test"), recorded and used in the cache key.

    Returns:
        ``{"model", "data", "settings": {...}, "likelihood": {...} or None,
        "quality": {...} or None}``; JSON-ready. A model without a likelihood whose
        samples cannot be measured either (none drawn, no feature network fits) is a
        GenlabError: there is nothing to evaluate.
    """
    from .likelihood import evaluate_likelihood

    check_measurable(model, n_samples)
    data_name = getattr(dataset, "name", "") or ""
    result: dict[str, Any] = {
        "model": type(model).__name__,
        "data": data_name,
        "split": split,
        "settings": {
            "seed": seed,
            "n_samples": n_samples if "sample" in model.capabilities else 0,
            "max_examples": max_examples,
        },
        "likelihood": None,
        "quality": None,
    }
    if model.likelihood_kind != "none":
        result["likelihood"] = evaluate_likelihood(
            model,
            likelihood_data if likelihood_data is not None else dataset,
            iw_samples=iw_samples,
            batch_size=batch_size,
            max_examples=max_examples,
            seed=seed,
            progress=progress,
        )
    if "sample" in model.capabilities and n_samples > 0:
        shape = tuple(dataset.shape) if hasattr(dataset, "shape") else tuple(torch.as_tensor(dataset).shape[1:])
        try:
            net = _resolve_net(feature_net, shape, data_name)
        except FeatureNetError as e:
            if feature_net is not None:  # the user asked for this network: a real error
                raise
            if result["likelihood"] is None:
                raise FeatureNetError(
                    f"nothing to evaluate: {type(model).__name__} has no likelihood, and {e}"
                ) from None
            warnings.warn(f"sample-quality metrics skipped: {e}", stacklevel=2)
            result["settings"]["quality_skipped"] = str(e)
            return result
        if n_samples < MIN_FID_SAMPLES:
            warnings.warn(
                f"n_samples={n_samples} < {MIN_FID_SAMPLES}: FID is strongly biased "
                "and unstable at this size; rely on KID",
                stacklevel=2,
            )
        ref = reference_features(dataset, net, split=split, max_examples=max_examples, cache=cache)
        fake = generate_samples(model, n_samples, seed=seed)
        net.check_input(fake)
        ff = net.features(fake).numpy()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # already warned above
            q = quality_metrics(
                ref["features"],
                ff,
                kid_subsets=kid_subsets,
                kid_subset_size=kid_subset_size,
                knn_max=knn_max,
                seed=seed,
            )
        if hasattr(net.net, "head"):
            q["classifier_score"], q["classifier_score_std"] = classifier_score(net.logits(fake))
            q["classifier_score_real"], _ = classifier_score(net.logits(_images01(dataset)[: max(n_samples, 2)]))
        result["quality"] = q
        result["settings"].update(
            {
                "feature_net": net.name,
                "feature_net_sha256": net.sha256,
                "feature_dim": net.dim,
                "n_reference": len(ref["features"]),
                "reference_stats": ref["path"] if cache else None,
                "kid": f"unbiased MMD^2, polynomial kernel (x.y/d + 1)^3, {kid_subsets} subsets of "
                f"{min(kid_subset_size, n_samples, len(ref['features']))}",
                "precision_recall_k": 3,
                "density_coverage_k": 5,
                "knn_max_points": knn_max,
                "samples": "model.sample, clamped to [0, 1] and quantized to 8 bits; "
                "class-balanced labels for conditional models",
                "fid_note": "Frechet distance in the feature space of genlab's own "
                "classifier; not comparable with Inception FIDs"
                if net.name != "inception"
                else "Inception-v3 pool features via torch-fidelity",
            }
        )
    return result


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def write_report(results: dict, run_dir: str | os.PathLike) -> tuple[Path, Path]:
    """Write ``eval.json`` (the dict as is) and ``eval.md`` (tables) into ``run_dir``; returns both paths."""
    from ..io import atomic_write_bytes, atomic_write_json

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    jp, mp = run_dir / "eval.json", run_dir / "eval.md"
    atomic_write_json(jp, json.loads(json.dumps(results, default=str)))
    split = f" ({results['split']} split)" if results.get("split") else ""
    lines = [f"# Evaluation: {results.get('model', '')} on {results.get('data', '')}{split}", ""]
    lik = results.get("likelihood")
    if lik:
        lines += [
            "## Likelihood",
            "",
            "| NLL (nats) | bits/dim | examples | importance samples |",
            "|---|---|---|---|",
            f"| {lik['nll_nats']:.3f} +- {lik['nll_nats_se']:.3f} | {lik['bits_per_dim']:.4f} +- "
            f"{lik['bits_per_dim_se']:.4f} | {lik['num_examples']} | {lik['iw_samples'] or 'none'} |",
            "",
            f"Estimator: {lik['estimator']}.",
            f"Preprocessing: {lik['preprocessing']}.",
            "",
        ] + ([f"**Invalid:** {lik['problem']}.", ""] if lik.get("problem") else [])
    q = results.get("quality")
    if q:
        s = results["settings"]
        kid_s = f"{q['kid']:.4g} +- {q['kid_std']:.2g}"
        cs = f"{q['classifier_score']:.3f} (real: {q['classifier_score_real']:.3f})" if "classifier_score" in q else "-"
        lines += [
            "## Sample quality",
            "",
            "| FID | KID | precision | recall | density | coverage | classifier score |",
            "|---|---|---|---|---|---|---|",
            f"| {q['fid']:.3f} | {kid_s} | {q['precision']:.3f} | {q['recall']:.3f} | "
            f"{q['density']:.3f} | {q['coverage']:.3f} | {cs} |",
            "",
            f"Feature network: `{s.get('feature_net')}` ({s.get('feature_dim')}-d); {s.get('n_samples')} samples vs "
            f"{s.get('n_reference')} reference images. {s.get('fid_note', '')}.",
            "",
        ]
    lines += ["## Settings", "", "| setting | value |", "|---|---|"]
    lines += [f"| {k} | {_fmt(v)} |" for k, v in results.get("settings", {}).items()]
    atomic_write_bytes(mp, ("\n".join(lines) + "\n").encode())
    return jp, mp


__all__ = [
    "FeatureNetError",
    "MIN_FID_SAMPLES",
    "classifier_score",
    "density_coverage",
    "evaluate",
    "feature_statistics",
    "fid_from_features",
    "frechet_distance",
    "generate_samples",
    "kid",
    "mmd2_unbiased",
    "precision_recall",
    "quality_metrics",
    "reference_features",
    "stats_cache_dir",
    "write_report",
]
