"""Sample-quality metrics from features of real and generated images.

All metrics take feature arrays ``(N, d)`` (numpy or torch; computed in float64):

* :func:`frechet_distance` / :func:`fid_from_features`: the Frechet distance
  between Gaussians fitted to the two feature sets (Heusel et al. 2017),
  ``|mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2)``. The trace of the
  matrix square root is computed from the eigenvalues of the symmetric PSD
  matrix ``S1^1/2 S2 S1^1/2`` (same eigenvalues as ``S1 S2``), which avoids the
  complex parts and instabilities of a general ``sqrtm``. FID is biased for
  small N: below 2,000 samples a warning recommends KID.
* :func:`kid`: the kernel inception distance (Binkowski et al. 2018), the
  unbiased MMD^2 estimate with the polynomial kernel ``(x.y / d + 1)^3``,
  averaged over random subsets, with its standard deviation over subsets.
* :func:`precision_recall`: improved precision and recall (Kynkaanniemi et al.
  2019): a sample is "in" a set's manifold if it falls inside the k-NN ball of
  some point of that set.
* :func:`density_coverage`: density and coverage (Naeem et al. 2020).
* :func:`classifier_score`: an Inception-Score-style ``exp E[KL(p(y|x) || p(y))]``
  on the softmax of genlab's own classifier (not comparable with published IS).

:func:`evaluate` runs everything for a model (likelihood where the model has one,
sample quality for anything with ``.sample``) and :func:`write_report` writes
``eval.json`` and ``eval.md``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .features import FeatureNet, FeatureNetError, auto_feature_net, get_feature_net

#: Below this many samples FID is strongly biased; KID is recommended instead.
MIN_FID_SAMPLES = 2000


def _np(x) -> np.ndarray:
    if isinstance(x, Tensor):
        x = x.detach().cpu().double().numpy()
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"features must be a 2-D array (N, d), got shape {x.shape}")
    return x


def _check_pair(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature dimensions differ: {a.shape[1]} vs {b.shape[1]} (use the same feature network for both sets)")


# ------------------------------------------------------------------ FID


def feature_statistics(features) -> tuple[np.ndarray, np.ndarray]:
    """(mean (d,), covariance (d, d)) of features (N, d), unbiased covariance (N - 1)."""
    f = _np(features)
    if len(f) < 2:
        raise ValueError("need at least 2 feature vectors for a covariance")
    return f.mean(0), np.cov(f, rowvar=False)


def _sqrt_psd(s: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((s + s.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2).

    tr((S1 S2)^1/2) = sum_i sqrt(lambda_i) with lambda_i the eigenvalues of the
    symmetric PSD matrix S1^1/2 S2 S1^1/2 (negative round-off clipped to 0).
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    s1, s2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    if mu1.shape != mu2.shape or s1.shape != s2.shape:
        raise ValueError(f"statistics of different dimension: {mu1.shape} vs {mu2.shape}")
    r1 = _sqrt_psd(s1)
    m = r1 @ s2 @ r1
    lam = np.linalg.eigvalsh((m + m.T) / 2)
    tr_covmean = float(np.sqrt(np.clip(lam, 0, None)).sum())
    diff = mu1 - mu2
    return float(max(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * tr_covmean, 0.0))


def fid_from_features(real, fake, *, warn: bool = True) -> float:
    """FID between two feature sets (N, d) and (M, d)."""
    a, b = _np(real), _np(fake)
    _check_pair(a, b)
    if warn and min(len(a), len(b)) < MIN_FID_SAMPLES:
        warnings.warn(
            f"FID from {min(len(a), len(b))} samples (< {MIN_FID_SAMPLES}) is strongly biased upwards and unstable; "
            "compare models with KID (unbiased) instead, or use more samples",
            stacklevel=2,
        )
    return frechet_distance(*feature_statistics(a), *feature_statistics(b))


# ------------------------------------------------------------------ KID


def _poly_kernel(x: np.ndarray, y: np.ndarray, degree: int, gamma: float, coef0: float) -> np.ndarray:
    return (gamma * (x @ y.T) + coef0) ** degree


def mmd2_unbiased(x: np.ndarray, y: np.ndarray, degree: int = 3, gamma: float | None = None, coef0: float = 1.0) -> float:
    """Unbiased MMD^2 with the polynomial kernel (gamma = 1/d by default)."""
    d = x.shape[1]
    gamma = 1.0 / d if gamma is None else gamma
    m, n = len(x), len(y)
    kxx = _poly_kernel(x, x, degree, gamma, coef0)
    kyy = _poly_kernel(y, y, degree, gamma, coef0)
    kxy = _poly_kernel(x, y, degree, gamma, coef0)
    sxx = (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
    syy = (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
    return float(sxx + syy - 2 * kxy.mean())


def kid(real, fake, *, num_subsets: int = 100, subset_size: int = 1000, degree: int = 3, seed: int = 0) -> tuple[float, float]:
    """Kernel inception distance: (mean, std) of the unbiased MMD^2 over random subsets.

    Each subset draws ``min(subset_size, N, M)`` vectors from each set without
    replacement (seeded). The mean is an unbiased estimate: ~0 (and can be
    negative) for two samples of one distribution.
    """
    a, b = _np(real), _np(fake)
    _check_pair(a, b)
    s = min(subset_size, len(a), len(b))
    if s < 2:
        raise ValueError("KID needs at least 2 samples in each set")
    rng = np.random.default_rng(seed)
    vals = np.array(
        [mmd2_unbiased(a[rng.choice(len(a), s, replace=False)], b[rng.choice(len(b), s, replace=False)], degree) for _ in range(num_subsets)]
    )
    return float(vals.mean()), float(vals.std(ddof=1) if num_subsets > 1 else 0.0)


# ------------------------------------------------------------------ k-NN metrics


def _cdist(a: np.ndarray, b: np.ndarray, block: int = 2048) -> np.ndarray:
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    return torch.cat([torch.cdist(ta[i : i + block], tb) for i in range(0, len(ta), block)]).numpy()


def knn_radii(features: np.ndarray, k: int) -> np.ndarray:
    """Distance from each point to its k-th nearest neighbour in the same set (itself excluded)."""
    if len(features) <= k:
        raise ValueError(f"need more than k = {k} points for k-NN radii, got {len(features)}")
    d = _cdist(features, features)
    # the 0th smallest is the point itself (distance 0)
    return np.partition(d, k, axis=1)[:, k]


def precision_recall(real, fake, *, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019).

    precision: fraction of fake points inside the k-NN ball of at least one real point;
    recall: fraction of real points inside the k-NN ball of at least one fake point.
    """
    a, b = _np(real), _np(fake)
    _check_pair(a, b)
    ra, rb = knn_radii(a, k), knn_radii(b, k)
    d = _cdist(a, b)  # (N_real, N_fake)
    precision = float((d <= ra[:, None]).any(0).mean())
    recall = float((d <= rb[None, :]).any(1).mean())
    return precision, recall


def density_coverage(real, fake, *, k: int = 5) -> tuple[float, float]:
    """Density and coverage (Naeem et al. 2020), with k-NN balls around the real points.

    density = (1 / (k M)) sum_j #{i: fake_j in B(real_i, r_i)} (about 1 when the
    two distributions match, can exceed 1); coverage = fraction of real points
    whose ball contains at least one fake point.
    """
    a, b = _np(real), _np(fake)
    _check_pair(a, b)
    ra = knn_radii(a, k)
    inside = _cdist(a, b) <= ra[:, None]
    density = float(inside.sum() / (k * len(b)))
    coverage = float(inside.any(1).mean())
    return density, coverage


def classifier_score(logits, *, splits: int = 10) -> tuple[float, float]:
    """Inception-Score-style exp(E_x KL(p(y|x) || p(y))) from class logits (N, K): (mean, std over splits)."""
    lg = torch.as_tensor(np.asarray(logits) if not isinstance(logits, Tensor) else logits).double()
    logp = torch.log_softmax(lg, 1)
    scores = []
    for part in torch.tensor_split(logp, splits):
        if len(part) == 0:
            continue
        log_py = torch.logsumexp(part, 0) - math.log(len(part))
        kl = (part.exp() * (part - log_py)).sum(1).mean()
        scores.append(kl.exp().item())
    s = np.array(scores)
    return float(s.mean()), float(s.std(ddof=1) if len(s) > 1 else 0.0)


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


def reference_features(dataset, feature_net=None, *, split: str | None = None, max_examples: int | None = None, cache: bool = True) -> dict:
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
    digest = hashlib.sha256(images.contiguous().numpy().tobytes() if images.dtype == torch.uint8 else images.float().numpy().tobytes()).hexdigest()[:16]
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)[:60]
    fname = f"{safe}-{split or 'data'}-n{len(images)}-{digest}-{net.name}-{(net.sha256 or 'nohash')[:16]}.safetensors"
    path = stats_cache_dir() / fname
    if cache and path.is_file():
        t = load_file(str(path))
        return {"features": t["features"].astype(np.float64), "mu": t["mu"], "sigma": t["sigma"], "path": str(path), "cached": True}
    feats = net.features(_images01(images)).numpy()
    mu, sigma = feature_statistics(feats)
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        save_file({"features": feats.astype(np.float32), "mu": mu, "sigma": sigma}, str(tmp))
        os.replace(tmp, path)
    return {"features": feats.astype(np.float32).astype(np.float64), "mu": mu, "sigma": sigma, "path": str(path), "cached": False}


# ------------------------------------------------------------------ all metrics


def quality_metrics(real_features, fake_features, *, kid_subsets: int = 100, kid_subset_size: int = 1000, k_pr: int = 3, k_dc: int = 5, knn_max: int = 5000, seed: int = 0) -> dict:
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
    """``n`` samples in [0, 1], quantized to 8 bits like the real images; class-balanced labels for conditional models."""
    g = torch.Generator(device=model.device).manual_seed(seed)
    k = model.config.num_classes
    out = []
    for start in range(0, n, batch_size):
        m = min(batch_size, n - start)
        labels = (torch.arange(start, start + m) % k) if k > 0 else None
        out.append(model.sample(m, generator=g, labels=labels).detach().float().cpu())
    x = torch.cat(out).clamp(0, 1)
    return torch.round(x * 255) / 255


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
        iw_samples: importance samples for latent-variable likelihoods.
        likelihood_data: data for the likelihood (default: ``dataset``).
        max_examples: cap on examples for the likelihood and reference features.
        seed: seeds sampling, binarization/dequantization, KID subsets.
        split: the split's name ("train"/"test"), recorded and used in the cache key.

    Returns:
        ``{"model", "data", "settings": {...}, "likelihood": {...} or None,
        "quality": {...} or None}``; JSON-ready.
    """
    from .likelihood import evaluate_likelihood

    data_name = getattr(dataset, "name", "") or ""
    result: dict[str, Any] = {
        "model": type(model).__name__,
        "data": data_name,
        "split": split,
        "settings": {"seed": seed, "n_samples": n_samples if "sample" in model.capabilities else 0, "max_examples": max_examples},
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
        shape = tuple(dataset.shape) if hasattr(dataset, "shape") and len(dataset.shape) == 3 else tuple(torch.as_tensor(dataset).shape[1:])
        try:
            net = _resolve_net(feature_net, shape, data_name)
        except FeatureNetError as e:
            if feature_net is not None:  # the user asked for this network: a real error
                raise
            warnings.warn(f"sample-quality metrics skipped: {e}", stacklevel=2)
            result["settings"]["quality_skipped"] = str(e)
            return result
        if n_samples < MIN_FID_SAMPLES:
            warnings.warn(
                f"n_samples={n_samples} < {MIN_FID_SAMPLES}: FID is strongly biased and unstable at this size; rely on KID",
                stacklevel=2,
            )
        ref = reference_features(dataset, net, split=split, max_examples=max_examples, cache=cache)
        fake = generate_samples(model, n_samples, seed=seed)
        net.check_input(fake)
        ff = net.features(fake).numpy()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # already warned above
            q = quality_metrics(ref["features"], ff, kid_subsets=kid_subsets, kid_subset_size=kid_subset_size, knn_max=knn_max, seed=seed)
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
                "kid": f"unbiased MMD^2, polynomial kernel (x.y/d + 1)^3, {kid_subsets} subsets of {min(kid_subset_size, n_samples, len(ref['features']))}",
                "precision_recall_k": 3,
                "density_coverage_k": 5,
                "knn_max_points": knn_max,
                "samples": "model.sample, clamped to [0, 1] and quantized to 8 bits; class-balanced labels for conditional models",
                "fid_note": "Frechet distance in the feature space of genlab's own classifier; not comparable with Inception FIDs"
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
            f"| {lik['nll_nats']:.3f} +- {lik['nll_nats_se']:.3f} | {lik['bits_per_dim']:.4f} +- {lik['bits_per_dim_se']:.4f} "
            f"| {lik['num_examples']} | {lik['iw_samples'] if lik['iw_samples'] else 'exact'} |",
            "",
            f"Estimator: {lik['estimator']}.",
            f"Preprocessing: {lik['preprocessing']}.",
            "",
        ]
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
            f"| {q['fid']:.3f} | {kid_s} | {q['precision']:.3f} | {q['recall']:.3f} | {q['density']:.3f} | {q['coverage']:.3f} | {cs} |",
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
